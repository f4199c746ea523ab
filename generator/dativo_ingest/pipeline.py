"""Load and render every job, collecting every error so one bad job never hides the next.

Jobs the local render cache shows up to date are reused instead of rendered (see `cache`); the rest are
rendered in worker processes when there are enough of them to pay for the workers. A writing run passes a
stage (see `writer`): the workers then also write each new workspace there, so writing uses every CPU too.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from dativo_ingest import cache
from dativo_ingest.discovery import find_jobs
from dativo_ingest.errors import DativoTfError, InputErrors
from dativo_ingest.paths import resolving_once
from dativo_ingest.project import ProjectSettings
from dativo_ingest.records import JOURNAL
from dativo_ingest.rendered import Output

# Below this many jobs to render, starting worker processes costs more than it saves.
PARALLEL_MIN_JOBS = 100


@dataclass(frozen=True)
class Skipped:
    """A job without an infrastructure block, with its file's sha256 as rendering read it (for the cache)."""

    input_shas: dict[str, str | None] | None


Outcome = Union[Output, Skipped, list[DativoTfError]]


@dataclass
class Rendered:
    project: ProjectSettings
    job_paths: list[Path]
    workspaces: list[Output] = field(default_factory=list)
    cached: list[cache.CachedJob] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # rendered jobs without an infrastructure block
    skipped_shas: dict[Path, dict] = field(default_factory=dict)  # their sha256 as read (see `Skipped`)
    errors: list[DativoTfError] = field(default_factory=list)
    warnings: list[DativoTfError] = field(default_factory=list)
    stage: Path | None = None  # where new workspaces were staged; the caller removes it (writer.discard_stage)
    records_read: dict[str, bytes] = field(default_factory=dict)  # ownership records the cache check read
    digest: cache.Digests | None = None  # the hashes the cache check took (their signatures are saved)
    cache_read: tuple[dict, dict] | None = None  # the cache's jobs and signatures as read (see `cache.load`)

    @property
    def workspace_count(self) -> int:
        return len(self.workspaces) + sum(1 for c in self.cached if c.directory is not None)

    @property
    def skipped_jobs(self) -> list[str]:
        """Every job without an infrastructure block, rendered or cached, relative to the project root."""
        root = self.project.root
        return sorted([cache.job_key(p, root) for p in self.skipped] + [c.job for c in self.cached if c.directory is None])


@dataclass(frozen=True)
class StageTo:
    """Stage new workspaces for the output folder `output_dir` (held under its exclusive lock)."""
    output_dir: Path
    settings: str  # the settings file as records name it (writer.settings_id)


def render_all(project: ProjectSettings, paths: tuple[str, ...] | list[str] = (), *,
               reuse: Path | None = None, workers: int | None = None, stage_to: StageTo | None = None) -> Rendered:
    """Render the jobs at `paths` (default: the project's `jobs` globs).

    `reuse`: an output folder whose render cache may show jobs up to date; those are not rendered.
    `workers`: processes to render with (default: one per CPU once there are PARALLEL_MIN_JOBS jobs).
    `stage_to`: stage new workspaces (see `writer.stage_workspace`); the result names the stage.
    """
    job_paths = find_jobs(project, paths)
    result = Rendered(project, job_paths)
    to_render = job_paths
    # a journal means a run was interrupted half way: its folders may hold files the cache does not know
    if reuse is not None and not os.path.lexists(reuse / JOURNAL):
        jobs, signatures = result.cache_read = cache.load(reuse, project.path)
        result.digest = cache.Digests(signatures)
        result.cached, to_render = cache.split(job_paths, project.root, reuse, jobs, result.digest)
        result.records_read = result.digest.records
        for job in result.cached:
            result.warnings.extend(job.warnings)
    if workers is None:
        workers = _cpu_count() if len(to_render) >= PARALLEL_MIN_JOBS else 1
    workers = min(workers, len(to_render)) if hasattr(os, "fork") else 1
    if workers > 1:  # a child loads the templates, then parses jobs, while this process reads the settings
        from dativo_ingest import templating

        templating.compile_aside(to_render)
    try:
        return _render_and_collect(result, project, to_render, workers, stage_to)
    finally:
        if workers > 1:
            templating.discard_aside()


def _render_and_collect(result: Rendered, project: ProjectSettings, to_render: list[Path], workers: int,
                        stage_to: StageTo | None) -> Rendered:
    if to_render or not result.cached:
        project.validate()  # a fully cached run uses settings whose exact bytes were validated before
    stage = None
    if stage_to is not None and to_render:
        from dativo_ingest.writer import discard_stage, open_stage

        try:
            result.stage = open_stage(stage_to.output_dir)
            stage = (result.stage, stage_to)
        except OSError:  # a read-only output folder: nothing is staged, the writer reports what it cannot write
            result.stage = None
    try:
        with resolving_once():
            outcomes = _render_many(project, to_render, workers, stage)
    except BaseException:  # the caller never sees the stage: remove it here (Ctrl-C, a crashed worker)
        if stage is not None:
            discard_stage(result.stage)
        raise
    for path, outcome in zip(to_render, outcomes):
        if isinstance(outcome, list):
            display = cache.job_key(path, project.root)
            for err in outcome:
                if err.path is None or err.path == str(path):
                    err.path = display
                result.errors.append(err)
        elif isinstance(outcome, Skipped):
            result.skipped.append(path)
            if outcome.input_shas is not None:
                result.skipped_shas[path] = outcome.input_shas
        else:
            result.workspaces.append(outcome)
            result.warnings.extend(outcome.warnings)
    return result


