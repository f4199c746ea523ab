"""A team working in pull requests, on real git repositories: merge-safe output, retired (never orphaned)
workspaces, renames, the change report in every format, and hooks that catch deletions and hand edits."""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from dativo_ingest.changes import MARKDOWN_LIMIT, MARKER, render_markdown
from dativo_ingest.cli import main
from tests.conftest import EXAMPLES, ROOT, snapshot

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git is needed for the team workflow")
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env={**os.environ, **GIT_ENV})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def cli(repo: Path, monkeypatch, *args: str):
    monkeypatch.chdir(repo)
    return CliRunner().invoke(main, list(args))


def new_job(repo: Path, name: str, tenant: str = "acme", source: str = "jobs/acme/orders_lambda.yaml") -> Path:
    text = (repo / source).read_text().replace("tenant_id: acme", f"tenant_id: {tenant}")
    path = repo / "jobs" / tenant / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """The examples as a git repository with generated, committed workspaces on `main`."""
    root = tmp_path / "infra"
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns("workspaces", ".terraform"))
    git(root, "init", "-q", "-b", "main")
    assert cli(root, monkeypatch, "generate").exit_code == 0
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    return root


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


# --- merge-safe output --------------------------------------------------------------------------------


def test_two_branches_touching_different_jobs_merge_without_conflict_and_check_clean(repo, monkeypatch):
    git(repo, "checkout", "-qb", "add-a")
    new_job(repo, "alpha")
    (repo / "jobs/acme/events_gce.yaml").unlink()  # and one branch removes a job
    assert cli(repo, monkeypatch, "generate").exit_code == 0
    commit_all(repo, "add alpha, drop events_gce")
    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-qb", "add-b")
    new_job(repo, "beta", tenant="globex")
    job = repo / "jobs/acme/orders_ecs.yaml"
    job.write_text(job.read_text().replace("memory_mb: 4096", "memory_mb: 8192"))  # the other changes one
    assert cli(repo, monkeypatch, "generate").exit_code == 0
    commit_all(repo, "add beta, resize orders_ecs")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-edit", "add-a")
    git(repo, "merge", "-q", "--no-edit", "add-b")  # raises on a conflict
    assert git(repo, "status", "--porcelain") == ""
    shutil.rmtree(Path(os.environ["HOME"]) / ".cache", ignore_errors=True)  # CI has no render cache
    check = cli(repo, monkeypatch, "generate", "--check")
    assert check.exit_code == 0, check.output
    assert (repo / "workspaces/globex/staging/beta/.dativo-tf.json").is_file()
    assert json.loads((repo / "workspaces/acme/staging/events_gce/.dativo-tf.json").read_text())["status"] == "retired"


def test_records_hold_nothing_that_depends_on_the_installation(repo):
    record = json.loads((repo / "workspaces/acme/production/orders_ecs/.dativo-tf.json").read_text())
    assert set(record) == {"dativo_tf_record", "files", "job", "settings", "status"}
    assert not (repo / "workspaces/.dativo-tf-manifest.json").exists()


