"""YAML loading: the libyaml C loader when present, and line numbers for key paths on demand.

Documents are loaded fast without marks; only when a value is wrong do we compose the document
again to find the line of the offending key.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import yaml

from dativo_ingest.errors import InputError

try:
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader  # type: ignore[assignment]


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file: {exc}", path=path) from None


def parse(text: str, path: Path | str) -> Any:
    """Parse YAML text, turning syntax errors into an InputError with the line."""
    try:
        return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        raise InputError(f"invalid YAML: {problem}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", path=path) from None


def load_mapping(path: Path) -> tuple[dict, str]:
    """Load a YAML file whose top level must be a mapping. Returns (data, text)."""
    text = read_text(path)
    data = parse(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"the document must be a mapping of keys, got {type(data).__name__}", path=path, line=1)
    return data, text


@lru_cache(maxsize=64)
def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=SafeLoader)
    except yaml.YAMLError:
        return None


def line_of(text: str, loc: Sequence[str | int]) -> int | None:
    """1-based line of the deepest node of `loc` found in the document (a key's line, or an item's)."""
    node = _compose(text)
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
