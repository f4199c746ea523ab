"""What a local Terraform module declares: the names of its outputs, and which are sensitive. Module mode
re-exports each non-sensitive output of a local module on its own (registry and remote modules are unknown
until `terraform init`, so they are only reachable through the aggregate `module` output)."""

from __future__ import annotations

import re
from pathlib import Path

from dativo_ingest import paths

_OUTPUT = re.compile(r'^output\s+"([A-Za-z_][A-Za-z0-9_-]*)"\s*\{(.*?)^\}', re.M | re.S)
_SENSITIVE = re.compile(r"^\s*sensitive\s*=\s*true\s*$", re.M)


def outputs(folder: Path) -> list[str]:
    """The non-sensitive outputs of the module in `folder`, sorted; [] when it is not a local folder.
    Read once per run (`paths.run_memo`): every job of a run that uses the module gets the same list."""
    memo = paths.run_memo("module outputs")
    if memo is not None and folder in memo:
        return list(memo[folder])
    names = set()
    if folder.is_dir():
        for path in sorted(folder.glob("*.tf")):
            for match in _OUTPUT.finditer(path.read_text(encoding="utf-8", errors="replace")):
                if not _SENSITIVE.search(match.group(2)):
                    names.add(match.group(1))
    if memo is not None:
        memo[folder] = tuple(sorted(names))
    return sorted(names)