def test_a_wheel_install_generates_the_bytes_of_the_editable_install(repo, tmp_path):
    wheels, source = tmp_path / "wheels", tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "workspaces", "__pycache__", "build",
                                                                "*.egg-info", ".hypothesis"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
                   check=True, capture_output=True)
    wheel = next(wheels.glob("dativo_tf-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert any("/.github/workflows/dativo-tf.yml" in n for n in names), "the scaffold's .github folder is packaged"
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target), "DATIVO_TF_CACHE_DIR": str(tmp_path / "cache")}
    where = subprocess.run([sys.executable, "-c", "import dativo_ingest; print(dativo_ingest.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(target))
    check = subprocess.run([sys.executable, "-m", "dativo_ingest", "generate", "--check"], cwd=repo, env=env,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    again = tmp_path / "again"  # the same repo elsewhere, generated from scratch by the wheel
    shutil.copytree(repo, again, ignore=shutil.ignore_patterns("workspaces", ".git"))
    subprocess.run([sys.executable, "-m", "dativo_ingest", "generate"], cwd=again, env=env, check=True,
                   capture_output=True)
    assert snapshot(again / "workspaces") == snapshot(repo / "workspaces")


# --- retire, never orphan -----------------------------------------------------------------------------

RETIRE_CASES = {
    "deleted": lambda r: (r / "jobs/acme/hr_ec2.yaml").unlink(),
    "infrastructure removed": lambda r: _cut_infrastructure(r / "jobs/acme/hr_ec2.yaml"),
    "tenant changed": lambda r: _replace(r / "jobs/acme/hr_ec2.yaml", "tenant_id: acme", "tenant_id: initech"),
}


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _cut_infrastructure(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: text.index("infrastructure:")])


@pytest.mark.parametrize("case", RETIRE_CASES)
def test_a_workspace_that_would_disappear_is_retired_and_reported(case, repo, monkeypatch):
    (repo / "workspaces/acme/production/hr_ec2/terraform.tfstate").write_text("{}")
    RETIRE_CASES[case](repo)
    result = cli(repo, monkeypatch, "generate")
    assert result.exit_code == 0, result.output
    assert "retired workspaces/acme/production/hr_ec2: its job jobs/acme/hr_ec2.yaml is gone" in result.output
    ws = repo / "workspaces/acme/production/hr_ec2"
    assert (ws / "terraform.tfstate").read_text() == "{}"
    for name in ("backend.tf", "providers.tf", "versions.tf", "variables.tf", "terraform.tfvars"):
        assert (ws / name).read_bytes() == git_show(repo, f"workspaces/acme/production/hr_ec2/{name}")
    assert not (ws / "outputs.tf").exists()
    main_tf = (ws / "main.tf").read_text()
    assert main_tf.startswith("# Code generated by dativo-tf from jobs/acme/hr_ec2.yaml. DO NOT EDIT.\n")
    assert "RETIRED" in main_tf and "dativo-tf prune" in main_tf
    assert not [line for line in main_tf.splitlines() if line and not line.startswith("#")]  # no resources
    report = json.loads(cli(repo, monkeypatch, "changes", "--format", "json").output)["workspaces"]
    if case == "tenant changed":  # same content under another tenant: a rename, reported once
        entry = next(w for w in report if w["workspace"] == "workspaces/initech/production/hr_ec2")
        assert entry["status"] == "renamed" and entry["renamed_from"] == "workspaces/acme/production/hr_ec2"
    else:
        entry = next(w for w in report if w["workspace"] == "workspaces/acme/production/hr_ec2")
        assert entry["status"] == "retired" and entry["action"] == "destroy"
        assert {"aws_instance.job", "aws_scheduler_schedule.job"} <= set(entry["resources"]["removed"])
        assert entry["resources"]["added"] == entry["resources"]["changed"] == []
    # prune leaves a folder holding local state alone
    prune = cli(repo, monkeypatch, "prune", "--yes")
    assert "kept workspaces/acme/production/hr_ec2: holds terraform.tfstate" in prune.output
    assert (ws / "main.tf").is_file()


def git_show(repo: Path, path: str) -> bytes:
    return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=repo, capture_output=True, check=True).stdout


def test_a_misspelt_infrastructure_key_is_an_error_not_a_silent_retirement(repo, monkeypatch):
    _replace(repo / "jobs/acme/hr_ec2.yaml", "infrastructure:", "infrastucture:")
    before = snapshot(repo / "workspaces")
    result = cli(repo, monkeypatch, "generate")
    assert result.exit_code == 2
    assert "jobs/acme/hr_ec2.yaml:" in result.output and "did you mean 'infrastructure'?" in result.output
    assert snapshot(repo / "workspaces") == before


@pytest.mark.parametrize("typo,key", [("complience:", "compliance"), ("finnops:", "finops"), ("taem:", "team")])
def test_near_misses_of_asset_blocks_are_errors(typo, key, repo, monkeypatch):
    asset = repo / "assets/orders.yaml"
    _replace(asset, f"{key}:", typo)
    result = cli(repo, monkeypatch, "validate")
    assert result.exit_code == 2
    assert f"did you mean {key!r}?" in result.output


def test_prune_removes_only_retired_workspaces_after_confirmation(repo, monkeypatch):
    (repo / "jobs/acme/hr_ec2.yaml").unlink()
    assert cli(repo, monkeypatch, "generate").exit_code == 0
    ws = repo / "workspaces/acme/production/hr_ec2"
    (ws / "notes.md").write_text("mine")
    declined = CliRunner().invoke(main, ["prune"], input="n\n")
    assert declined.exit_code != 0 and (ws / "main.tf").is_file()
    result = cli(repo, monkeypatch, "prune", "--yes")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in ws.iterdir()) == ["notes.md"]
    assert (repo / "workspaces/acme/production/orders_ecs/main.tf").is_file()
    assert cli(repo, monkeypatch, "generate", "--check").exit_code == 0


