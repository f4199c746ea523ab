"""The settings models (`dativo-tf.yaml`). Layering, lowest first: built-in < top level < environments.<env> < job.
`project.ProjectSettings` loads the file and resolves an environment."""

from __future__ import annotations

import copy
from datetime import date
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dativo_ingest.config import Str
from dativo_ingest.defaults import DEFAULT_JOBS, DEFAULT_OUTPUT_DIR
from dativo_ingest.values import ScriptSafe, placeholders

WORKSPACE_NAMES = ("tenant_id", "environment", "job_name")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class S3Backend(Strict):
    bucket: Optional[str] = Field(None, description="S3 bucket for Terraform state; none = a local backend and a "
                                                    "warning.")
    key: Annotated[str, placeholders(*WORKSPACE_NAMES)] = Field("{tenant_id}/{environment}/{job_name}/terraform.tfstate",
                     description="State object key; placeholders {tenant_id}, {environment}, {job_name}.")
    region: Optional[str] = Field(None, description="Region of the bucket (default: the workspace's region).")
    encrypt: bool = Field(True, description="Encrypt the state object.")
    use_lockfile: bool = Field(True, description="S3-native state locking (Terraform >= 1.10).")
    kms_key_id: Optional[str] = Field(None, description="KMS key ARN to encrypt the state with.")


class GcsBackend(Strict):
    bucket: Optional[str] = Field(None, description="GCS bucket for Terraform state; none = a local backend and a "
                                                    "warning.")
    prefix: Annotated[str, placeholders(*WORKSPACE_NAMES)] = Field("{tenant_id}/{environment}/{job_name}",
                        description="State prefix; placeholders {tenant_id}, {environment}, {job_name}.")


# The values CloudWatch Logs accepts for a log group's retention (0: never expire).
CLOUDWATCH_RETENTION_DAYS = (0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                             2557, 2922, 3288, 3653)


class AwsKms(Strict):
    """Customer managed KMS keys (ARNs); without one, each service encrypts with its AWS managed key."""

    logs: Optional[str] = Field(None, description="KMS key ARN for the CloudWatch log groups.")
    scheduler: Optional[str] = Field(None, description="KMS key ARN for the EventBridge Scheduler schedules.")
    disks: Optional[str] = Field(None, description="KMS key ARN for EC2 root volumes.")


class AwsSettings(Strict):
    region: str = Field("us-east-1", description="Default AWS region of the jobs. Unknown regions are a warning.")
    provider_version: str = Field("~> 6.0", description="Version constraint of the hashicorp/aws provider.")
    image: Optional[ScriptSafe] = Field(None, description="Container image on AWS, over `image`; may hold {region}, the job's region (Lambda needs an ECR image: "
                                                   "ACCOUNT.dkr.ecr.REGION.amazonaws.com/...).")
    lambda_image: Optional[ScriptSafe] = Field(
        None, description="A Lambda-capable image (Runtime API client, handler as CMD) for lambda jobs; may hold "
                          "{region}. Without it aws.image is used, with a warning.")
    log_retention_days: int = Field(30, description="CloudWatch log retention in days (a value CloudWatch allows).")
    kms: AwsKms = Field(AwsKms(), description="Customer managed KMS keys; default: AWS managed keys.")
    backend: S3Backend = Field(S3Backend(), description="S3 backend for Terraform state.")

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

    disks: Optional[str] = Field(default=None, pattern=r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$",
                                 description="Cloud KMS key for GCE boot disks.")


class GcpSettings(Strict):
    project_id: Optional[str] = Field(None, description="Default GCP project id (6-30 characters).")
    region: str = Field("us-central1", description="Default GCP region of the jobs. Unknown regions are a warning.")
    zone: Optional[str] = Field(None, description="Zone for VMs: a zone of the job's region (default: the region's first "
                                                  "zone in the bundled zone table).")
    provider_version: str = Field("~> 7.0", description="Version constraint of the hashicorp/google provider.")
    image: Optional[ScriptSafe] = Field(None, description="Container image on GCP, over `image`.")
    kms: GcpKms = Field(GcpKms(), description="Customer managed Cloud KMS keys; default: Google managed keys.")
    backend: GcsBackend = Field(GcsBackend(), description="GCS backend for Terraform state.")


