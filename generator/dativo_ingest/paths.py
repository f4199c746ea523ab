"""Paths from the inputs: they stay inside the project (or a folder `allow_outside_project` lists), hold no
control characters, and fit the file system's limits on name and path length."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from dativo_ingest.errors import ForbiddenPathError, InputError

# C0 (NUL, newline...), DEL, C1 (incl. U+0085 NEXT LINE), the Unicode line and paragraph separators, and
# lone surrogates (a file name that is not valid UTF-8).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
NO_CONTROL = "printable UTF-8 text (no control characters, NUL, line breaks, U+0085, U+2028 or U+2029)"


def control_char(text: str) -> str | None:
    """The first control character in `text`, as `U+000A`, or None."""
    match = _CONTROL.search(text)
    return f"U+{ord(match.group()):04X}" if match else None


def printable(text: str) -> str:
    """`text` with control characters escaped, for a message that must stay on one line."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


OUTSIDE_HINT = ("allowed: paths inside the project, or inside a folder listed in allow_outside_project "
                "in dativo-tf.yaml")

_allowed: dict[Path, tuple[Path, ...]] = {}  # project root -> folders outside it that paths may point into
_run_memos: dict[str, dict] | None = None  # `run_memo`, within `resolving_once`


@contextmanager
def resolving_once() -> Iterator[None]:
    """Within a run, each folder's and file's real path is looked up once: a thousand jobs share a few folders
    and files, and resolving walks every component with a system call. A new run sees symlinks changed since."""
    global _run_memos
    previous, _run_memos = _run_memos, {}
    try:
        yield
    finally:
        _run_memos = previous


def run_memo(name: str) -> dict | None:
    """A dict that lasts for the current run (see `resolving_once`), or None outside one: for what a thousand
    jobs of one run share, such as real paths, path checks, a local module's folder and outputs."""
    return None if _run_memos is None else _run_memos.setdefault(name, {})


def real(path: Path, link: bool | None = None) -> Path:
    """`path.resolve()`, looked up once per run (see `resolving_once`). `link`: whether `path` is a
    symlink, when the caller knows it already (saves a system call)."""
    memo = run_memo("real paths")  # folder or file -> its real path
    text = os.fspath(path)
    folder, name = os.path.split(text)
    if memo is None or not os.path.isabs(text) or name in ("", ".", ".."):
        return path.resolve()
    full = memo.get(text)  # a thousand jobs name the same asset and connector files
    if full is not None:
        return full
    known = memo.get(folder)
    if known is None:
        known = memo[folder] = Path(folder).resolve()
    if os.path.islink(text) if link is None else link:
        full = (known / name).resolve()
    elif type(path) is type(known) and os.fspath(known) == folder:
        full = path  # a file in a real folder, not a link: its own real path (no new Path to build)
    else:
        full = known / name
    memo[text] = full
    return full


def allow(root: Path, folders: Any) -> None:
    """Record a project's `allow_outside_project` (the raw value: settings validation reports a bad one)."""
    if isinstance(folders, list):
        _allowed[root] = tuple((root / f).resolve() for f in folders if isinstance(f, str) and f and not control_char(f))
    else:
        _allowed[root] = ()


def allowed(root: Path) -> tuple[Path, ...]:
    """The project's root and the folders outside it that its paths may point into (symlinks resolved)."""
    if root not in _allowed:
        from dativo_ingest.defaults import SETTINGS_FILE
        from dativo_ingest.yamlsource import load_mapping

        if (root / SETTINGS_FILE).is_file():  # a job loaded on its own (vars, tags, the seed's API)
            allow(root, load_mapping(root / SETTINGS_FILE)[0].get("allow_outside_project"))
        _allowed.setdefault(root, ())
    return (root, *_allowed[root])