# --- renames and the change report --------------------------------------------------------------------


def test_a_moved_job_is_reported_as_renamed_with_the_state_move_commands(repo, monkeypatch):
    git(repo, "mv", "jobs/acme/hr_ec2.yaml", "jobs/acme/people_ec2.yaml")
    result = cli(repo, monkeypatch, "changes", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    renamed = [w for w in data["workspaces"] if w["status"] == "renamed"]
    assert [(w["workspace"], w["renamed_from"]) for w in renamed] == [
        ("workspaces/acme/production/people_ec2", "workspaces/acme/production/hr_ec2")]
    commands = renamed[0]["commands"]
    assert "terraform -chdir=workspaces/acme/production/hr_ec2 init -input=false && terraform -chdir=" \
           "workspaces/acme/production/hr_ec2 state pull > /tmp/dativo-tf-people_ec2.tfstate" == commands[0]
    assert "state push /tmp/dativo-tf-people_ec2.tfstate" in commands[1]
    assert data["summary"]["retired"] == 0  # the rename is reported once, not as a retire plus an add


def test_a_tenant_change_with_the_same_content_is_a_rename(repo, monkeypatch):
    path = repo / "jobs/acme/hr_ec2.yaml"
    _replace(path, "tenant_id: acme", "tenant_id: initech")
    data = json.loads(cli(repo, monkeypatch, "changes", "--format", "json").output)
    assert [w["renamed_from"] for w in data["workspaces"] if w["status"] == "renamed"] == [
        "workspaces/acme/production/hr_ec2"]


def _change_report_fixture(repo: Path) -> None:
    _replace(repo / "jobs/acme/orders_ecs.yaml", "memory_mb: 4096", "memory_mb: 8192")
    _replace(repo / "jobs/acme/orders_ecs.yaml", "cron: \"0 3 * * *\"", "cron: \"30 4 * * *\"")
    _replace(repo / "jobs/acme/events_gke.yaml", "cost_center: WEB-100", "cost_center: FIN-001")
    (repo / "jobs/acme/events_gce.yaml").unlink()
    new_job(repo, "gamma")


def test_changes_json_is_exact_and_versioned(repo, monkeypatch):
    _change_report_fixture(repo)
    result = cli(repo, monkeypatch, "changes", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["version"] == 1 and data["base"] == "HEAD" and len(data["base_commit"]) == 40
    assert data["summary"] == {"retired": 1, "renamed": 0, "added": 1, "modified": 2, "unchanged": 6}
    by = {w["workspace"].removeprefix("workspaces/"): w for w in data["workspaces"]}
    ecs = by["acme/production/orders_ecs"]
    assert ecs["status"] == "modified" and ecs["action"] == "apply" and not ecs["tags_only"]
    assert ecs["reasons"] == ["job file jobs/acme/orders_ecs.yaml changed"]
    compute = {d["key"]: (d["old"], d["new"]) for d in ecs["compute"]}
    assert compute["runtime_environment.memory_mb"] == (4096, 8192)
    assert ecs["resources"]["changed"] == ["aws_scheduler_schedule.job"]
    gke = by["acme/production/events_gke"]
    assert gke["tags_only"] and gke["action"] == "apply"
    assert {(d["key"], d["old"], d["new"]) for d in gke["tags"]} == {("CostCenter", "WEB-100", "FIN-001")}
    assert {(d["key"], d["old"], d["new"]) for d in gke["labels"]} == {("cost_center", "web-100", "fin-001")}
    assert by["acme/staging/events_gce"]["action"] == "destroy"
    assert by["acme/staging/gamma"]["status"] == "added"
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "templates/schemas/changes-v1.schema.json").read_text())
    jsonschema.validate(data, schema)


