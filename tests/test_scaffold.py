"""`dativo-tf init` and the cookiecutter template: every cloud x compute type renders a repo that generates."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dativo_ingest.cli import main
from dativo_ingest.scaffold import template_dir
from tests.conftest import snapshot
from tests.tfcheck import fmt_check, parse, schema_problems, tfvars_conform

COMBOS = [("aws", c) for c in ("ecs_task", "lambda", "ec2_instance")] + [("gcp", c) for c in ("cloud_run", "gce_instance", "gke_pod")]


@pytest.mark.parametrize("cloud, compute", COMBOS)
def test_init_then_generate_then_check(tmp_path, monkeypatch, cloud, compute):
    repo = tmp_path / "repo"
    result = CliRunner().invoke(main, ["init", str(repo), "--no-input", "--set", f"cloud_provider={cloud}",
                                       "--set", f"compute_type={compute}"])
    assert result.exit_code == 0, result.output
    for name in ("dativo-tf.yaml", ".pre-commit-config.yaml", ".github/workflows/dativo-tf.yml", ".gitignore", "README.md"):
        assert (repo / name).is_file(), name
    monkeypatch.chdir(repo)
    assert CliRunner().invoke(main, ["generate"]).exit_code == 0
    assert CliRunner().invoke(main, ["generate", "--check"]).exit_code == 0
    fmt_check([repo / "workspaces"])
    problems = []
    for path in sorted((repo / "workspaces").rglob("*.tf")):
        problems += schema_problems(parse(path), path.name)
    assert problems == []
    tfvars_conform(next((repo / "workspaces").rglob("variables.tf")).parent)


def test_plain_cookiecutter_api(tmp_path):
    from cookiecutter.main import cookiecutter

    out = cookiecutter(str(template_dir()), no_input=True, output_dir=str(tmp_path), extra_context={"cloud_provider": "gcp"})
    assert "gcp:" in (tmp_path / "dativo-infra/dativo-tf.yaml").read_text() and out


@pytest.mark.parametrize("answer, message", [
    ("state_bucket=Bad_Bucket", "state_bucket"), ("region=mars-1", "region"), ("compute_type=lambda", "compute_type"),
])
def test_bad_answers_fail_and_leave_nothing(tmp_path, capfd, answer, message):
    repo = tmp_path / "repo"
    result = CliRunner().invoke(main, ["init", str(repo), "--no-input", "--set", "cloud_provider=gcp", "--set", answer])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()  # one line: the hook's problems, no cookiecutter traceback
    assert line.startswith("error: --set: the template rejected the answers: ") and f"{message}=" in line
    assert capfd.readouterr().err == ""  # the hook's process printed nothing itself
    assert not repo.exists()


@pytest.mark.parametrize("args, message", [
    (["--set", "environment=prod"], "error: --set: 'prod' is not a choice for environment; allowed: production, staging, dev"),
    (["--set", "cloud_provider=gcp", "--set", "compute_type=lambda"],
     "error: --set: the template rejected the answers: compute_type='lambda': allowed for gcp: cloud_run, gce_instance, gke_pod"),
    (["--set", "environment"], "error: --set: 'environment': expected KEY=VALUE"),
])
def test_init_errors_are_one_line_without_traceback(tmp_path, capfd, args, message):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "r"), "--no-input", *args])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [message]
    assert "Traceback" not in capfd.readouterr().err


def test_init_prints_the_next_steps(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "r"), "--no-input", "--set", "tenant_id=shop"])
    assert result.exit_code == 0
    steps = result.stderr.split("next steps:\n", 1)[1]
    assert "replace the placeholder ARNs" in steps and "jobs/shop/example_job.yaml" in steps
    assert "create the Terraform state bucket shop-tf-state: aws s3 mb s3://shop-tf-state" in steps
    assert "pre-commit install" in steps


def test_init_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    result = CliRunner().invoke(main, ["init", str(tmp_path), "--no-input"])
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert snapshot(tmp_path) == {"keep.txt": b"x"}
    assert CliRunner().invoke(main, ["init", str(tmp_path), "--no-input", "--force"]).exit_code == 0


def test_unknown_answer_is_an_error(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "r"), "--no-input", "--set", "clod=aws"])
    assert result.exit_code == 2 and "unknown template question 'clod'" in result.stderr


@pytest.mark.parametrize("cloud, compute", COMBOS)
def test_new_job_for_every_compute_type(tmp_path, monkeypatch, cloud, compute):
    repo = tmp_path / "repo"
    assert CliRunner().invoke(main, ["init", str(repo), "--no-input", "--set", f"cloud_provider={cloud}",
                                     "--set", f"compute_type={compute}"]).exit_code == 0
    monkeypatch.chdir(repo)
    args = ["new-job", "nightly", "--tenant-id", "acme", "--environment", "staging", "--cloud", cloud,
            "--compute-type", compute, "--asset-path", "assets/example_asset.yaml"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    text = (repo / "jobs/acme/nightly.yaml").read_text()
    assert "# schedule:" in text and f"compute_type: {compute}" in text
    for line in ("source_connector: csv", "target_connector: iceberg", "asset: example_asset"):  # the seed's fields
        assert f"\n{line}\n" in text
    assert CliRunner().invoke(main, ["generate"]).exit_code == 0
    # the commented secrets example is a valid reference for this cloud and compute type
    job = repo / "jobs/acme/nightly.yaml"
    job.write_text(text.replace("  # secrets:", "  secrets:").replace("  #   PGPASSWORD:", "    PGPASSWORD:"))
    generated = CliRunner().invoke(main, ["generate"])
    assert generated.exit_code == 0, generated.output
    assert "PGPASSWORD" in (repo / "workspaces/acme/staging/nightly/main.tf").read_text()
    job.write_text(text)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "exists already" in again.stderr


def test_new_job_rejects_a_compute_type_of_the_other_cloud(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["new-job", "x", "--tenant-id", "a", "--environment", "p", "--cloud", "gcp",
                                       "--compute-type", "lambda", "--asset-path", "a.yaml"])
    assert result.exit_code == 2 and "not a compute type for 'gcp'" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_scaffolded_ci_pins_this_version_reports_changes_and_plans_the_matrix(tmp_path):
    import json

    import yaml

    from dativo_ingest import __version__

    # plain cookiecutter users get the same pin as `dativo-tf init`
    assert json.loads((template_dir() / "cookiecutter.json").read_text())["_dativo_tf_version"] == __version__
    repo = tmp_path / "repo"
    assert CliRunner().invoke(main, ["init", str(repo), "--no-input"]).exit_code == 0
    text = (repo / ".github/workflows/dativo-tf.yml").read_text()
    workflow = yaml.safe_load(text)
    assert workflow["env"]["DATIVO_TF_VERSION"] == __version__
    steps = workflow["jobs"]["check"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert 'pip install "dativo-tf==${DATIVO_TF_VERSION}"' in runs and "dativo-tf generate --check" in runs
    assert "--format markdown" in runs and "--format github-matrix" in runs
    assert steps[0]["with"]["fetch-depth"] == 0  # the change report reads the base ref from git
    assert "<!-- dativo-tf:changes -->" in text  # one sticky comment, updated in place
    plan = workflow["jobs"]["plan"]
    assert plan["strategy"]["matrix"] == "${{ fromJSON(needs.check.outputs.matrix) }}"
    assert "REPLACE-ME" in text
    hooks = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text())
    assert hooks["repos"][0]["rev"] == f"v{__version__}"


def test_new_job_without_input_uses_the_defaults_and_never_prompts(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    assert CliRunner().invoke(main, ["init", str(repo), "--no-input", "--set", "cloud_provider=gcp"]).exit_code == 0
    monkeypatch.chdir(repo)
    missing = CliRunner().invoke(main, ["new-job", "nightly", "--no-input"])
    assert missing.exit_code == 2 and missing.stderr == "error: new-job: required without a default: --tenant-id\n"
    no_terminal = CliRunner().invoke(main, ["new-job", "nightly"], input="acme\n")  # stdin is not a terminal
    assert no_terminal.exit_code == 2 and "--tenant-id" in no_terminal.stderr and no_terminal.stdout == ""
    result = CliRunner().invoke(main, ["new-job", "nightly", "--tenant-id", "acme", "--no-input"])
    assert result.exit_code == 0, result.output
    text = (repo / "jobs/acme/nightly.yaml").read_text()
    assert "environment: production\n" in text and "cloud_provider: aws\n" in text and "compute_type: ecs_task" in text
    gcp = CliRunner().invoke(main, ["new-job", "events", "--tenant-id", "acme", "--cloud", "gcp", "--no-input"])
    assert gcp.exit_code == 0 and "compute_type: cloud_run" in (repo / "jobs/acme/events.yaml").read_text()


def test_new_job_errors_name_the_file_it_would_write(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    assert CliRunner().invoke(main, ["init", str(repo), "--no-input"]).exit_code == 0
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(main, ["new-job", "nightly", "--tenant-id", "acme", "--environment", "a b", "--no-input"])
    assert result.exit_code == 2
    assert result.stderr.startswith("jobs/acme/nightly.yaml:")
    assert ": error: environment: 'a b' cannot be used as a folder name" in result.stderr
    assert not (repo / "jobs/acme/nightly.yaml").exists()


def test_init_without_a_terminal_never_prompts(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "r")], input="")  # stdin is not a terminal
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r/dativo-tf.yaml").is_file() and result.stdout == ""