class KubernetesSettings(Strict):
    provider_version: str = Field("~> 2.38", description="Version constraint of the hashicorp/kubernetes provider.")
    namespace: str = Field("default", description="Namespace of gke_pod jobs (a job's resource_refs.namespace wins).")
    run_as_non_root: bool = Field(True, description="The job's container must not run as root (its image needs a "
                                                    "non-root USER, or set run_as_user).")
    run_as_user: Optional[int] = Field(default=None, ge=1, description="UID the container runs as (>= 1).")


class TagSettings(Strict):
    defaults: dict[str, Str] = Field({}, description="Tags every job gets, with the lowest precedence.")
    required: list[str] = Field([], description="Tags every job must end up with; a missing one is an error.")


class PriceOverride(Strict):
    """A `prices:` entry: extends or overrides a shipped price (see dativo_ingest.cost)."""

    unit: Optional[str] = Field(None, description="Must equal the shipped price's unit (e.g. vCPU-hour) when set.")
    currency: Literal["USD"] = Field("USD", description="Currency of the price; USD only.")
    effective: Optional[date] = Field(None, description="Date the price takes effect (YYYY-MM-DD).")
    source: Optional[str] = Field(None, description="Where the price comes from (a contract, a price page).")
    regions: dict[str, Annotated[float, Field(ge=0)]] = Field(
        min_length=1, description="Price per unit in USD, by region (e.g. us-east-1: 0.036).")


DEFAULT_COMMAND = ["run", "--config", "{job_path}", "--mode", "self_hosted"]


class Settings(Strict):
    jobs: list[str] = Field(list(DEFAULT_JOBS), description="Globs of the job files, relative to this file.")
    output_dir: str = Field(DEFAULT_OUTPUT_DIR, description="Folder of the generated workspaces, relative to this "
                                                            "file.")
    tfvars_format: Literal["hcl", "json"] = Field("hcl", description="hcl: terraform.tfvars; json: "
                                                                     "terraform.tfvars.json.")
    image: ScriptSafe = Field("ghcr.io/dativo-io/dativo-ingest:latest", description="The Dativo ETL container image.")
    command: list[Annotated[ScriptSafe, placeholders(*WORKSPACE_NAMES, "job_path")]] = Field(default_factory=lambda: list(DEFAULT_COMMAND),
                               description="Container arguments; placeholders {job_path}, {tenant_id}, {environment}, "
                                           "{job_name}.")
    terraform_version: str = Field(">= 1.10", description="required_version of every workspace.")
    aws: AwsSettings = Field(AwsSettings(), description="AWS defaults.")
    gcp: GcpSettings = Field(GcpSettings(), description="GCP defaults.")
    kubernetes: KubernetesSettings = Field(KubernetesSettings(), description="Kubernetes (gke_pod) defaults.")
    tags: TagSettings = Field(TagSettings(), description="Tag defaults and required tags.")
    prices: dict[str, PriceOverride] = Field({}, description="Price overrides and additions for `dativo-tf cost` "
                                                       "(e.g. negotiated discounts), merged per region.")
    budgets: dict[Str, Annotated[float, Field(ge=0)]] = Field(
        {}, description="Monthly budget in USD per cost center; `dativo-tf cost --check` exits 1 above it.")
    allow_outside_project: list[str] = Field(
        [], description="Folders outside the project root (relative to it, or absolute) that asset, connector and "
                        "module paths and output_dir may point into, e.g. modules above the root of a monorepo.")
    environments: dict[str, dict[str, Any]] = Field(
        {}, description="Per environment (a job's `environment`), overrides of any key above, merged key by key.")


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
