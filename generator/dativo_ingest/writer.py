"""The only module that touches disk: plan the changes, then write them all (or none) atomically.

The manifest (`<output_dir>/.dativo-tf-manifest.json`) records every generated file with its sha256 and
the inputs it came from. It is how we know which files are ours: stale workspaces are removed, files we
did not write are never touched, and hand edits to generated files are detected. It is also the render
cache (see `cache`).
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from dativo_ingest import hcl
from dativo_ingest.cache import CachedJob, env_digest, header, job_key, relative, sha256
from dativo_ingest.errors import ForbiddenPathError, InputError

if TYPE_CHECKING:
    from dativo_ingest.pipeline import Output

MANIFEST = ".dativo-tf-manifest.json"


@dataclass
class Change:
    path: str  # relative to output_dir
    action: str  # create | update | remove | unchanged
    old: bytes | None = None
    new: bytes | None = None
    hand_edited: bool = False


@dataclass
class Plan:
    output_dir: Path
    changes: list[Change] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)
    manifest_old: bytes | None = None
    manifest_new: bytes = b""
    added: int = 0
    changed: int = 0
    removed: int = 0

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.action != "unchanged"]

    @property
    def manifest_changed(self) -> bool:
        return self.manifest_old != self.manifest_new

    @property
    def has_changes(self) -> bool:
        return bool(self.pending) or self.manifest_changed


@contextmanager
def exclusive(output_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the output folder, so runs that write into it one job each (Dagster
    materialising several assets at once, parallel hooks) read and rewrite the manifest one at a time.
    POSIX only; the folder must exist."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fd = os.open(output_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def load_manifest(output_dir: Path) -> tuple[dict, bytes | None]:
    path = output_dir / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {"workspaces": {}}, None
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not _well_formed(data):
        raise InputError("the manifest is not what dativo-tf writes (edited by hand?); delete it to regenerate "
                         "from scratch", path=path)
    data.setdefault("workspaces", {})
    return data, raw


def _well_formed(data: object) -> bool:
    def mapping_of_str(value: object) -> bool:
        return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())

    if not isinstance(data, dict):
        return False
    workspaces, skipped = data.get("workspaces", {}), data.get("skipped", {})
    return (
        isinstance(workspaces, dict) and isinstance(skipped, dict)
        and all(isinstance(e, dict) and isinstance(e.get("job", ""), str) and mapping_of_str(e.get("files", {}))
                and mapping_of_str(e.get("inputs", {})) for e in workspaces.values())
        and all(isinstance(e, dict) and mapping_of_str(e.get("inputs", {})) for e in skipped.values())
    )


def _contained(root: Path, relative_path: str) -> Path:
    """`root / relative_path`, refusing anything that resolves outside `root` (itself resolved)."""
    target = (root / relative_path).resolve()
    if target != root and root not in target.parents:
        raise ForbiddenPathError(f"refusing to write outside the output folder {root}", path=relative_path)
    return target


class _Targets:
    """Absolute paths of files under the output folder, each folder resolved (and checked) once."""

    def __init__(self, output_dir: Path):
        self.root = output_dir.resolve()
        self._folders: dict[str, Path] = {}

    def __call__(self, relative_path: str) -> Path:
        folder, _, name = relative_path.rpartition("/")
        if folder not in self._folders:
            self._folders[folder] = _contained(self.root, folder) if folder else self.root
        return self._folders[folder] / name


def _entry(ws: Output, project_root: Path) -> dict:
    entry: dict = {
        "job": ws.job,
        "inputs": dict(sorted((relative(p, project_root), sha256(p.read_bytes())) for p in ws.inputs)),
        "files": {name: sha256(data) for name, data in ws.files.items()},
    }
    if ws.env:
        entry["env"] = {name: env_digest(name) for name in ws.env}
    if ws.warnings:
        entry["warnings"] = [
            {k: v for k, v in (("path", w.path), ("line", w.line), ("key", w.key), ("message", w.message)) if v}
            for w in ws.warnings
        ]
    return entry


def plan(workspaces: list[Output], output_dir: Path, project_root: Path, *, job_paths: list[Path],
         full_run: bool, cached: Iterable[CachedJob] = (), skipped: Iterable[Path] = (),
         keep_old: bool = False) -> Plan:
    """Compare what the jobs render to what is on disk. Raises before anything is written.

    `cached` jobs are up to date (see `cache.split`): their manifest entries are kept as they are.
    `skipped` are the rendered jobs without an infrastructure block. `keep_old` keeps the old bytes of
    changed files (for a diff); otherwise only what must be written is held in memory.
    """
    target_of = _Targets(output_dir)
    old_manifest, old_raw = load_manifest(output_dir)
    old_ws: dict[str, dict] = old_manifest.get("workspaces", {})
    old_files = {f"{d}/{name}": digest for d, entry in old_ws.items() for name, digest in entry.get("files", {}).items()}
    result = Plan(output_dir=output_dir, manifest_old=old_raw)
    run_jobs = {job_key(p, project_root) for p in job_paths}

    new_ws: dict[str, dict] = {}
    new_skipped: dict[str, dict] = {}
    seen_dirs: dict[str, str] = {}
    for job in cached:
        if job.directory is None:
            new_skipped[job.job] = job.entry
        else:
            new_ws[job.directory] = job.entry
            seen_dirs[job.directory] = job.job
    for path in skipped:  # paths from find_jobs, already resolved
        job = job_key(path, project_root)
        new_skipped[job] = {"inputs": {job: sha256(path.read_bytes())}}
    for ws in workspaces:
        directory, job_rel = ws.directory, ws.job
        if directory in seen_dirs:
            raise InputError(
                f"two jobs render to the same workspace {directory!r}: {seen_dirs[directory]} and {job_rel}; "
                "rename one job file", path=job_rel,
            )
        seen_dirs[directory] = job_rel
        for name, new in ws.files.items():
            relative_path = f"{directory}/{name}"
            target = target_of(relative_path)
            old = target.read_bytes() if target.is_file() else None
            if old is None:
                result.changes.append(Change(relative_path, "create", None, new))
            elif relative_path not in old_files and old != new:
                raise ForbiddenPathError(
                    f"{target} exists and was not generated by dativo-tf; move it away or rename the job",
                    path=job_rel,
                )
            elif old == new:
                result.changes.append(Change(relative_path, "unchanged"))
            else:
                hand = relative_path in old_files and sha256(old) != old_files[relative_path]
                result.changes.append(Change(relative_path, "update", old if keep_old else None, new, hand_edited=hand))
        new_ws[directory] = _entry(ws, project_root)

    def gone(job_rel: str) -> bool:
        """An earlier entry this run does not produce is stale when its job is gone, is part of this run
        (so it now renders elsewhere or not at all), or on a full run."""
        return full_run or job_rel in run_jobs or not (project_root / job_rel).is_file()

    kept = {}
    for directory, entry in old_ws.items():
        if directory in new_ws:
            continue
        if not gone(entry.get("job", "")):
            kept[directory] = entry
            continue
        for name, digest in sorted(entry.get("files", {}).items()):
            target = target_of(f"{directory}/{name}")
            if target.is_file():
                old = target.read_bytes()
                result.changes.append(Change(f"{directory}/{name}", "remove", old if keep_old else None, None,
                                             hand_edited=sha256(old) != digest))
    # Files of a workspace that it no longer produces (e.g. terraform.tfvars after switching to JSON).
    for directory, entry in new_ws.items():
        for name in sorted(set(old_ws.get(directory, {}).get("files", {})) - set(entry["files"])):
            target = target_of(f"{directory}/{name}")
            if target.is_file():
                result.changes.append(Change(f"{directory}/{name}", "remove", target.read_bytes() if keep_old else None))
    for job_rel, entry in old_manifest.get("skipped", {}).items():
        if job_rel not in new_skipped and not gone(job_rel):
            new_skipped[job_rel] = entry

    result.manifest = {
        **header(project_root, output_dir),
        "workspaces": dict(sorted({**kept, **new_ws}.items())),
        "skipped": dict(sorted(new_skipped.items())),
    }
    result.manifest_new = hcl.dumps_json(result.manifest).encode("utf-8")
    result.changes.sort(key=lambda c: c.path)

    by_dir: dict[str, set[str]] = {}
    for c in result.pending:
        by_dir.setdefault(str(PurePosixPath(c.path).parent), set()).add(c.action)
    for directory, actions in by_dir.items():
        if directory not in old_ws and "create" in actions:
            result.added += 1
        elif directory not in new_ws:
            result.removed += 1
        else:
            result.changed += 1
    return result


def apply(result: Plan) -> None:
    """Write every pending change: all temp files first, then rename them into place."""
    output_dir = result.output_dir
    target_of = _Targets(output_dir)
    staged: list[tuple[Path, Path]] = []
    try:
        writes = [(c.path, c.new) for c in result.pending if c.action in ("create", "update")]
        if result.manifest_changed:
            writes.append((MANIFEST, result.manifest_new))
        for relative_path, data in writes:
            target = target_of(relative_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".dativo-tf-", dir=target.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            staged.append((Path(tmp), target))
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    # the manifest goes last, so an interrupted run is redone in full next time
    for tmp, target in sorted(staged, key=lambda pair: pair[1].name == MANIFEST):
        os.replace(tmp, target)
    for change in result.pending:
        if change.action == "remove":
            target = target_of(change.path)
            target.unlink(missing_ok=True)
            _prune_empty(target.parent, output_dir.resolve())


def _prune_empty(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()  # only succeeds when empty: users' own files keep their folder
        except OSError:
            return
        folder = folder.parent


def unified_diff(change: Change, prefix: str) -> str:
    """A git-style diff: a/ and b/ paths relative to the project root, no timestamps."""
    path = f"{prefix}{change.path}" if prefix else change.path
    old = (change.old or b"").decode("utf-8", "replace").splitlines(keepends=True)
    new = (change.new or b"").decode("utf-8", "replace").splitlines(keepends=True)
    fromfile = "/dev/null" if change.old is None else f"a/{path}"
    tofile = "/dev/null" if change.new is None else f"b/{path}"
    lines = list(difflib.unified_diff(old, new, fromfile, tofile))
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
