"""What a local Terraform module declares: the names of its outputs, and which are sensitive. Module mode
re-exports each non-sensitive output of a local module on its own (registry and remote modules are unknown
until `terraform init`, so they are only reachable through the aggregate `module` output).

The render cache checks a module as one input (`digest`): its real path and its `*.tf` files, read through
symlinks, as `read` parsed them."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from dativo_ingest import paths
from dativo_ingest.reading import read_opened

_OUTPUT = re.compile(r'^output\s+"([A-Za-z_][A-Za-z0-9_-]*)"\s*\{(.*?)^\}', re.M | re.S)
_SENSITIVE = re.compile(r"^\s*sensitive\s*=\s*true\s*$", re.M)


def read(real: Path) -> tuple[list[str], str | None]:
    """(the non-sensitive outputs of the module in the folder `real` (symlinks resolved), sorted; the `digest`
    of the very files they were read from). Read once per run (`paths.run_memo`): every job of a run that uses
    the module gets the same outputs and digest."""
    memo = paths.run_memo("modules")
    key = os.fspath(real)
    found = memo.get(key) if memo is not None else None
    if found is None:
        files = _tf_files(key)
        names = set()
        for data in (files or {}).values():
            for match in _OUTPUT.finditer((data or b"").decode("utf-8", errors="replace")):
                if not _SENSITIVE.search(match.group(2)):
                    names.add(match.group(1))
        found = (tuple(sorted(names)), _digest(key, files))
        if memo is not None:
            memo[key] = found
    return list(found[0]), found[1]


def digest(folder: str) -> str | None:
    """One sha256 over the folder's real path and its `*.tf` files' names and bytes, read through symlinks:
    pointing a link elsewhere, or adding, removing or editing a file, changes it. None when it is no folder."""
    real = os.path.realpath(folder)  # resolved first, then read from: the path and the bytes belong together
    return _digest(real, _tf_files(real))


def _tf_files(folder: str) -> dict[str, bytes | None] | None:
    """{name: bytes (None when not a readable regular file)} of the folder's `*.tf` files, or None."""
    try:
        names = sorted(name for name in os.listdir(folder) if name.endswith(".tf"))
    except OSError:
        return None
    return {name: _read_through(os.path.join(folder, name)) for name in names}


def _read_through(path: str) -> bytes | None:
    """A regular file's bytes, through symlinks (a FIFO or folder named `x.tf` is not waited on or read)."""
    try:
        return read_opened(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))[0]
    except OSError:
        return None


def _digest(real: str, files: dict[str, bytes | None] | None) -> str | None:
    if files is None:
        return None
    summary = hashlib.sha256(os.fsencode(real) + b"\0")
    for name, data in files.items():
        content = hashlib.sha256(data).digest() if data is not None else b"-"
        summary.update(os.fsencode(name) + b"\0" + content + b"\n")
    return summary.hexdigest()