def test_changes_markdown_is_one_sticky_comment_with_destroys_first(repo, monkeypatch):
    _change_report_fixture(repo)
    text = cli(repo, monkeypatch, "changes", "--format", "markdown").output
    assert text.startswith(MARKER + "\n")
    assert text.index("applying them destroys") < text.index("| status |")
    assert "`workspaces/acme/staging/events_gce` (job file deleted)" in text
    assert text.index("#### Functional changes") < text.index("#### Tag-only changes")
    assert "| `CostCenter` | `WEB-100` | `FIN-001` |" in text
    assert "<details><summary><code>workspaces/acme/production/orders_ecs</code>: modified, apply</summary>" in text


def test_changes_text_and_github_matrix(repo, monkeypatch):
    _change_report_fixture(repo)
    text = cli(repo, monkeypatch, "changes").output
    assert "retired   workspaces/acme/staging/events_gce  action: destroy" in text
    assert "  compute runtime_environment.memory_mb: 4096 -> 8192" in text
    matrix = cli(repo, monkeypatch, "changes", "--format", "github-matrix").output
    lines = matrix.splitlines()
    assert len(lines) == 1
    include = json.loads(lines[0])["include"]
    assert {e["workspace"]: e["action"] for e in include} == {
        "workspaces/acme/production/events_gke": "apply", "workspaces/acme/production/orders_ecs": "apply",
        "workspaces/acme/staging/events_gce": "destroy", "workspaces/acme/staging/gamma": "apply"}
    assert set(include[0]) == {"workspace", "tenant", "environment", "cloud", "action"}


def test_unchanged_inputs_report_no_change(repo, monkeypatch):
    result = cli(repo, monkeypatch, "changes", "--format", "github-matrix")
    assert result.output == '{"include":[]}\n'


def test_a_missing_base_ref_in_a_shallow_clone_is_an_error_naming_the_fetch(repo, tmp_path, monkeypatch):
    _replace(repo / "jobs/acme/orders_ecs.yaml", "memory_mb: 4096", "memory_mb: 8192")
    commit_all(repo, "resize")
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth=1", f"file://{repo}", str(clone)], check=True, capture_output=True)
    result = cli(clone, monkeypatch, "changes", "--base", "origin/base-branch")
    assert result.exit_code == 2
    assert "the base ref 'origin/base-branch' is not in this clone" in result.output
    assert "git fetch --no-tags --depth=1 origin base-branch" in result.output
    assert "Traceback" not in result.output


