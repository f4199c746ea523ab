"""The settings models (`dativo-tf.yaml`). Layering, lowest first: built-in < top level < environments.<env> < job.
`project.ProjectSettings` loads the file and resolves an environment."""

from __future__ import annotations

import copy
from datetime import date
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from dativo_ingest.config import Str
from dativo_ingest.project import DEFAULT_JOBS, DEFAULT_OUTPUT_DIR
from dativo_ingest.values import ScriptSafe, placeholders

WORKSPACE_NAMES = ("tenant_id", "environment", "job_name")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class S3Backend(Strict):
    bucket: Optional[str] = None
    key: Annotated[str, placeholders(*WORKSPACE_NAMES)] = "{tenant_id}/{environment}/{job_name}/terraform.tfstate"
    region: Optional[str] = None
    encrypt: bool = True
    use_lockfile: bool = True
    kms_key_id: Optional[str] = None


class GcsBackend(Strict):
    bucket: Optional[str] = None
    prefix: Annotated[str, placeholders(*WORKSPACE_NAMES)] = "{tenant_id}/{environment}/{job_name}"


class AwsSettings(Strict):
    region: str = "us-east-1"
    provider_version: str = "~> 6.0"
    image: Optional[ScriptSafe] = None  # overrides `image` on AWS (Lambda needs an ECR image)
    log_retention_days: int = 30
    backend: S3Backend = S3Backend()


class GcpSettings(Strict):
    project_id: Optional[str] = None
    region: str = "us-central1"
    zone: Optional[str] = None  # default: <region>-a
    provider_version: str = "~> 7.0"
    image: Optional[ScriptSafe] = None
    backend: GcsBackend = GcsBackend()


class KubernetesSettings(Strict):
    provider_version: str = "~> 2.38"
    namespace: str = "default"


class TagSettings(Strict):
    defaults: dict[str, Str] = {}
    required: list[str] = []


class PriceOverride(Strict):
    """A `prices:` entry: extends or overrides a shipped price (see dativo_ingest.cost)."""

    unit: Optional[str] = None
    currency: Literal["USD"] = "USD"
    effective: Optional[date] = None
    source: Optional[str] = None
    regions: dict[str, Annotated[float, Field(ge=0)]] = Field(min_length=1)


DEFAULT_COMMAND = ["run", "--config", "{job_path}", "--mode", "self_hosted"]


class Settings(Strict):
    jobs: list[str] = list(DEFAULT_JOBS)
    output_dir: str = DEFAULT_OUTPUT_DIR
    tfvars_format: Literal["hcl", "json"] = "hcl"
    image: ScriptSafe = "ghcr.io/dativo-io/dativo-ingest:latest"
    command: list[Annotated[ScriptSafe, placeholders(*WORKSPACE_NAMES, "job_path")]] = Field(default_factory=lambda: list(DEFAULT_COMMAND))
    terraform_version: str = ">= 1.10"
    aws: AwsSettings = AwsSettings()
    gcp: GcpSettings = GcpSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    tags: TagSettings = TagSettings()
    prices: dict[str, PriceOverride] = {}
    budgets: dict[Str, Annotated[float, Field(ge=0)]] = {}  # cost center -> USD per month
    environments: dict[str, dict[str, Any]] = {}
    # folders outside the project root that inputs (asset, connector and module paths) and output_dir may
    # point into: relative to the project root or absolute (e.g. modules above the root of a monorepo)
    allow_outside_project: list[str] = []


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
