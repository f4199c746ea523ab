"""The regions of each cloud, from the list shipped with the package (regions.json). A region not in it is
a warning, not an error, so a region newer than the list still works."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files


@lru_cache(maxsize=1)
def known() -> dict[str, frozenset[str]]:
    data = json.loads(files("dativo_ingest").joinpath("regions.json").read_text(encoding="utf-8"))
    return {cloud: frozenset(names) for cloud, names in data.items() if not cloud.startswith("_")}


def is_known(cloud: str, region: str) -> bool:
    return region in known().get(cloud, frozenset())
