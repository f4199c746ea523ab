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
    assert result.exit_code == 2 and "the template rejected the answers" in result.stderr
    assert f"error: {message}=" in capfd.readouterr().err  # the hook's own message, printed by its process
    assert not repo.exists()


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