def test_a_500_job_change_stays_under_the_comment_limit(repo, monkeypatch):
    for i in range(500):
        new_job(repo, f"job{i:03d}", tenant=f"t{i % 10}")
    report = cli(repo, monkeypatch, "changes", "--format", "markdown")
    assert report.exit_code == 0
    assert len(report.output) <= MARKDOWN_LIMIT
    assert "Full report: `dativo-tf changes --base HEAD --format json`" in report.output
    assert "| added | 500 |" in report.output
    matrix = cli(repo, monkeypatch, "changes", "--format", "github-matrix").output.splitlines()
    assert [len(json.loads(line)["include"]) for line in matrix] == [256, 244]
    assert json.loads(cli(repo, monkeypatch, "changes", "--format", "github-matrix", "--chunk", "1").output) == \
        json.loads(matrix[1])


def test_markdown_summarises_progressively():
    from dativo_ingest.changes import ChangeReport, Diff, WorkspaceChange

    many = [WorkspaceChange(f"workspaces/t/e/job{i}", f"jobs/job{i}.yaml", "t", "e", "aws", "modified", "apply",
                            reasons=["asset assets/a.yaml changed"], tags_only=True,
                            tags=[Diff("CostCenter", "A" * 40, "B" * 40)]) for i in range(300)]
    report = ChangeReport("main", "0" * 40, many)
    full = render_markdown(report, limit=10**9)
    assert "| `CostCenter` |" in full
    short = render_markdown(report, limit=20_000)
    assert len(short) <= 20_000 and "<code>workspaces/t/e/job0</code>" in short and "| `CostCenter` |" not in short
    tiny = render_markdown(report, limit=5_000)
    assert len(tiny) <= 5_000 and "more workspace(s)" in tiny


# --- hooks ----------------------------------------------------------------------------------------------

PRE_COMMIT = Path(sys.executable).with_name("pre-commit")


