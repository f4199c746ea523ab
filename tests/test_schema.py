"""The JSON Schemas (`dativo-tf schema --kind job|settings|asset`): every example and scaffolded file validates,
every field is described, and each bad input the CLI rejects for its type the schema rejects too."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from dativo_ingest.cli import main
from dativo_ingest.config import AssetDefinition, JobConfig
from dativo_ingest.errors import InputError
from dativo_ingest.project import ProjectSettings
from dativo_ingest.schemas import KINDS
from tests.conftest import EXAMPLES, job_yaml, write_tree
from tests.test_scaffold import COMBOS


def _schema(kind: str) -> dict:
    result = CliRunner().invoke(main, ["schema", "--kind", kind])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def validators() -> dict[str, jsonschema.Draft7Validator]:
    out = {}
    for kind in KINDS:
        schema = _schema(kind)
        jsonschema.Draft7Validator.check_schema(schema)
        out[kind] = jsonschema.Draft7Validator(schema)
    return out


def _problems(validator, path) -> list[str]:
    data = yaml.safe_load(path.read_text())
    return [f"{path}: {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]


def test_default_kind_is_job():
    assert CliRunner().invoke(main, ["schema"]).stdout == CliRunner().invoke(main, ["schema", "--kind", "job"]).stdout


def test_every_example_validates(validators):
    jobs = sorted((EXAMPLES / "jobs").rglob("*.yaml"))
    assets = sorted((EXAMPLES / "assets").rglob("*.yaml")) + sorted((EXAMPLES / "tests").rglob("*.yaml"))
    assert len(jobs) >= 9 and len(assets) >= 3
    problems = [p for path in jobs for p in _problems(validators["job"], path)]
    problems += [p for path in assets for p in _problems(validators["asset"], path)]
    problems += _problems(validators["settings"], EXAMPLES / "dativo-tf.yaml")
    assert problems == []
    assert any('schedule: "' in path.read_text() for path in jobs), "the string form of schedule is covered"


@pytest.mark.parametrize("cloud, compute", COMBOS)
def test_every_scaffolded_file_validates_and_is_wired_to_its_schema(tmp_path, monkeypatch, validators, cloud, compute):
    repo = tmp_path / "repo"
    args = ["init", str(repo), "--no-input", "--set", f"cloud_provider={cloud}", "--set", f"compute_type={compute}"]
    assert CliRunner().invoke(main, args).exit_code == 0
    monkeypatch.chdir(repo)
    new = CliRunner().invoke(main, ["new-job", "nightly", "--tenant-id", "acme", "--cloud", cloud,
                                    "--compute-type", compute, "--no-input"])
    assert new.exit_code == 0, new.output
    editor = json.loads((repo / ".vscode/settings.json").read_text())["yaml.schemas"]
    files = {"settings": [repo / "dativo-tf.yaml"], "job": sorted((repo / "jobs").rglob("*.yaml")),
             "asset": sorted((repo / "assets").rglob("*.yaml"))}
    assert len(files["job"]) == 2
    for kind, paths in files.items():
        schema_file = repo / "schemas" / f"{kind}.schema.json"
        assert json.loads(schema_file.read_text()) == _schema(kind)  # what `dativo-tf schema` prints
        assert f"./schemas/{kind}.schema.json" in editor
        for path in paths:
            assert _problems(validators[kind], path) == []
            first = path.read_text().splitlines()[0]
            assert first.startswith("# yaml-language-server: $schema=")
            assert (path.parent / first.split("=", 1)[1]).resolve() == schema_file.resolve()


def _properties(node, where="#"):
    """Every (path, property schema) in a schema document."""
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            yield f"{where}/{name}", prop
        for key, value in node.items():
            yield from _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _properties(value, f"{where}/{i}")


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_is_described(kind):
    props = list(_properties(_schema(kind)))
    assert len(props) > 5
    undescribed = [where for where, prop in props if "description" not in prop and "/allOf/" not in where]
    assert undescribed == []


def test_enums():
    infra = _schema("job")["$defs"]
    assert infra["InfrastructureConfig"]["properties"]["cloud_provider"]["enum"] == ["aws", "gcp"]
    runtime = infra["RuntimeEnvironment"]["properties"]
    assert set(runtime["compute_type"]["enum"]) == {"ecs_task", "lambda", "ec2_instance", "cloud_run", "gce_instance",
                                                    "gke_pod", None}
    assert set(runtime["compute_size"]["enum"]) == {"small", "medium", "large", "xlarge", "2xlarge", None}


GOOD_INFRA = """
    cloud_provider: aws
    schedule: '0 3 * * *'
    runtime_environment: {compute_type: ecs_task, compute_size: small, network: {subnet_ids: [subnet-1]}}
    tags: {CostCenter: 1001, Owner: o}
    terraform: {resource_refs: {execution_role_arn: "arn:aws:iam::123456789012:role/r", cluster_name: c, scheduler_role_arn: "arn:aws:iam::123456789012:role/s"}}
