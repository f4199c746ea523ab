"""The manifest as a render cache, so a no-op run does not render.

A job is reused, not rendered, when the manifest's generator version and template digest are this
generator's, the project root sits where it did relative to the output folder, and the job's recorded
inputs (job, asset and settings files), environment variables and output files all still hash to what
the manifest says. Its manifest entry is then kept as is, so a cached run writes the bytes a full run
writes. Errors are never cached: a job that failed has no entry and is rendered every time.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from dativo_ingest import __version__
from dativo_ingest.errors import DativoTfError, InputError


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def env_digest(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else sha256(value.encode("utf-8"))


def relative(path: Path, root: Path) -> str:
    """`path` relative to `root` with forward slashes; absolute when it lies outside."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(root).as_posix()
    except ValueError:
        return resolved.as_posix()


def job_key(path: Path, root: Path) -> str:
    """How the manifest names a job `find_jobs` returned (already resolved): relative to the root."""
    text, prefix = path.as_posix(), root.as_posix().rstrip("/") + "/"
    return text[len(prefix):] if text.startswith(prefix) else text


@lru_cache(maxsize=1)
def templates_digest() -> str:
    """One sha256 over every template file's relative path and bytes."""
    root = Path(str(files("dativo_ingest.templates")))
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def header(project_root: Path, output_dir: Path) -> dict[str, str]:
    """What every entry depends on besides its own inputs. Module sources are relative to the output folder,
    hence the project root's place."""
    return {
        "generator": "dativo-tf",
        "generator_version": __version__,
        "templates": templates_digest(),
        "project_root": Path(os.path.relpath(project_root, output_dir.resolve())).as_posix(),
    }


@dataclass(frozen=True)
class CachedJob:
    job: str  # relative to the project root
    directory: str | None  # the workspace folder; None when the job has no infrastructure block
    entry: dict = field(hash=False)

    @property
    def warnings(self) -> list[DativoTfError]:
        return [InputError(w["message"], path=w.get("path"), line=w.get("line"), key=w.get("key"))
                for w in self.entry.get("warnings", [])]


class _Digests:
    """sha256 of files, each read once per run (assets and the settings file are shared by many jobs)."""

    def __init__(self) -> None:
        self._known: dict[str, str | None] = {}

    def __call__(self, path: str) -> str | None:
        if path not in self._known:
            try:
                with open(path, "rb") as handle:
                    self._known[path] = sha256(handle.read())
            except OSError:
                self._known[path] = None
        return self._known[path]


def split(job_paths: list[Path], project_root: Path, settings_path: Path | None, output_dir: Path,
          manifest: dict) -> tuple[list[CachedJob], list[Path]]:
    """(jobs the manifest shows up to date, jobs to render)."""
    if {k: manifest.get(k) for k in ("generator", "generator_version", "templates", "project_root")} != header(
        project_root, output_dir
    ):
        return [], list(job_paths)
    by_job = {entry.get("job"): (directory, entry) for directory, entry in manifest.get("workspaces", {}).items()}
    skipped = manifest.get("skipped", {})
    settings = relative(settings_path, project_root) if settings_path else None
    digest = _Digests()
    cached: list[CachedJob] = []
    to_render: list[Path] = []
    root, out = project_root.as_posix(), output_dir.as_posix()
    for path in job_paths:
        job = job_key(path, project_root)
        if job in by_job:
            directory, entry = by_job[job]
            needed = [job, settings] if settings else [job]
            outputs = {f"{out}/{directory}/{name}": sha for name, sha in entry.get("files", {}).items()}
        elif job in skipped:
            directory, entry = None, skipped[job]
            needed, outputs = [job], {}
        else:
            to_render.append(path)
            continue
        inputs: dict = entry.get("inputs", {})
        fresh = (
            all(name in inputs for name in needed)
            and all(digest(name if name.startswith("/") else f"{root}/{name}") == sha for name, sha in inputs.items())
            and all(env_digest(name) == sha for name, sha in entry.get("env", {}).items())
            and bool(outputs or directory is None)
            and all(digest(target) == sha for target, sha in outputs.items())
        )
        if fresh:
            cached.append(CachedJob(job, directory, entry))
        else:
            to_render.append(path)
    return cached, to_render
