"""Finding job files: explicit paths (files or folders), else the `jobs` globs of dativo-tf.yaml."""

from __future__ import annotations

from pathlib import Path

from dativo_ingest.errors import InputError
from dativo_ingest.settings import ProjectSettings

YAML_SUFFIXES = (".yaml", ".yml")


def find_jobs(project: ProjectSettings, paths: tuple[str, ...] | list[str] = ()) -> list[Path]:
    """Job files, sorted and de-duplicated, so the result never depends on file-system order."""
    found: set[Path] = set()
    globbed = {p.resolve() for pattern in project.base.jobs for p in project.root.glob(pattern) if p.is_file()}
    if paths:
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                # A folder holds jobs, but also assets and connectors: inside the project, take only the
                # files the `jobs` globs select.
                candidates = {p.resolve() for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file()}
                inside = candidates & globbed
                found.update(inside if inside or _within(path, project.root) else candidates)
            elif path.is_file():
                found.add(path)
            else:
                raise InputError("no such file or folder", path=raw)
    else:
        found.update(p for p in globbed if p.suffix in YAML_SUFFIXES)
    settings_file = project.path.resolve() if project.path else None
    return sorted((p.resolve() for p in found if p.resolve() != settings_file), key=lambda p: p.as_posix())


def _within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except ValueError:
        return False
