"""Load and render every job, collecting every error so one bad job never hides the next."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dativo_ingest.config import JobConfig
from dativo_ingest.discovery import find_jobs
from dativo_ingest.errors import DativoTfError, InputErrors
from dativo_ingest.render import Workspace, render_job
from dativo_ingest.settings import ProjectSettings


@dataclass
class Rendered:
    project: ProjectSettings
    job_paths: list[Path]
    workspaces: list[Workspace] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[DativoTfError] = field(default_factory=list)
    warnings: list[DativoTfError] = field(default_factory=list)


def _flatten(exc: DativoTfError) -> list[DativoTfError]:
    return exc.errors if isinstance(exc, InputErrors) else [exc]


def render_all(project: ProjectSettings, paths: tuple[str, ...] | list[str] = ()) -> Rendered:
    job_paths = find_jobs(project, paths)
    result = Rendered(project, job_paths)
    for path in job_paths:
        display = _display(path, project.root)
        try:
            job = JobConfig.from_yaml(path, project_root=project.root)
            workspace = render_job(job, project)
        except DativoTfError as exc:
            for err in _flatten(exc):
                if err.path is None or err.path == str(path):
                    err.path = display
                result.errors.append(err)
            continue
        if workspace is None:
            result.skipped.append(display)
        else:
            result.workspaces.append(workspace)
            result.warnings.extend(workspace.warnings)
    return result


def _display(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)
