from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def isolate(tmp_path_factory, monkeypatch):
    """No test sees the developer's HOME, cookiecutter config or Terraform config."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("COOKIECUTTER_CONFIG", str(home / "cookiecutter.yaml"))
    (home / "cookiecutter.yaml").write_text(f"cookiecutters_dir: {home / 'cc'}\nreplay_dir: {home / 'replay'}\n")
    from dativo_ingest import config

    config._asset_cache.clear()


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


@pytest.fixture
def examples_copy(tmp_path) -> Path:
    """A writable copy of the examples repo, without its generated workspaces."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("workspaces", ".terraform"))
    return target


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


SETTINGS = """
    aws:
      region: us-east-1
      image: "123456789012.dkr.ecr.{region}.amazonaws.com/dativo-ingest:1.0"
      backend: {bucket: state-bucket}
    gcp:
      project_id: proj-123
      backend: {bucket: state-bucket}
"""

ASSET = """
    name: orders
    domain: sales
    team: {owner: team@example.com}
    compliance: {classification: [PII, CONFIDENTIAL], regulations: [GDPR], retention_days: 30}
    finops: {cost_center: CC-ASSET, project: asset-project}
"""


def job_yaml(infrastructure: str, extra: str = "") -> str:
    """A job file with the given (dedented) infrastructure block body."""
    body = textwrap.indent(textwrap.dedent(infrastructure).strip("\n"), "  ")
    return (
        "tenant_id: acme\nenvironment: prod\nsource_connector_path: connectors/pg.yaml\n"
        "target_connector_path: connectors/iceberg.yaml\nasset_path: assets/orders.yaml\n"
        + textwrap.dedent(extra).lstrip("\n")
        + "infrastructure:\n" + body + "\n"
    )


@pytest.fixture
def project(tmp_path):
    """A small project: settings + one asset. Add jobs with project.job(name, infrastructure)."""

    class Project:
        root = tmp_path / "repo"

        def __init__(self):
            write_tree(self.root, {"dativo-tf.yaml": SETTINGS, "assets/orders.yaml": ASSET})

        def job(self, name: str, infrastructure: str, extra: str = "") -> Path:
            path = self.root / "jobs" / f"{name}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(job_yaml(infrastructure, extra))
            return path

        def render(self, name: str, infrastructure: str, extra: str = ""):
            return self.render_path(self.job(name, infrastructure, extra))

        def render_path(self, path: Path):
            from dativo_ingest.config import JobConfig
            from dativo_ingest.render import render_job
            from dativo_ingest.project import ProjectSettings

            return render_job(JobConfig.from_yaml(path), ProjectSettings.load(self.root / "dativo-tf.yaml"))

    return Project()