@pytest.mark.skipif(not PRE_COMMIT.exists(), reason="pre-commit is a test dependency")
@pytest.mark.parametrize("edit", ["delete a job", "hand-edit a generated file"])
def test_the_hook_runs_on_every_commit_and_catches(edit, repo, tmp_path):
    if edit == "delete a job":
        git(repo, "rm", "-q", "jobs/acme/hr_ec2.yaml")
    else:
        target = repo / "workspaces/acme/production/hr_ec2/main.tf"
        target.write_text(target.read_text() + "# tweak\n")
        git(repo, "add", str(target))
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(tmp_path / "pc")}
    proc = subprocess.run([str(PRE_COMMIT), "try-repo", str(ROOT), "dativo-tf-check"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # no YAML staged for the hand edit: runs anyway
    assert "workspaces/acme/production/hr_ec2" in proc.stdout


def test_the_change_report_carries_the_cost_delta_and_shows_a_cost_center_move(repo, monkeypatch):
    # orders_lambda takes its cost center from the asset; moving it to FIN-001 moves its cost, nothing else
    job = repo / "jobs/acme/orders_lambda.yaml"
    job.write_text(job.read_text().replace("asset_path: assets/orders.yaml",
                                           "asset_path: assets/orders.yaml\nfinops:\n  cost_center: FIN-001"))
    _replace(repo / "jobs/acme/orders_ecs.yaml", "memory_mb: 4096", "memory_mb: 8192")
    data = json.loads(cli(repo, monkeypatch, "changes", "--format", "json").output)
    by = {w["workspace"].removeprefix("workspaces/"): w for w in data["workspaces"]}
    lam = by["acme/staging/orders_lambda"]
    assert lam["tags_only"] and lam["cost"]["moved"]
    assert lam["cost"]["cost_center_before"] == "SALES-042" and lam["cost"]["cost_center_after"] == "FIN-001"
    assert lam["cost"]["before_usd"] == lam["cost"]["after_usd"] > 0
    ecs = by["acme/production/orders_ecs"]["cost"]
    assert ecs["after_usd"] > ecs["before_usd"]  # twice the memory
    moved = lam["cost"]["after_usd"]
    assert data["cost"]["monthly_delta_usd"] == pytest.approx(ecs["after_usd"] - ecs["before_usd"], abs=0.011)
    assert data["cost"]["by_cost_center"]["FIN-001"] == pytest.approx(moved, abs=0.011)
    text = cli(repo, monkeypatch, "changes", "--format", "markdown").output
    top = text.splitlines()[3]
    assert top.startswith("**Estimated cost:** +$") and "CostCenter FIN-001 +$" in top and "SALES-042 -$" in top
    assert f"moves from CostCenter SALES-042 to FIN-001" in text


def test_generate_out_elsewhere_writes_module_sources_relative_to_that_folder(repo, tmp_path, monkeypatch):
    out = tmp_path / "elsewhere" / "deep"
    result = cli(repo, monkeypatch, "generate", "--out", str(out))
    assert result.exit_code == 0, result.output
    ws = "production_tenant/production/csv_employee_to_iceberg_with_infrastructure_aws"
    source = re.search(r'source += "(.*)"', (out / ws / "main.tf").read_text()).group(1)
    assert source.startswith("../") and (out / ws / source).resolve() == (repo / "modules/dativo-etl-job").resolve()
    # records do not depend on where a run writes
    assert (out / "acme/production/hr_ec2/.dativo-tf.json").read_bytes() == \
        (repo / "workspaces/acme/production/hr_ec2/.dativo-tf.json").read_bytes()


_RECORD_TEXT = ["", "a", "jobs/acme/orders.yaml", 'q"uote', "back\\slash", "new\nline", "\x00\x7f", "é東✓", "\u2028",
                "../dativo-tf.yaml"]


@pytest.mark.parametrize("seed", range(10))
def test_an_ownership_record_is_the_json_it_always_was(seed):
    """Records are written out directly (faster than json's indenting encoder): byte for byte what
    json.dumps(indent=2, sort_keys=True, ensure_ascii=False) gives, so records of earlier runs still match."""
    import random

    from dativo_ingest.records import Record, parse_record

    rng = random.Random(seed)
    for _ in range(200):
        files = {rng.choice(_RECORD_TEXT) + rng.choice("abc"): rng.choice(_RECORD_TEXT) for _ in range(rng.randint(0, 8))}
        record = Record(rng.choice(_RECORD_TEXT), rng.choice([None, *_RECORD_TEXT]), rng.choice(["active", "retired"]), files)
        data = {"dativo_tf_record": 1, "files": files, "job": record.job, "settings": record.settings,
                "status": record.status}
        assert record.dumps() == (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    good = Record("jobs/x.yaml", "../dativo-tf.yaml", "active", {"main.tf": "a" * 64})
    assert parse_record(good.dumps(), "x") == good


@pytest.mark.parametrize("seed", range(5))
def test_a_record_rebuilt_from_the_cache_is_the_record_read_from_disk(seed):
    """An up-to-date job's record is rebuilt from its cache entry instead of read (`known_record`): only when
    the bytes hash to the sha256 the entry names, and then the record is what parsing those bytes gives.
    Fields no record dativo-tf writes could hold are refused, as parsing refuses them."""
    import hashlib
    import random

    from dativo_ingest.errors import InputError
    from dativo_ingest.records import GENERATED_NAMES, RECORD, Record, known_record, parse_record

    rng = random.Random(seed)
    names = sorted(GENERATED_NAMES) + [RECORD, "../x", "extra.tf"]
    for _ in range(300):
        job, settings = rng.choice(_RECORD_TEXT), rng.choice([None, *_RECORD_TEXT])
        files = {rng.choice(names): rng.choice(["a" * 64, "0f" * 32, "A" * 64, "short"]) for _ in range(rng.randint(0, 6))}
        raw = Record(job, settings, "active", files).dumps()
        sha = hashlib.sha256(raw).hexdigest()
        try:
            parsed = parse_record(raw, "x")
        except InputError:
            parsed = None
        assert known_record(job, settings, files, sha) == (None if parsed is None else (raw, parsed))
        assert known_record(job, settings, files, "b" * 64) is None
