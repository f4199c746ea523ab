"""The seed's Python API: tags, Terraform variables and tfvars for one job."""

from __future__ import annotations

from typing import Any

from dativo_ingest import hcl
from dativo_ingest.config import AssetDefinition, JobConfig
from dativo_ingest.errors import InputError
from dativo_ingest.render import Workspace, render_job
from dativo_ingest.project import SETTINGS_FILE, ProjectSettings
from dativo_ingest.tags import aws_tags, merge_tags


def project_settings(job_config: JobConfig) -> ProjectSettings:
    """The settings of the project the job belongs to (its dativo-tf.yaml, else the defaults)."""
    path = job_config.project_root / SETTINGS_FILE
    return ProjectSettings.load(path) if path.is_file() else ProjectSettings(job_config.project_root)


def _workspace(job_config: JobConfig, asset_definition: AssetDefinition | None) -> Workspace:
    if job_config.infrastructure is None:
        raise InputError("the job has no infrastructure block, so there are no Terraform variables",
                         path=job_config.relative_path, key="infrastructure")
    workspace = render_job(job_config, project_settings(job_config), asset_definition)
    assert workspace is not None
    return workspace


def extract_infrastructure_tags(job_config: JobConfig, asset_definition: AssetDefinition | None) -> dict[str, str]:
    """Merged tags for the job's resources, highest precedence winning (see dativo_ingest.tags)."""
    settings = project_settings(job_config).for_environment(job_config.environment)
    merged = {key: tag.value for key, tag in merge_tags(job_config, asset_definition, settings.tags.defaults).items()}
    infra = job_config.infrastructure
    return aws_tags(merged) if infra is None or infra.cloud_provider == "aws" else merged


def generate_terraform_variables(job_config: JobConfig, asset_definition: AssetDefinition | None) -> dict[str, Any]:
    """The variables the workspace's terraform.tfvars sets: the seed's five, labels on GCP, and the extras."""
    return _workspace(job_config, asset_definition).variables


def generate_terraform_output(job_config: JobConfig, asset_definition: AssetDefinition | None, format: str = "json") -> str:
    """The Terraform variables as JSON (`.tfvars.json` content) or HCL (`.tfvars` content)."""
    variables = generate_terraform_variables(job_config, asset_definition)
    if format == "json":
        return hcl.dumps_json(variables)
    if format == "hcl":
        return hcl.laid_attributes(variables)
    raise ValueError(f"format must be 'json' or 'hcl', not {format!r}")