def problem(raw: str, path: Path, root: Path) -> str | None:
    """Why `path` (written `raw` in the input, before any `${VAR}` expansion) may not be used, or None.
    Symlinks are resolved first, so a link inside the project to a file outside it is outside too.
    Messages show only `raw`: an expanded value may hold a secret."""
    char = control_char(raw) or control_char(str(path))
    if char:
        return f"'{printable(raw)}' contains the control character {char}; allowed: {NO_CONTROL}"
    try:
        resolved = str(real(path))
    except (OSError, RuntimeError, ValueError) as exc:
        return f"{raw!r} cannot be resolved ({type(exc).__name__}); {OUTSIDE_HINT}"
    if any(resolved == folder or resolved.startswith(prefix) for folder, prefix in _inside(root)):
        return None
    return f"{raw!r} points outside the project ({root}); {OUTSIDE_HINT}"


def inside(raw: str, expanded: str, root: Path) -> tuple[Path, str | None]:
    """(`root / expanded`, why it may not be used or None: see `problem`), within `resolving_once` once per run
    for each path: a thousand jobs name the same asset and connector files."""
    memo = run_memo("inside")  # (raw, expanded, root) -> (path, why not)
    known = memo.get((raw, expanded, root)) if memo is not None else None
    if known is None:
        path = root / expanded
        known = (path, problem(raw, path, root))
        if memo is not None:
            memo[(raw, expanded, root)] = known
    return known


_real_roots: dict[Path, Path] = {}  # project root -> the root with symlinks resolved
_prefixes: dict[tuple[Path, ...], tuple[tuple[str, str], ...]] = {}


def _inside(root: Path) -> tuple[tuple[str, str], ...]:
    """(folder, folder + separator) for each folder of `allowed(root.resolve())`: every job of a run checks its
    paths against the same folders, so the root is resolved and the strings are built once per root."""
    real = _real_roots.get(root)
    if real is None:
        real = _real_roots[root] = root.resolve()
    folders = allowed(real)
    known = _prefixes.get(folders)
    if known is None:
        known = _prefixes[folders] = tuple((str(f), str(f) if str(f).endswith(os.sep) else str(f) + os.sep)
                                           for f in folders)
    return known


class _Job(Protocol):
    project_root: Path

    def error(self, message: str, *loc: str | int, cls: type[InputError] = InputError) -> InputError: ...


def require_inside(job: _Job, raw: str, *loc: str) -> Path:
    """`raw` (a path in the job's `loc`) resolved against the project root; refused when it leaves the project."""
    path = job.project_root / raw
    why = problem(raw, path, job.project_root)
    if why:
        raise job.error(why, *loc, cls=ForbiddenPathError)
    return path


# Room for the longest file name the writer puts in a workspace folder (temp files included).
FILE_NAME_RESERVE = 64


@lru_cache(maxsize=16)
def _limits(folder: Path) -> tuple[int, int]:
    """(longest file name in bytes, longest path in bytes) where `folder` is, or the nearest existing parent."""
    for existing in (folder, *folder.parents):
        try:
            if existing.is_dir():
                return os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
        except (OSError, ValueError, AttributeError):
            continue  # too long itself, or no pathconf here: ask a parent
    return 255, 4096


def too_long(output_dir: Path, parts: tuple[str, ...]) -> tuple[int | None, str] | None:
    """Why the folder `output_dir/parts...` cannot hold a workspace on this file system, or None:
    (index of the part too long for a folder name, or None when the whole path is too long; the reason)."""
    name_max, path_max = _limits(output_dir)
    for index, part in enumerate(parts):
        if len(part.encode("utf-8")) > name_max:
            return index, (f"the folder name {part[:40]!r}... is {len(part.encode('utf-8'))} bytes; "
                           f"allowed: at most {name_max} bytes per folder name on this file system")
    full = len(os.fsencode(os.path.join(output_dir, *parts))) + 1 + FILE_NAME_RESERVE
    if full > path_max:
        return None, (f"the workspace path would be about {full} bytes; allowed: at most {path_max} bytes on this "
                      "file system (shorten tenant_id, environment, the job file's name or output_dir)")
    return None