_digests: cache.Digests | None = None  # the inputs' hashes, per render_all (each asset read once per process)
Stage = tuple[Path, StageTo]


def _render_one(project: ProjectSettings, path: Path, stage: Stage | None = None) -> Outcome:
    from dativo_ingest.config import JobConfig
    from dativo_ingest.render import render_job

    try:
        job = JobConfig.from_yaml(path, project_root=project.root)
        ws = render_job(job, project)
    except InputErrors as exc:
        return exc.errors
    except DativoTfError as exc:
        return [exc]
    digests = _digests or cache.Digests()
    read = {path: job.read_as} if job.read_as else {}
    if ws is None:  # hashed as read: a block saved since is not recorded as skipped
        return Skipped(digests.inputs([path], project.root, resolved=(path,), read=read))
    files = {name: text.encode("utf-8") for name, text in ws.files.items()}
    output = Output(ws.job.relative_path, ws.directory.as_posix(), files, [str(p) for p in ws.inputs], ws.env,
                    ws.warnings)
    if not ws.env:  # the cache never records a job whose paths use ${VAR}
        # a module as rendering read it; named by its folder as written, so a re-pointed link shows
        read.update({pattern: (digest, None, False) for pattern, digest in ws.watched.items()})
        output.input_shas = digests.inputs(ws.inputs + list(ws.watched), project.root,
                                           resolved=(path, *ws.watched), read=read)
    if stage is not None:
        from dativo_ingest.writer import stage_workspace

        stage_workspace(stage[0], stage[1].output_dir, output, stage[1].settings)
    return output


_worker_args: tuple[ProjectSettings, Stage | None] | None = None  # set in the parent before forking


def _render_chunk(paths: list[Path]) -> list[Outcome]:
    assert _worker_args is not None
    return [_render_one(_worker_args[0], path, _worker_args[1]) for path in paths]


SMALLEST_CHUNK = 4


def work_chunks(paths: list[Path], workers: int) -> list[list[Path]]:
    """`paths` in order, cut into chunks that shrink as the work runs out (each a quarter of what is left per
    worker, at least SMALLEST_CHUNK, or one when the jobs are few): few round trips at first, and at the end no
    worker is left alone with a big chunk while the others wait."""
    chunks, start = [], 0
    smallest = max(1, min(SMALLEST_CHUNK, len(paths) // (workers * 4)))  # few jobs: one each, for every worker
    while start < len(paths):
        size = max(smallest, (len(paths) - start) // (workers * 4))
        chunks.append(paths[start:start + size])
        start += size
    return chunks


@contextmanager
def collecting() -> Iterator[None]:
    """The garbage collector on (rendering leaves ~20 reference cycles per job), then as it was: the command
    line runs without it until here (see `launch.main`)."""
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if not was:
            gc.disable()


def _render_many(project: ProjectSettings, paths: list[Path], workers: int, stage: Stage | None = None) -> list[Outcome]:
    global _digests, _worker_args
    _digests = cache.Digests()
    # Workers are forked so they share the loaded modules, compiled templates and settings; where fork is
    # not available (Windows) rendering stays in this process.
    if workers <= 1:
        try:
            with collecting():
                return [_render_one(project, path, stage) for path in paths]
        finally:
            _digests = None
    _worker_args = (project, stage)
    freezing = False
    try:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from dativo_ingest import render  # noqa: F401  imported and compiled before forking, so workers share them
        from dativo_ingest.templating import environment, workspace_templates

        env = environment()
        for name in workspace_templates(env):
            env.get_template(name)
        # what is loaded now lasts the whole run: the workers' garbage collections skip it (and so leave the
        # memory pages they share with this process unwritten); an application that froze its own is left be
        if gc.get_freeze_count() == 0:
            freezing = True
            gc.freeze()
        with collecting(), ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                               initializer=_worker_started, initargs=(os.getpid(),)) as pool:
            return [outcome for chunk in pool.map(_render_chunk, work_chunks(paths, workers)) for outcome in chunk]
    finally:
        if freezing:
            gc.unfreeze()
        _worker_args = None
        _digests = None


def _worker_started(parent: int) -> None:
    """A forked worker drops its copies of the parent's locks, and exits when the parent is gone (killed):
    an orphaned worker would wait for work forever."""
    import threading
    import time

    from dativo_ingest.writer import release_inherited_locks

    release_inherited_locks()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
