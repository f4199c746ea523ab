"""The wheel: a quiet build (no setuptools warnings), every template inside it (dot-files and dot-folders of
the scaffold included), and the tool working from the wheel alone, not from this checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT


def _source_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """(the wheel, the build log), built from a copy of the sources with the test extra's setuptools."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("generator", "templates"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # its notice is not ours
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(src / "dist"),
                           str(src)], capture_output=True, text=True, env=env, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    (built,) = (src / "dist").glob("*.whl")
    return built, log


def test_the_build_prints_no_warning(wheel):
    _, log = wheel
    assert [line for line in log.splitlines() if "warning" in line.lower()] == []


def test_the_license_is_an_spdx_expression(wheel):
    with zipfile.ZipFile(wheel[0]) as archive:
        metadata = next(archive.read(n).decode() for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: Apache-2.0" in metadata.splitlines()


def test_the_wheel_holds_every_template_and_module(wheel):
    with zipfile.ZipFile(wheel[0]) as archive:
        names = set(archive.namelist())
    expected = {f"dativo_ingest/templates/{name}" for name in _source_files(ROOT / "templates")}
    expected |= {f"dativo_ingest/{name}" for name in _source_files(ROOT / "generator/dativo_ingest")}
    assert expected - names == set()
    project = "dativo_ingest/templates/scaffold/{{cookiecutter.repo_name}}"
    for dotted in (".github/workflows/dativo-tf.yml", ".gitignore", ".pre-commit-config.yaml", ".gitattributes"):
        assert f"{project}/{dotted}" in names
    assert "dativo_ingest/regions.json" in names


@pytest.fixture(scope="module")
def from_wheel(wheel, tmp_path_factory):
    """Run `python -m dativo_ingest ...` with the package imported from the unpacked wheel."""
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel[0]) as archive:
        archive.extractall(site)

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(site)}
        return subprocess.run([sys.executable, "-m", "dativo_ingest", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=300)

    probe = subprocess.run([sys.executable, "-c", "import dativo_ingest; print(dativo_ingest.__file__)"],
                           env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, cwd=site)
    assert probe.stdout.startswith(str(site)), probe.stdout + probe.stderr
    return run


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_init_validate_generate_from_the_wheel(from_wheel, tmp_path, cloud):
    result = from_wheel("init", "repo", "--no-input", "--set", f"cloud_provider={cloud}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "next steps:" in result.stderr
    repo = tmp_path / "repo"
    for name in (".github/workflows/dativo-tf.yml", ".gitignore", ".pre-commit-config.yaml", ".vscode/settings.json"):
        assert (repo / name).is_file(), name
    for kind, path in (("job", next((repo / "jobs").rglob("*.yaml"))), ("settings", repo / "dativo-tf.yaml"),
                       ("asset", repo / "assets/example_asset.yaml")):
        schema = json.loads((repo / f"schemas/{kind}.schema.json").read_text())
        assert list(jsonschema.Draft7Validator(schema).iter_errors(yaml.safe_load(path.read_text()))) == []
    assert from_wheel("validate", "-q", cwd=repo).returncode == 0
    generated = from_wheel("generate", cwd=repo)
    assert generated.returncode == 0, generated.stderr
    assert from_wheel("generate", "--check", cwd=repo).stdout == ""


def test_init_errors_from_the_wheel_are_one_line(from_wheel, tmp_path):
    result = from_wheel("init", "repo", "--no-input", "--set", "cloud_provider=gcp", "--set", "compute_type=lambda",
                        cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: --set: the template rejected the answers: compute_type='lambda': allowed for gcp: cloud_run, "
        "gce_instance, gke_pod"]
