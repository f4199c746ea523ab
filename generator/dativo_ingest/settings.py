"""The settings models (`dativo-tf.yaml`). Layering, lowest first: built-in < top level < environments.<env> < job.
`project.ProjectSettings` loads the file and resolves an environment."""

from __future__ import annotations

import copy
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from dativo_ingest.config import Str
from dativo_ingest.defaults import DEFAULT_JOBS, DEFAULT_OUTPUT_DIR


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class S3Backend(Strict):
    bucket: Optional[str] = None
    key: str = "{tenant_id}/{environment}/{job_name}/terraform.tfstate"
    region: Optional[str] = None
    encrypt: bool = True
    use_lockfile: bool = True
    kms_key_id: Optional[str] = None


class GcsBackend(Strict):
    bucket: Optional[str] = None
    prefix: str = "{tenant_id}/{environment}/{job_name}"


class AwsSettings(Strict):
    region: str = "us-east-1"
    provider_version: str = "~> 6.0"
    image: Optional[str] = None  # overrides `image` on AWS (Lambda needs an ECR image)
    log_retention_days: int = 30
    backend: S3Backend = S3Backend()


class GcpSettings(Strict):
    project_id: Optional[str] = None
    region: str = "us-central1"
    zone: Optional[str] = None  # default: <region>-a
    provider_version: str = "~> 7.0"
    image: Optional[str] = None
    backend: GcsBackend = GcsBackend()


class KubernetesSettings(Strict):
    provider_version: str = "~> 2.38"
    namespace: str = "default"


class TagSettings(Strict):
    defaults: dict[str, Str] = {}
    required: list[str] = []


DEFAULT_COMMAND = ["run", "--config", "{job_path}", "--mode", "self_hosted"]


class Settings(Strict):
    jobs: list[str] = list(DEFAULT_JOBS)
    output_dir: str = DEFAULT_OUTPUT_DIR
    tfvars_format: Literal["hcl", "json"] = "hcl"
    image: str = "ghcr.io/dativo-io/dativo-ingest:latest"
    command: list[str] = Field(default_factory=lambda: list(DEFAULT_COMMAND))
    terraform_version: str = ">= 1.10"
    aws: AwsSettings = AwsSettings()
    gcp: GcpSettings = GcpSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    tags: TagSettings = TagSettings()
    environments: dict[str, dict[str, Any]] = {}


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
