"""Every load and validation error names the file, the line and the key, and says what is allowed."""

from __future__ import annotations

import pytest

from dativo_ingest.config import AssetDefinition, JobConfig
from dativo_ingest.errors import InputError, InputErrors
from dativo_ingest.project import ProjectSettings
from tests.conftest import write_tree


def _errors(exc) -> list[InputError]:
    return exc.errors if isinstance(exc, InputErrors) else [exc]


def test_unknown_infrastructure_key_suggests_the_nearest(tmp_path):
    write_tree(tmp_path, {"j.yaml": "tenant_id: t\ninfrastructure:\n  cloud_provider: aws\n  regoin: us-east-1\n"})
    with pytest.raises(InputErrors) as info:
        JobConfig.from_yaml(tmp_path / "j.yaml")
    (err,) = info.value.errors
    assert (err.line, err.key) == (4, "infrastructure.regoin")
    assert "did you mean 'region'?" in err.message and "cloud_provider" in err.message
    assert str(err).startswith(f"{tmp_path / 'j.yaml'}:4: error: infrastructure.regoin: unknown key")


def test_nested_unknown_key_and_wrong_type_are_all_reported(tmp_path):
    write_tree(tmp_path, {"j.yaml": """
        tenant_id: t
        infrastructure:
          cloud_provider: aws
          runtime_environment:
            compute_type: ecs_task
            memory_mb: lots
            netwrok: {}
    """})
    with pytest.raises(InputErrors) as info:
        JobConfig.from_yaml(tmp_path / "j.yaml")
    by_key = {e.key: e for e in info.value.errors}
    assert by_key["infrastructure.runtime_environment.memory_mb"].line == 6
    assert "valid integer" in by_key["infrastructure.runtime_environment.memory_mb"].message
    assert "did you mean 'network'?" in by_key["infrastructure.runtime_environment.netwrok"].message


def test_unknown_top_level_keys_are_kept(tmp_path):
    write_tree(tmp_path, {"j.yaml": "tenant_id: t\nsomething_new: {a: 1}\n"})
    assert JobConfig.from_yaml(tmp_path / "j.yaml").something_new == {"a": 1}


def test_malformed_yaml_has_the_line(tmp_path):
    write_tree(tmp_path, {"j.yaml": "tenant_id: t\ninfrastructure:\n  cloud_provider: [aws\n"})
    with pytest.raises(InputError) as info:
        JobConfig.from_yaml(tmp_path / "j.yaml")
    assert info.value.line == 4 and "invalid YAML" in info.value.message


def test_missing_tenant(tmp_path):
    write_tree(tmp_path, {"j.yaml": "environment: e\n"})
    with pytest.raises(InputErrors) as info:
        JobConfig.from_yaml(tmp_path / "j.yaml")
    assert info.value.errors[0].key == "tenant_id" and "required" in info.value.errors[0].message


def test_missing_asset_file(tmp_path):
    write_tree(tmp_path, {"j.yaml": "tenant_id: t\nasset_path: assets/nope.yaml\n"})
    with pytest.raises(InputError) as info:
        JobConfig.from_yaml(tmp_path / "j.yaml")._resolve_asset()
    assert info.value.key == "asset_path" and info.value.line == 2 and "not found" in info.value.message


def test_unset_env_var_in_path(tmp_path, monkeypatch):
    monkeypatch.delenv("DATIVO_TEST_UNSET", raising=False)
    write_tree(tmp_path, {"j.yaml": "tenant_id: t\nasset_path: ${DATIVO_TEST_UNSET}/a.yaml\n"})
    with pytest.raises(InputError) as info:
        JobConfig.from_yaml(tmp_path / "j.yaml")._resolve_asset()
    assert info.value.key == "asset_path" and "DATIVO_TEST_UNSET is not set" in info.value.message


