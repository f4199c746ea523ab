"""Finding job files: explicit paths (files or folders), else the `jobs` globs of dativo-tf.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dativo_ingest.errors import InputError

if TYPE_CHECKING:
    from dativo_ingest.project import ProjectSettings

YAML_SUFFIXES = (".yaml", ".yml")


def find_jobs(project: ProjectSettings, paths: tuple[str, ...] | list[str] = ()) -> list[Path]:
    """Job files, resolved, sorted and de-duplicated, so the result never depends on file-system order."""
    resolve = _Resolver()
    found: set[Path] = set()
    globbed = {resolve(p) for pattern in project.job_patterns for p in project.root.glob(pattern) if p.is_file()}
    if paths:
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                # A folder holds jobs, but also assets and connectors: inside the project, take only the
                # files the `jobs` globs select.
                candidates = {resolve(p) for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file()}
                inside = candidates & globbed
                found.update(inside if inside or _within(path, project.root) else candidates)
            elif path.is_file():
                found.add(resolve(path))
            else:
                raise InputError("no such file or folder", path=raw)
    else:
        found.update(p for p in globbed if p.suffix in YAML_SUFFIXES)
    settings_file = project.path.resolve() if project.path else None
    return sorted((p for p in found if p != settings_file), key=lambda p: p.as_posix())


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