"""
GOOD = {"job": job_yaml(GOOD_INFRA), "settings": "tfvars_format: hcl\naws: {region: us-east-1}\njobs: [jobs/*.yaml]\n",
        "asset": "name: orders\nteam: {owner: o}\ncompliance: {retention_days: 30}\n"}
# (kind, the key the CLI names, old, new): the good file with one value of the wrong type or outside its set
BAD = [
    ("job", "infrastructure.cloud_provider", "cloud_provider: aws", "cloud_provider: azure"),
    ("job", "infrastructure.runtime_environment.compute_type", "compute_type: ecs_task", "compute_type: fargate"),
    ("job", "infrastructure.runtime_environment.compute_type", "cloud_provider: aws", "cloud_provider: gcp\n  project_id: p"),
    ("job", "infrastructure.runtime_environment.memory_mb", "compute_size: small", "memory_mb: lots"),
    ("job", "infrastructure.runtime_environment.cpu_units", "compute_size: small", "cpu_units: 0"),
    ("job", "infrastructure.runtime_environment.compute_size", "compute_size: small", "compute_size: huge"),
    ("job", "infrastructure.regoin", "cloud_provider: aws", "cloud_provider: aws\n  regoin: us-east-1"),
    ("job", "infrastructure.schedule", "schedule: '0 3 * * *'", "schedule: 5"),
    ("job", "infrastructure.schedule.tz", "schedule: '0 3 * * *'", "schedule: {cron: '0 3 * * *', tz: UTC}"),
    ("job", "infrastructure.silence[0]", "cloud_provider: aws", "cloud_provider: aws\n  silence: [everything]"),
    ("job", "infrastructure.tags", "tags: {CostCenter: 1001, Owner: o}", "tags: [a, b]"),
    ("job", "tenant_id", "tenant_id: acme\n", ""),
    ("job", "tenant_id", "tenant_id: acme", "tenant_id: ''"),
    ("job", "tenant_id", "tenant_id: acme", "tenant_id: [a]"),
    ("settings", "tfvars_format", "tfvars_format: hcl", "tfvars_format: yaml"),
    ("settings", "aws.regon", "region: us-east-1", "regon: us-east-1"),
    ("settings", "jobs", "jobs: [jobs/*.yaml]", "jobs: 5"),
    ("settings", "aws.backend.encrypt", "region: us-east-1", "backend: {encrypt: maybe}"),
    ("asset", "team", "team: {owner: o}", "team: [x]"),
    ("asset", "compliance.retention_days", "retention_days: 30", "retention_days: many"),
]


def _cli_error(tmp_path, kind: str, text: str) -> InputError | None:
    """The first error the CLI's checks find in `text` as a file of `kind` (None: accepted)."""
    from dativo_ingest.errors import InputErrors
    from dativo_ingest.render import render_job
    from tests.conftest import ASSET, SETTINGS

    root = write_tree(tmp_path / "p", {"dativo-tf.yaml": SETTINGS, "assets/orders.yaml": ASSET})
    target = {"job": "jobs/j.yaml", "settings": "dativo-tf.yaml", "asset": "assets/orders.yaml"}[kind]
    (root / target).parent.mkdir(parents=True, exist_ok=True)
    (root / target).write_text(text)
    try:
        project = ProjectSettings.load(root / "dativo-tf.yaml")
        if kind == "asset":
            AssetDefinition.from_yaml(root / target)
        elif kind == "job":
            render_job(JobConfig.from_yaml(root / target), project)
    except InputErrors as exc:
        return exc.errors[0]
    except InputError as exc:
        return exc
    return None


@pytest.mark.parametrize("kind, key, old, new", BAD, ids=[f"{k}-{key}" for k, key, _, _ in BAD])
def test_the_schema_rejects_what_the_cli_rejects(tmp_path, validators, kind, key, old, new):
    assert old in GOOD[kind]
    text = GOOD[kind].replace(old, new, 1)
    error = _cli_error(tmp_path, kind, text)
    assert error is not None and error.key == key, error
    assert list(validators[kind].iter_errors(yaml.safe_load(text))) != []


@pytest.mark.parametrize("kind", KINDS)
def test_the_good_base_of_the_bad_cases_passes_both(tmp_path, validators, kind):
    assert _cli_error(tmp_path, kind, GOOD[kind]) is None
    assert list(validators[kind].iter_errors(yaml.safe_load(GOOD[kind]))) == []