def test_env_var_in_path_expands(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSETS", "assets")
    write_tree(tmp_path, {"dativo-tf.yaml": "", "assets/a.yaml": "name: a\n", "j.yaml": "tenant_id: t\nasset_path: ${ASSETS}/a.yaml\n"})
    assert JobConfig.from_yaml(tmp_path / "j.yaml")._resolve_asset().name == "a"


def test_old_nested_asset_format(tmp_path):
    write_tree(tmp_path, {"a.yaml": "asset:\n  name: x\n  governance: {owner: o@x.com, classification: [PII], retention_days: 7}\n"})
    asset = AssetDefinition.from_yaml(tmp_path / "a.yaml")
    assert (asset.name, asset.team.owner, asset.compliance.classification, asset.compliance.retention_days) == ("x", "o@x.com", ["PII"], 7)


def test_settings_errors_name_the_settings_file(tmp_path):
    write_tree(tmp_path, {"dativo-tf.yaml": "tfvars_format: yaml\naws: {regon: x}\n"})
    with pytest.raises(InputErrors) as info:
        ProjectSettings.load(tmp_path / "dativo-tf.yaml")
    keys = {e.key: e for e in info.value.errors}
    assert keys["tfvars_format"].line == 1 and "'hcl' or 'json'" in keys["tfvars_format"].message
    assert keys["aws.regon"].line == 2 and "did you mean 'region'?" in keys["aws.regon"].message


def test_environment_layering(tmp_path):
    write_tree(tmp_path, {"dativo-tf.yaml": """
        aws: {region: us-east-1, backend: {bucket: dev-state}}
        environments:
          production: {aws: {backend: {bucket: prod-state}}}
    """})
    project = ProjectSettings.load(tmp_path / "dativo-tf.yaml")
    assert project.for_environment("production").aws.backend.bucket == "prod-state"
    assert project.for_environment("production").aws.region == "us-east-1"
    assert project.for_environment("dev").aws.backend.bucket == "dev-state"
    assert ProjectSettings(tmp_path).for_environment("x").aws.region == "us-east-1"  # built-in default


def test_job_overrides_settings(project):
    ws = project.render("job", "cloud_provider: aws\nregion: eu-central-1\nruntime_environment: {compute_type: ecs_task}\n"
                        "terraform: {backend: {bucket: job-bucket, key: 'x/{job_name}.tfstate'}, resource_refs: {execution_role_arn: 'arn:aws:iam::123456789012:role/r'}}")
    assert 'region = "eu-central-1"' in ws.files["providers.tf"]
    assert 'bucket       = "job-bucket"' in ws.files["backend.tf"] and '"x/job.tfstate"' in ws.files["backend.tf"]


@pytest.mark.parametrize("field, value", [("tenant_id", "../evil"), ("environment", ".."), ("tenant_id", "a/b"),
                                          ("tenant_id", "acme\\n")])
def test_path_escape_is_rejected(project, field, value):
    from dativo_ingest.errors import ForbiddenPathError

    path = project.job("job", "cloud_provider: aws\nruntime_environment: {compute_type: ecs_task}")
    path.write_text(path.read_text().replace(f"{field}: ", f'{field}: "{value}" #', 1))
    with pytest.raises(ForbiddenPathError) as info:
        project.render_path(path)
    assert info.value.key == field and "cannot be used as a folder name" in info.value.message


def test_secrets_map_environment_variable_names_to_references(tmp_path):
    write_tree(tmp_path, {"j.yaml": """
        tenant_id: t
        infrastructure:
          cloud_provider: aws
          secrets:
            PGPASSWORD: arn:aws:secretsmanager:us-east-1:123456789012:secret:pg-AbCdEf
            pg-password: arn:aws:secretsmanager:us-east-1:123456789012:secret:pg-AbCdEf
    """})
    with pytest.raises(InputErrors) as info:
        JobConfig.from_yaml(tmp_path / "j.yaml")
    (err,) = info.value.errors
    assert (err.line, err.key) == (6, "infrastructure.secrets.pg-password")
    assert "not an environment variable name" in err.message and "PGPASSWORD" in err.message
