"""Finding job files: explicit paths (files or folders), else the `jobs` globs of dativo-tf.yaml."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from dativo_ingest.errors import InputError, InputErrors
from dativo_ingest.paths import NO_CONTROL, control_char, printable, real, resolving_once

if TYPE_CHECKING:
    from dativo_ingest.project import ProjectSettings

YAML_SUFFIXES = (".yaml", ".yml")


def find_jobs(project: ProjectSettings, paths: tuple[str, ...] | list[str] = ()) -> list[Path]:
    """Job files, resolved, sorted and de-duplicated, so the result never depends on file-system order.

    Never silent: a `jobs` pattern of the settings file that matches nothing, a YAML path that is not a
    regular file (broken symlink, FIFO, socket, folder), and a path with a control character are errors."""
    with resolving_once():  # thousands of jobs share a few dozen folders
        return _find_jobs(project, paths)


def _find_jobs(project: ProjectSettings, paths: tuple[str, ...] | list[str]) -> list[Path]:
    errors: list[InputError] = []
    found: set[Path] = set()
    globbed: set[Path] = set()
    written = "jobs" in project.raw  # the defaults may match nothing (jobs given on the command line)
    for index, pattern in enumerate(project.job_patterns):
        matched = False
        for p in project.root.glob(pattern):
            matched = True
            link = _job_file(p, errors, project.root)
            if link is not None:
                globbed.add(real(p, link))
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
                candidates = {real(p, link) for p in path.rglob("*")
                              if (link := _job_file(p, errors, project.root)) is not None}
                inside = candidates & globbed
                found.update(inside if inside or _within(path, project.root) else candidates)
            elif path.suffix in YAML_SUFFIXES or path.is_file() or path.is_symlink():
                link = _job_file(path, errors, project.root, explicit=True)
                if link is not None:
                    found.add(real(path, link))
            else:
                errors.append(InputError("no such file or folder", path=printable(raw)))
    else:
        found.update(p for p in globbed if p.suffix in YAML_SUFFIXES)
    if errors:
        raise errors[0] if len(errors) == 1 else InputErrors(errors)
    settings_file = project.path.resolve() if project.path else None
    return sorted((p for p in found if p != settings_file), key=lambda p: p.as_posix())


def _job_file(path: Path, errors: list[InputError], root: Path, explicit: bool = False) -> bool | None:
    """Whether the job file at `path` is a symlink; None when `path` is not a job file to read (a YAML path
    that cannot be one is recorded in `errors`)."""
    if path.suffix not in YAML_SUFFIXES and not explicit:
        return None
    char = control_char(str(path))
    if char:
        errors.append(InputError(f"the job path contains the control character {char}; allowed: {NO_CONTROL}",
                                 path=_shown(path, root)))
        return None
    link = False
    try:
        mode = os.lstat(path).st_mode  # one system call for the common case, a regular file
        if stat.S_ISLNK(mode):
            link = True
            mode = os.stat(path).st_mode
    except FileNotFoundError:
        kind = "a broken symlink" if link else "missing"
    except OSError as exc:
        kind = f"unreadable ({exc.strerror})"
    else:
        if stat.S_ISREG(mode):
            return link
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device or special file")
    errors.append(InputError(f"the job path is {kind}; allowed: regular files (or symlinks to them)",
                             path=_shown(path, root)))
    return None


def _shown(path: Path, root: Path) -> str:
    try:
        text = path.relative_to(root).as_posix()
    except ValueError:
        text = str(path)
    return printable(text)


def _within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except ValueError:
        return False
