"""The settings models (`dativo-tf.yaml`). Layering, lowest first: built-in < top level < environments.<env> < job.
`project.ProjectSettings` loads the file and resolves an environment."""

from __future__ import annotations

import copy
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dativo_ingest.config import Str
from dativo_ingest.project import DEFAULT_JOBS, DEFAULT_OUTPUT_DIR


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


# The values CloudWatch Logs accepts for a log group's retention (0: never expire).
CLOUDWATCH_RETENTION_DAYS = (0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                             2557, 2922, 3288, 3653)


class AwsKms(Strict):
    """Customer managed KMS keys (ARNs); without one, each service encrypts with its AWS managed key."""

    logs: Optional[str] = None  # CloudWatch log groups
    scheduler: Optional[str] = None  # EventBridge Scheduler schedules
    disks: Optional[str] = None  # EC2 root volumes


class AwsSettings(Strict):
    region: str = "us-east-1"
    provider_version: str = "~> 6.0"
    # Image strings may hold {region}: the job's region (an ECR repository replicated per region).
    image: Optional[str] = None  # overrides `image` on AWS
    lambda_image: Optional[str] = None  # a Lambda-capable image (Runtime API client, handler as CMD)
    log_retention_days: int = 30
    kms: AwsKms = AwsKms()
    backend: S3Backend = S3Backend()

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in CLOUDWATCH_RETENTION_DAYS:
            raise ValueError(
                "CloudWatch Logs does not accept this retention; allowed: "
                + ", ".join(map(str, CLOUDWATCH_RETENTION_DAYS)) + " (0 = never expire)"
            )
        return value


class GcpKms(Strict):
    """Customer managed Cloud KMS keys (projects/P/locations/L/keyRings/R/cryptoKeys/K); default: Google managed."""

    disks: Optional[str] = Field(default=None, pattern=r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")


class GcpSettings(Strict):
    project_id: Optional[str] = None
    region: str = "us-central1"
    zone: Optional[str] = None  # a zone of the job's region; default: the region's first zone (templates/gcp/zones.json)
    provider_version: str = "~> 7.0"
    image: Optional[str] = None
    kms: GcpKms = GcpKms()
    backend: GcsBackend = GcsBackend()


class KubernetesSettings(Strict):
    provider_version: str = "~> 2.38"
    namespace: str = "default"
    # The job's container must not run as root (its image needs a non-root USER, or set run_as_user).
    run_as_non_root: bool = True
    run_as_user: Optional[int] = Field(default=None, ge=1)


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
