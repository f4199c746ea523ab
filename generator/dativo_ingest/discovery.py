"""Finding job files: explicit paths (files or folders), else the `jobs` globs of dativo-tf.yaml."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import TYPE_CHECKING

from dativo_ingest.errors import InputError, InputErrors
from dativo_ingest.paths import NO_CONTROL, control_char, printable

if TYPE_CHECKING:
    from dativo_ingest.project import ProjectSettings

YAML_SUFFIXES = (".yaml", ".yml")


def find_jobs(project: ProjectSettings, paths: tuple[str, ...] | list[str] = ()) -> list[Path]:
    """Job files, resolved, sorted and de-duplicated, so the result never depends on file-system order.

    Never silent: a `jobs` pattern of the settings file that matches nothing, a YAML path that is not a
    regular file (broken symlink, FIFO, socket, folder), and a path with a control character are errors."""
    resolve = _Resolver()
    errors: list[InputError] = []
    found: set[Path] = set()
    globbed: set[Path] = set()
    written = "jobs" in project.raw  # the defaults may match nothing (jobs given on the command line)
    for index, pattern in enumerate(project.job_patterns):
        matched = False
        for p in project.root.glob(pattern):
            matched = True
            if _is_job_file(p, errors, project.root):
                globbed.add(resolve(p))
        if not matched and written:
            from dativo_ingest.yamlsource import line_of

            errors.append(InputError(
                f"the pattern {pattern!r} matches no file; allowed: patterns that each match at least one job "
                "file (a pattern matching nothing would drop every workspace it made)",
                path=project.display_path, line=line_of(project.text, ["jobs", index]), key=f"jobs[{index}]"))
    if paths:
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                # A folder holds jobs, but also assets and connectors: inside the project, take only the
                # files the `jobs` globs select.
                candidates = {resolve(p) for p in path.rglob("*") if _is_job_file(p, errors, project.root)}
                inside = candidates & globbed
                found.update(inside if inside or _within(path, project.root) else candidates)
            elif path.suffix in YAML_SUFFIXES or path.is_file() or path.is_symlink():
                if _is_job_file(path, errors, project.root, explicit=True):
                    found.add(resolve(path))
            else:
                errors.append(InputError("no such file or folder", path=printable(raw)))
    else:
        found.update(p for p in globbed if p.suffix in YAML_SUFFIXES)
    if errors:
        raise errors[0] if len(errors) == 1 else InputErrors(errors)
    settings_file = project.path.resolve() if project.path else None
    return sorted((p for p in found if p != settings_file), key=lambda p: p.as_posix())


def _is_job_file(path: Path, errors: list[InputError], root: Path, explicit: bool = False) -> bool:
    """Whether `path` is a job file to read; a YAML path that cannot be one is recorded in `errors`."""
    if path.suffix not in YAML_SUFFIXES and not explicit:
        return False
    char = control_char(str(path))
    if char:
        errors.append(InputError(f"the job path contains the control character {char}; allowed: {NO_CONTROL}",
                                 path=_shown(path, root)))
        return False
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        kind = "a broken symlink" if path.is_symlink() else "missing"
    except OSError as exc:
        kind = f"unreadable ({exc.strerror})"
    else:
        if stat.S_ISREG(mode):
            return True
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device or special file")
    errors.append(InputError(f"the job path is {kind}; allowed: regular files (or symlinks to them)",
                             path=_shown(path, root)))
    return False


def _shown(path: Path, root: Path) -> str:
    try:
        text = path.relative_to(root).as_posix()
    except ValueError:
        text = str(path)
    return printable(text)


class _Resolver:
    """`Path.resolve` with each folder resolved once: thousands of jobs share a few dozen folders."""

    def __init__(self) -> None:
        self._folders: dict[Path, Path] = {}

    def __call__(self, path: Path) -> Path:
        folder = self._folders.get(path.parent)
        if folder is None:
            folder = self._folders[path.parent] = path.parent.resolve()
        return (folder / path.name).resolve() if path.is_symlink() else folder / path.name


def _within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except ValueError:
        return False
