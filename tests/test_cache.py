"""The local render cache and parallel rendering: both give exactly the bytes of a full, serial run, and
any change to a job, asset, settings file, template, generator version, environment variable or output
invalidates the cache for the jobs it touches. The cache lives outside the repository and never counts as
drift."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dativo_ingest import cache, templating
from dativo_ingest.cli import main
from dativo_ingest.pipeline import render_all, work_chunks
from dativo_ingest.project import ProjectSettings
from tests.conftest import EXAMPLES, snapshot

ORDERS_JOBS = {"jobs/acme/orders_ecs.yaml", "jobs/acme/orders_lambda.yaml", "jobs/acme/orders_module.yaml"}


def run(repo: Path, monkeypatch, *args: str) -> str:
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(main, ["generate", *args])
    assert result.exit_code in (0, 1), result.output
    return result.output


def fresh_copy(tmp_path: Path, name: str, monkeypatch) -> Path:
    """A copy of the examples repo whose workspaces were just generated (so every job is cached)."""
    repo = tmp_path / name
    shutil.copytree(EXAMPLES, repo, ignore=shutil.ignore_patterns("workspaces", ".terraform"))
    run(repo, monkeypatch)
    return repo


def rendered_jobs(repo: Path) -> set[str]:
    """The jobs a cached run would render (not reuse)."""
    project = ProjectSettings.load(repo / "dativo-tf.yaml")
    result = render_all(project, reuse=project.output_dir)
    return {cache.job_key(p, project.root) for p in result.job_paths} - {c.job for c in result.cached}


def test_a_no_op_run_renders_nothing_and_changes_nothing(tmp_path, monkeypatch):
    repo = fresh_copy(tmp_path, "repo", monkeypatch)
    before = snapshot(repo / "workspaces")
    assert rendered_jobs(repo) == set()
    output = run(repo, monkeypatch, "--check")
    assert "would" not in output.replace("would be", "")
    assert snapshot(repo / "workspaces") == before


def test_cached_runs_replay_warnings_and_skipped_jobs(tmp_path, monkeypatch):
    repo = fresh_copy(tmp_path, "repo", monkeypatch)
    _edit(repo / "jobs/production_tenant/csv_employee_to_iceberg_with_infrastructure_aws.yaml",
          "silence: [module_version]", "silence: []")
    run(repo, monkeypatch)
    output = run(repo, monkeypatch)
    assert "warning: infrastructure.terraform.module_version" in output
    assert "skipped jobs/acme/legacy_no_infra.yaml (no infrastructure block)" in output


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


CHANGES = {
    "job": (lambda r: _edit(r / "jobs/acme/orders_ecs.yaml", "memory_mb: 4096", "memory_mb: 8192"),
            {"jobs/acme/orders_ecs.yaml"}),
    "job without infrastructure": (
        lambda r: _edit(r / "jobs/acme/legacy_no_infra.yaml", "tenant_id: acme",
                        "tenant_id: acme\ninfrastructure: {cloud_provider: aws, runtime_environment: {compute_type: lambda}, "
                        "terraform: {resource_refs: {execution_role_arn: \"arn:aws:iam::123456789012:role/etl\"}}}"),
        {"jobs/acme/legacy_no_infra.yaml"}),
    "asset": (lambda r: _edit(r / "assets/orders.yaml", "retention_days: 365", "retention_days: 400"), ORDERS_JOBS),
    # every job with an infrastructure block; a job without one does not read the settings
    "settings": (lambda r: _edit(r / "dativo-tf.yaml", "Company: Acme", "Company: Acme Corp"), "all but legacy"),
    "hand-edited output": (lambda r: _edit(r / "workspaces/acme/production/orders_ecs/main.tf", "resource", "# x\nresource"),
                           {"jobs/acme/orders_ecs.yaml"}),
    "deleted output": (lambda r: (r / "workspaces/acme/production/hr_ec2/outputs.tf").unlink(), {"jobs/acme/hr_ec2.yaml"}),
    # module mode re-exports each output of a local module: its *.tf files are inputs too
    "module output": (lambda r: (r / "modules/dativo-etl-job/main.tf").open("a").write('\noutput "extra" {\n  value = 1\n}\n'),
                      {"jobs/production_tenant/csv_employee_to_iceberg_with_infrastructure_aws.yaml"}),
    "module file added": (lambda r: (r / "modules/dativo-etl-job/more.tf").write_text('output "more" {\n  value = 1\n}\n'),
                          {"jobs/production_tenant/csv_employee_to_iceberg_with_infrastructure_aws.yaml"}),
    "module file removed": (lambda r: (r / "modules/dativo-etl-job-gcp/main.tf").unlink(),
                            {"jobs/production_tenant/csv_employee_to_iceberg_with_infrastructure_gcp.yaml"}),
}


@pytest.mark.parametrize("change", CHANGES, ids=str)
def test_a_change_re_renders_exactly_the_jobs_it_touches_and_matches_a_full_run(change, tmp_path, monkeypatch):
    mutate, touched = CHANGES[change]
    cached_repo = fresh_copy(tmp_path, "cached", monkeypatch)
    full_repo = fresh_copy(tmp_path, "full", monkeypatch)
    mutate(cached_repo)
    mutate(full_repo)
    every_job = {p.relative_to(cached_repo).as_posix() for p in (cached_repo / "jobs").rglob("*.yaml")}
    if touched == "all but legacy":
        touched = every_job - {"jobs/acme/legacy_no_infra.yaml"}
    assert rendered_jobs(cached_repo) == touched

    run(cached_repo, monkeypatch)
    run(full_repo, monkeypatch, "--full")
    assert snapshot(cached_repo / "workspaces") == snapshot(full_repo / "workspaces")
    assert rendered_jobs(cached_repo) == set()  # and the rewritten cache makes the next run a no-op again


def test_a_new_generator_version_or_template_invalidates_every_job(tmp_path, monkeypatch):
    repo = fresh_copy(tmp_path, "repo", monkeypatch)
    every_job = {p.relative_to(repo).as_posix() for p in (repo / "jobs").rglob("*.yaml")}
    with monkeypatch.context() as m:
        m.setattr(cache, "__version__", "99.0.0")
        cache.generator_digest.cache_clear()
        assert rendered_jobs(repo) == every_job
    cache.generator_digest.cache_clear()

    # a private copy of the templates with one line changed
    templates = tmp_path / "templates"
    shutil.copytree(Path(str(templating.files("dativo_ingest.templates"))), templates)
    (templates / "workspace/versions.tf.j2").write_text("# pinned\n" + (templates / "workspace/versions.tf.j2").read_text())
    monkeypatch.setattr(cache, "files", lambda _: templates)
    monkeypatch.setattr(templating, "files", lambda _: templates)
    cache.generator_digest.cache_clear()
    templating.environment.cache_clear()
    try:
        assert rendered_jobs(repo) == every_job
        run(repo, monkeypatch)
        assert (repo / "workspaces/acme/production/orders_ecs/versions.tf").read_text().count("# pinned") == 1
        assert rendered_jobs(repo) == set()
    finally:
        cache.generator_digest.cache_clear()
        templating.environment.cache_clear()


def test_a_job_whose_paths_use_an_environment_variable_is_always_rendered_and_never_recorded(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo, ignore=shutil.ignore_patterns("workspaces", ".terraform"))
    _edit(repo / "jobs/acme/orders_ecs.yaml", "asset_path: assets/orders.yaml", "asset_path: ${ASSETS}/orders.yaml")
    monkeypatch.setenv("ASSETS", "assets")
    run(repo, monkeypatch)
    assert rendered_jobs(repo) == {"jobs/acme/orders_ecs.yaml"}
    project = ProjectSettings.load(repo / "dativo-tf.yaml")
    cache_text = cache.cache_file(project.output_dir, project.path).read_text()
    assert "orders_ecs.yaml" not in cache_text and cache.sha256(b"assets") not in cache_text


def test_another_settings_file_or_output_folder_is_not_served_from_the_cache(tmp_path, monkeypatch):
    repo = fresh_copy(tmp_path, "repo", monkeypatch)
    shutil.copy(repo / "dativo-tf.yaml", repo / "other.yaml")
    project = ProjectSettings.load(repo / "other.yaml")
    assert render_all(project, reuse=project.output_dir).cached == []

    moved = repo / "nested" / "out"
    shutil.copytree(repo / "workspaces", moved)
    project = ProjectSettings.load(repo / "dativo-tf.yaml")
    assert render_all(project, reuse=moved).cached == []  # module sources are relative to the output folder


def test_the_cache_lives_outside_the_repository_and_a_broken_cache_only_costs_time(tmp_path, monkeypatch):
    repo = fresh_copy(tmp_path, "repo", monkeypatch)
    project = ProjectSettings.load(repo / "dativo-tf.yaml")
    path = cache.cache_file(project.output_dir, project.path)
    assert path.is_file() and repo not in path.parents
    path.write_text("{not json")
    every_job = {p.relative_to(repo).as_posix() for p in (repo / "jobs").rglob("*.yaml")}
    assert rendered_jobs(repo) == every_job
    before = snapshot(repo / "workspaces")
    assert "would" not in run(repo, monkeypatch, "--check").replace("would be", "")
    assert snapshot(repo / "workspaces") == before


def test_parallel_rendering_writes_the_bytes_of_a_serial_run(tmp_path, monkeypatch):
    serial = tmp_path / "serial"
    parallel = tmp_path / "parallel"
    for repo in (serial, parallel):
        shutil.copytree(EXAMPLES, repo, ignore=shutil.ignore_patterns("workspaces", ".terraform"))
    run(serial, monkeypatch, "-j", "1")
    run(parallel, monkeypatch, "-j", "2")
    assert snapshot(serial / "workspaces") == snapshot(parallel / "workspaces")


def test_what_a_worker_hands_back_crosses_without_path_objects(tmp_path, monkeypatch):
    """A worker's result is pickled to the waiting process for every job: Path objects cross as their parts and
    are rebuilt there at several microseconds each, so the inputs travel as text."""
    import pickle

    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo, ignore=shutil.ignore_patterns("workspaces", ".terraform"))
    project = ProjectSettings.load(repo / "dativo-tf.yaml")
    outputs = render_all(project, workers=1).workspaces
    assert outputs and all(ws.inputs for ws in outputs)
    for ws in outputs:
        assert all(isinstance(p, str) and Path(p).is_absolute() and Path(p).is_file() for p in ws.inputs)
        assert b"pathlib" not in pickle.dumps(ws, pickle.HIGHEST_PROTOCOL)


@pytest.mark.parametrize("jobs, workers", [(1000, 2), (10_000, 2), (1000, 8), (150, 2), (3, 2)])
def test_parallel_work_is_handed_out_in_shrinking_chunks_so_the_workers_finish_together(jobs, workers):
    """Big chunks first (few round trips), small ones last: a worker that draws the last chunk ends at most a few
    jobs after the others, instead of a whole fixed-size chunk later."""
    paths = [Path(f"jobs/{i}.yaml") for i in range(jobs)]
    chunks = work_chunks(paths, workers)
    assert [p for chunk in chunks for p in chunk] == paths
    sizes = [len(chunk) for chunk in chunks]
    assert sizes == sorted(sizes, reverse=True) and all(sizes)
    assert sizes[-1] <= 4 and sum(sizes[-workers:]) <= 4 * workers
    assert len(chunks) <= 30 * workers + 8  # a round trip per chunk: tens, not one per job
    if jobs >= 1000:
        assert sizes[0] >= jobs // (4 * workers)
    assert len(chunks) >= min(jobs, workers)  # every worker gets something to do


@pytest.mark.parametrize("jobs, workers", [(100, 64), (4, 4), (7, 3)])
def test_few_jobs_for_many_workers_are_handed_out_one_by_one(jobs, workers):
    assert [len(chunk) for chunk in work_chunks([Path(f"{i}.yaml") for i in range(jobs)], workers)] == [1] * jobs


def test_parallel_rendering_reports_every_error_with_file_and_line(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo, ignore=shutil.ignore_patterns("workspaces", ".terraform"))
    _edit(repo / "jobs/acme/orders_ecs.yaml", "memory_mb: 4096", "memory_mb: lots")
    _edit(repo / "jobs/acme/hr_ec2.yaml", "cloud_provider: aws", "cloud_provider: azure")
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(main, ["generate", "-j", "2"])
    assert result.exit_code == 2
    assert "jobs/acme/orders_ecs.yaml:31: error: infrastructure.runtime_environment.memory_mb: Input should be a valid integer" in result.output
    assert "jobs/acme/hr_ec2.yaml:" in result.output and "azure" in result.output
    assert not (repo / "workspaces").exists()


def test_a_no_op_check_imports_neither_pydantic_nor_jinja(tmp_path, monkeypatch):
    repo = fresh_copy(tmp_path, "repo", monkeypatch)
    code = (
        "import sys\nfrom dativo_ingest.cli import main\n"
        "try:\n    main(['-q', 'generate', '--check'])\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'jinja2', 'cookiecutter', 'dagster'})\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_concurrent_runs_into_a_new_output_folder_all_land(tmp_path):
    """Writers create the output folder, then lock it, before reading any record: runs that each generate
    one job into a folder that does not exist yet all end up in it, and the result is a clean tree."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo, ignore=shutil.ignore_patterns("workspaces", ".terraform"))
    jobs = sorted(p.relative_to(repo).as_posix() for p in (repo / "jobs").rglob("*.yaml"))
    procs = [subprocess.Popen([sys.executable, "-m", "dativo_ingest", "-q", "generate", job], cwd=repo,
                              stderr=subprocess.PIPE) for job in jobs]
    for proc in procs:
        assert proc.wait() == 0, proc.stderr.read()
    check = subprocess.run([sys.executable, "-m", "dativo_ingest", "generate", "--check"], cwd=repo,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert len(list((repo / "workspaces").rglob(".dativo-tf.json"))) == len(jobs) - 1  # one has no infrastructure


@pytest.mark.parametrize("breakage", ["files list", "foreign file name", "bad status", "not JSON", "control character"])
def test_a_record_of_the_wrong_shape_is_an_error_and_nothing_changes(breakage, tmp_path, monkeypatch):
    repo = fresh_copy(tmp_path, "repo", monkeypatch)
    record = repo / "workspaces/acme/production/orders_ecs/.dativo-tf.json"
    data = json.loads(record.read_text())
    if breakage == "files list":
        data["files"] = ["main.tf"]
    elif breakage == "foreign file name":
        data["files"]["terraform.tfstate"] = "0" * 64
    elif breakage == "bad status":
        data["status"] = "gone"
    elif breakage == "control character":
        data["job"] = "jobs/x\nrm -rf /.yaml"
    record.write_text("{" if breakage == "not JSON" else json.dumps(data))
    before = snapshot(repo / "workspaces")
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(main, ["generate"])
    assert result.exit_code == 2, result.output
    assert "workspaces/acme/production/orders_ecs/.dativo-tf.json" in result.output
    assert "not an ownership record dativo-tf writes" in result.output
    assert snapshot(repo / "workspaces") == before


def test_a_fully_cached_run_loads_no_renderer(examples_copy):
    """A no-op `generate --check` (every job cached) imports neither Jinja, pydantic nor multiprocessing."""
    import subprocess
    import sys

    probe = ("import sys\nfrom click.testing import CliRunner\nfrom dativo_ingest.cli import main\n"
             "r = CliRunner().invoke(main, ['-q', 'generate', '--check'])\n"
             "print(r.exit_code, sorted(m for m in ('jinja2', 'pydantic', 'multiprocessing') if m in sys.modules))")
    subprocess.run([sys.executable, "-m", "dativo_ingest", "-q", "generate"], cwd=examples_copy, check=True)
    done = subprocess.run([sys.executable, "-c", probe], cwd=examples_copy, capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[0] == "0 []"


def test_the_generator_digest_is_remembered_only_for_settled_files_and_an_edit_in_place_changes_it(tmp_path,
                                                                                                    monkeypatch):
    """The digest is remembered under the files' sizes, times and inodes. A template edited within the last
    seconds is always read; an edit that keeps the size and puts the old modification time back still
    changes the change time, so it is read again too."""
    monkeypatch.setenv("DATIVO_TF_CACHE_DIR", str(tmp_path / "cache"))
    templates = tmp_path / "templates"
    shutil.copytree(Path(str(templating.files("dativo_ingest.templates"))), templates)
    monkeypatch.setattr(cache, "files", lambda _: templates)
    target = templates / "workspace/versions.tf.j2"

    def digest() -> str:
        cache.generator_digest.cache_clear()
        return cache.generator_digest()

    def memos() -> list[str]:
        return sorted(p.name for p in (tmp_path / "cache").glob("generator-*"))

    try:
        first = digest()
        assert memos() == []  # the copy was just written: nothing is remembered yet
        old = time.time() - 60
        for path in templates.rglob("*"):
            os.utime(path, (old, old))
        time.sleep(0.01)
        now = time.time_ns
        monkeypatch.setattr(cache.time, "time_ns", lambda: now() + 10_000_000_000)  # the ctimes settle too
        assert digest() == first and len(memos()) == 1
        before_edit = memos()
        text = target.read_text()
        target.write_text(text.replace("terraform", "TERRAFORM", 1))  # same size
        os.utime(target, (old, old))
        edited = digest()
        assert edited != first and len(memos()) == 2
        (tmp_path / "cache" / before_edit[0]).write_text("0" * 64)  # the old signature's memo no longer applies
        assert digest() == edited
    finally:
        cache.generator_digest.cache_clear()


def _settled_run(repo: Path, monkeypatch, *args: str) -> str:
    """A run that sees every file as changed long ago (as on the next commit): it records their signatures."""
    now = time.time_ns
    with monkeypatch.context() as m:
        m.setattr(cache.time, "time_ns", lambda: now() + 10 * cache.SETTLED_NS)
        return run(repo, monkeypatch, *args)


def _reads(monkeypatch) -> list[str]:
    reads: list[str] = []
    real = cache.read_regular_stat

    def counting(path, shown):
        reads.append(str(path))
        return real(path, shown)

    monkeypatch.setattr(cache, "read_regular_stat", counting)
    return reads


def test_a_no_op_check_after_files_settled_reads_no_input_or_output_file(tmp_path, monkeypatch):
    """Like git's index: a file whose size, times and inode match its signature is not read again."""
    repo = fresh_copy(tmp_path, "repo", monkeypatch)
    _settled_run(repo, monkeypatch)  # a no-op writing run records the signatures
    reads = _reads(monkeypatch)
    before = snapshot(repo / "workspaces")
    output = run(repo, monkeypatch, "--check")
    assert "would" not in output.replace("would be", "") and reads == []
    assert snapshot(repo / "workspaces") == before


def test_a_no_op_writing_run_leaves_the_cache_file_as_it_was(tmp_path, monkeypatch):
    """The pre-commit hook's run: when nothing changed, the cache it would write is the one it read, so the file
    is not written again (encoding and writing megabytes of it cost ~0.05 s at 1,000 jobs); a change still
    updates it."""
    repo = fresh_copy(tmp_path, "repo", monkeypatch)
    _settled_run(repo, monkeypatch)  # records the signatures: the cache is now what a no-op would write
    project = ProjectSettings.load(repo / "dativo-tf.yaml")
    path = cache.cache_file(project.output_dir, project.path)
    before = path.stat()
    _settled_run(repo, monkeypatch)
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    _edit(repo / "jobs/acme/orders_ecs.yaml", "memory_mb: 4096", "memory_mb: 8192")
    run(repo, monkeypatch)
    assert path.stat().st_ino != before.st_ino
    assert "jobs/acme/orders_ecs.yaml" not in rendered_jobs(repo)


def test_a_no_op_check_after_files_settled_opens_no_ownership_record(tmp_path, monkeypatch):
    """An up-to-date job's record is the one its cache entry describes (checked by sha256), so the plan takes
    it from there instead of opening each record again; a record it does not describe is read as before."""
    from dativo_ingest import records

    repo = fresh_copy(tmp_path, "repo", monkeypatch)
    _settled_run(repo, monkeypatch)
    opened: list[str] = []
    real = records.read_regular
    monkeypatch.setattr(records, "read_regular", lambda path, shown: opened.append(str(path)) or real(path, shown))
    output = run(repo, monkeypatch, "--check")
    assert "would" not in output.replace("would be", "")
    assert not [p for p in opened if p.endswith(records.RECORD)]
    # a job the cache no longer shows up to date: its record is read (and the job rendered)
    _edit(repo / "jobs/acme/orders_ecs.yaml", "memory_mb: 4096", "memory_mb: 8192")
    run(repo, monkeypatch, "--check")
    assert str(repo / "workspaces/acme/production/orders_ecs" / records.RECORD) in opened


@pytest.mark.parametrize("what", ["workspace file", "job file"])
def test_an_edit_that_keeps_size_and_modification_time_is_still_seen(what, tmp_path, monkeypatch):
    """The signature holds the change time, which no user can set back: an edit in place of a settled file
    that keeps its size and restores its modification time is read, and shows as drift (or re-renders)."""
    repo = fresh_copy(tmp_path, "repo", monkeypatch)
    _settled_run(repo, monkeypatch)
    if what == "workspace file":
        path = repo / "workspaces/acme/production/orders_ecs/main.tf"
        old, new = "aws_ecs_task_definition", "aws_ecs_task_definitioN"
    else:
        path = repo / "jobs/acme/orders_ecs.yaml"
        old, new = "4096", "8192"
    info = path.stat()
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert path.stat().st_size == info.st_size and path.stat().st_mtime_ns == info.st_mtime_ns
    reads = _reads(monkeypatch)
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(main, ["generate", "--check"])
    assert result.exit_code == 1, result.output
    assert str(path) in reads
    assert "workspaces/acme/production/orders_ecs/" in result.output


def test_files_changed_just_before_a_run_get_no_signature(tmp_path, monkeypatch):
    """Within one tick of the file system's clock a write can keep a file's times: a file whose change time
    is less than the settling time before the run is never remembered by its signature."""
    repo = fresh_copy(tmp_path, "repo", monkeypatch)
    files = [p for folder in ("jobs", "workspaces") for p in (repo / folder).rglob("*") if p.is_file()]
    moment_later = min(p.lstat().st_ctime_ns for p in files) + cache.FINE_SETTLED_NS // 2
    with monkeypatch.context() as m:  # the files were written a moment ago
        m.setattr(cache.time, "time_ns", lambda: moment_later)
        assert "error" not in run(repo, monkeypatch)
    project = ProjectSettings.load(repo / "dativo-tf.yaml")
    _, signatures = cache.load(project.output_dir, project.path)
    assert not [p for p in signatures if "/workspaces/" in p or "/jobs/" in p]
    _settled_run(repo, monkeypatch)
    _, signatures = cache.load(project.output_dir, project.path)
    assert any("/workspaces/" in p for p in signatures) and any("/jobs/" in p for p in signatures)


@pytest.mark.parametrize("ctime_ns, read_after_ns, remembered", [
    (1_700_000_000_123_456_789, 200_000_000, True),  # fine timestamps: settled a fraction of a second later
    (1_700_000_000_123_456_789, 50_000_000, False),
    (1_700_000_000_000_000_000, 200_000_000, False),  # whole seconds: perhaps a file system counting in seconds
    (1_700_000_000_000_000_000, 1_900_000_000, False),
    (1_700_000_000_000_000_000, 2_100_000_000, True),
])
def test_a_signature_waits_out_the_file_systems_timestamp_granularity(ctime_ns, read_after_ns, remembered,
                                                                       tmp_path, monkeypatch):
    """A change time with a sub-second part comes from a file system with fine timestamps (the kernel's clock
    moves them every few milliseconds), so the file settles FINE_SETTLED_NS after it changed, and files written
    by one run are read by signature on the next; a change time on a whole second may come from one that counts
    in seconds (or two), so that file waits SETTLED_NS."""
    from types import SimpleNamespace

    monkeypatch.setattr(cache.time, "time_ns", lambda: ctime_ns + read_after_ns)
    digests = cache.Digests()
    info = SimpleNamespace(st_size=1, st_mtime_ns=ctime_ns, st_ctime_ns=ctime_ns, st_ino=7)
    digests.inputs([], tmp_path, read={tmp_path / "a.yaml": ("0" * 64, info, False)})
    assert (str(tmp_path / "a.yaml") in digests.signatures) is remembered


def _run_saving_after_read(repo: Path, monkeypatch, job: Path, edited: str) -> str:
    """A serial run during which `edited` is saved to `job` just after the run read it."""
    from dativo_ingest.config import JobConfig

    real = JobConfig.from_yaml.__func__

    def from_yaml(cls, path, *args, **kwargs):
        loaded = real(cls, path, *args, **kwargs)
        if Path(path).name == job.name:
            job.write_text(edited)
        return loaded

    with monkeypatch.context() as patched:
        patched.setattr(JobConfig, "from_yaml", classmethod(from_yaml))
        return run(repo, monkeypatch, "-j", "1")


def test_a_job_edited_while_it_renders_is_rendered_again_by_the_next_run(tmp_path, monkeypatch):
    """The cache records the sha256 of the bytes rendering parsed, not of a later read: an edit saved while a
    run renders the job is not mistaken for what that run rendered."""
    repo = fresh_copy(tmp_path, "repo", monkeypatch)
    job = repo / "jobs/acme/orders_lambda.yaml"
    text = job.read_text()
    assert "timeout_seconds: 600" in text
    edited = text.replace("timeout_seconds: 600", "timeout_seconds: 700")
    job.write_text(text.replace("timeout_seconds: 600", "timeout_seconds: 650"))
    _run_saving_after_read(repo, monkeypatch, job, edited)
    tfvars = (repo / "workspaces/acme/staging/orders_lambda/terraform.tfvars").read_text()
    assert "650" in tfvars  # what the run read
    assert "jobs/acme/orders_lambda.yaml" in rendered_jobs(repo)
    run(repo, monkeypatch)
    assert "700" in (repo / "workspaces/acme/staging/orders_lambda/terraform.tfvars").read_text()


def test_a_job_without_infrastructure_edited_while_it_renders_is_rendered_by_the_next_run(tmp_path, monkeypatch):
    """As for a rendered job: the cache records a skipped job with the bytes the run parsed. An infrastructure
    block saved while the run reads the job must not be recorded as skipped, or no run would render it."""
    repo = fresh_copy(tmp_path, "repo", monkeypatch)
    job = repo / "jobs/acme/legacy_no_infra.yaml"
    text = job.read_text()
    with_infra = text.replace("tenant_id: acme", "tenant_id: acme\ninfrastructure: {cloud_provider: aws, "
                              "runtime_environment: {compute_type: lambda}, terraform: {resource_refs: "
                              "{execution_role_arn: \"arn:aws:iam::123456789012:role/etl\"}}}", 1)
    assert with_infra != text
    job.write_text(text + "# touched\n")
    output = _run_saving_after_read(repo, monkeypatch, job, with_infra)
    assert "skipped jobs/acme/legacy_no_infra.yaml" in output  # what the run read
    assert "jobs/acme/legacy_no_infra.yaml" in rendered_jobs(repo)
    run(repo, monkeypatch)
    assert (repo / "workspaces/acme/production/legacy_no_infra/main.tf").is_file()


AWS_CSV_JOB = "jobs/production_tenant/csv_employee_to_iceberg_with_infrastructure_aws.yaml"
AWS_CSV_OUTPUTS = "workspaces/production_tenant/production/csv_employee_to_iceberg_with_infrastructure_aws/outputs.tf"


def _linked_module(repo: Path, link: str) -> None:
    """The AWS module as `link` sets it up: its main.tf a symlink to a shared file, or the folder a symlink to v1."""
    module = repo / "modules/dativo-etl-job"
    if link == "file":
        (repo / "modules/shared").mkdir()
        (module / "main.tf").rename(repo / "modules/shared/main.tf")
        (module / "main.tf").symlink_to("../shared/main.tf")
    else:
        module.rename(repo / "modules/v1")
        shutil.copytree(repo / "modules/v1", repo / "modules/v2")
        with (repo / "modules/v2/main.tf").open("a") as fh:
            fh.write('\noutput "from_v2" {\n  value = 2\n}\n')
        module.symlink_to("v1", target_is_directory=True)


@pytest.mark.parametrize("link", ["file", "folder"])
def test_a_module_changed_through_a_symlink_re_renders_the_jobs_that_use_it(link, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo, ignore=shutil.ignore_patterns("workspaces", ".terraform"))
    _linked_module(repo, link)
    run(repo, monkeypatch)
    assert rendered_jobs(repo) == set()
    if link == "file":  # an edit of the shared file the link points to
        with (repo / "modules/shared/main.tf").open("a") as fh:
            fh.write('\noutput "shared_b" {\n  value = 1\n}\n')
        new_output = "shared_b"
    else:  # the folder link pointed at another version
        (repo / "modules/dativo-etl-job").unlink()
        (repo / "modules/dativo-etl-job").symlink_to("v2", target_is_directory=True)
        new_output = "from_v2"
    assert rendered_jobs(repo) == {AWS_CSV_JOB}
    run(repo, monkeypatch)
    assert f'output "{new_output}"' in (repo / AWS_CSV_OUTPUTS).read_text()
    assert rendered_jobs(repo) == set()


def test_a_module_file_named_like_a_pattern_is_a_file_like_any_other(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo, ignore=shutil.ignore_patterns("workspaces", ".terraform"))
    (repo / "modules/dativo-etl-job/*.tf").write_text('output "starred" {\n  value = 1\n}\n')
    run(repo, monkeypatch)
    assert 'output "starred"' in (repo / AWS_CSV_OUTPUTS).read_text()
    assert rendered_jobs(repo) == set()
    (repo / "modules/dativo-etl-job/*.tf").write_text('output "starred_again" {\n  value = 1\n}\n')
    assert rendered_jobs(repo) == {AWS_CSV_JOB}


def test_a_module_link_re_pointed_while_a_run_reads_it_is_rendered_again_by_the_next_run(tmp_path, monkeypatch):
    """The module block's source, the outputs it re-exports and what the cache records all come from the one
    folder the link named when the run resolved it."""
    from dativo_ingest import modules

    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo, ignore=shutil.ignore_patterns("workspaces", ".terraform"))
    _linked_module(repo, "folder")
    link = repo / "modules/dativo-etl-job"
    real = modules.read

    def read(folder):
        if link.resolve().name == "v1":  # re-pointed just after the run resolved it
            link.unlink()
            link.symlink_to("v2", target_is_directory=True)
        return real(folder)

    with monkeypatch.context() as patched:
        patched.setattr(modules, "read", read)
        run(repo, monkeypatch, "-j", "1")
    workspace = repo / AWS_CSV_OUTPUTS.rpartition("/")[0]
    assert "modules/v1" in (workspace / "main.tf").read_text()
    assert "from_v2" not in (workspace / "outputs.tf").read_text()  # v1's outputs, as its source says
    assert rendered_jobs(repo) == {AWS_CSV_JOB}
    run(repo, monkeypatch)
    assert "modules/v2" in (workspace / "main.tf").read_text() and "from_v2" in (workspace / "outputs.tf").read_text()


@pytest.mark.parametrize("path, root", [
    ("/repo/jobs/a.yaml", "/repo"), ("/repo", "/repo"), ("/repo-2/jobs/a.yaml", "/repo"), ("/repository/a.yaml", "/repo"),
    ("/elsewhere/a.yaml", "/repo"), ("/a.yaml", "/"), ("/", "/"), ("/repo/a.yaml", "/repo/jobs"),
])
def test_an_input_is_named_relative_to_the_project_as_pathlib_names_it(path, root):
    """The cache names inputs by text, not by building Paths: the names are what `relative_to` gives."""
    try:
        expected = Path(path).relative_to(root).as_posix()
    except ValueError:
        expected = Path(path).as_posix()
    assert cache._relative_resolved(Path(path), Path(root)) == expected
