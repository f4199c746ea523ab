"""AWS specifics of a workspace: which image runs where, secret references, the CPU architecture of an
instance type, retries, and the scheduler role. Every check raises an InputError naming the key."""

from __future__ import annotations

import re
from typing import Any

from dativo_ingest import compute
from dativo_ingest.config import JobConfig
from dativo_ingest.errors import CloudLimitError, InputError, warning
from dativo_ingest.project import ProjectSettings
from dativo_ingest.settings import Settings
from dativo_ingest.yamlsource import line_of

ECR_IMAGE = re.compile(r"^\d{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/")
# Secrets Manager secret (no JSON-key suffix: the start-up fetch reads the whole value) or SSM parameter.
SECRET_ARN = re.compile(
    r"^arn:aws(?:-cn|-us-gov)?:(?:secretsmanager:([a-z0-9-]+):\d{12}:secret:[A-Za-z0-9/_+=.@-]+"
    r"|ssm:([a-z0-9-]+):\d{12}:parameter/[A-Za-z0-9/_.-]+)\Z"
)
# Graviton families: a1, and <letters><generation>g... (m7g, c7gn, r6gd, t4g, x2gd, im4gn, is4gen, hpc7g).
_GRAVITON = re.compile(r"^(a1|[a-z]+\d+g[a-z]*)\.")
LAMBDA_MAX_RETRIES = 2  # asynchronous invocation: 0-2
SCHEDULER_MAX_RETRIES = 185
LAMBDA_RUNTIME_WARNING = (
    "Lambda runs {key} = {image!r}: that image must implement the Lambda Runtime API (runtime interface "
    "client, handler as CMD); the dativo-ingest CLI image does not. Set aws.lambda_image to a Lambda-capable "
    "image (README: 'A Lambda image')"
)
def _setting_key(project: ProjectSettings, environment: str | None, section: str, name: str) -> tuple[str, int | None]:
    """The dotted key where a setting comes from (the environment's override when it sets it), and its line."""
    override = project.raw.get("environments", {}) if isinstance(project.raw.get("environments"), dict) else {}
    env_section = override.get(environment or "", {}) or {}
    if isinstance(env_section.get(section), dict) and name in env_section[section]:
        loc = ("environments", environment, section, name)
    else:
        loc = (section, name)
    return ".".join(loc), line_of(project.text, loc) if project.text else None


def image(job: JobConfig, settings: Settings, project: ProjectSettings, region: str, warnings: list) -> tuple[str, str]:
    """(image, settings key it comes from) for the job; `{region}` in the setting becomes the job's region."""
    infra = job.infrastructure
    lambda_job = infra.runtime_environment.compute_type == "lambda"
    if lambda_job and settings.aws.lambda_image:
        section, name, raw = "aws", "lambda_image", settings.aws.lambda_image
    elif settings.aws.image:
        section, name, raw = "aws", "image", settings.aws.image
    else:
        section, name, raw = "", "image", settings.image
    if section:
        key, line = _setting_key(project, job.environment, section, name)
    else:
        key, line = "image", line_of(project.text, ("image",)) if project.text else None
    resolved = raw.replace("{region}", region)
    if not lambda_job or infra.terraform.module_path:
        return resolved, key
    if name != "lambda_image":
        warnings.append(warning(job.error(LAMBDA_RUNTIME_WARNING.format(key=key, image=resolved), "infrastructure",
                                          "runtime_environment", "compute_type"), "lambda_image"))
    match = ECR_IMAGE.match(resolved)
    if not match:
        raise InputError(
            f"Lambda runs container images from Amazon ECR only, and {resolved!r} is not an ECR image; "
            f"set {'aws.lambda_image' if name != 'lambda_image' else key} to an ECR image "
            "(ACCOUNT.dkr.ecr.REGION.amazonaws.com/...)",
            path=project.display_path, line=line, key=key,
        )
    if match.group(1) != region:
        raise InputError(
            f"Lambda runs images from ECR in the function's own region only: {job.relative_path} runs in {region} "
            f"(infrastructure.region or aws.region) and {resolved!r} is in {match.group(1)}; write {{region}} in "
            f"{key} for a repository replicated to every region, or set it per environment "
            f"(environments.<env>.aws.{name})",
            path=project.display_path, line=line, key=key,
        )
    return resolved, key


def secrets(job: JobConfig) -> list[dict[str, str]]:
    """The job's `secrets`, checked: each value a Secrets Manager secret ARN or an SSM parameter ARN."""
    out = []
    for name, ref in sorted(job.infrastructure.secrets.items()):
        match = SECRET_ARN.match(ref)
        if not match:
            raise job.error(
                f"{ref!r} is not a secret reference for AWS; allowed: a Secrets Manager secret ARN "
                "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME, without a JSON key) or an SSM parameter "
                "ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME). Write where the value lives, never the value",
                "infrastructure", "secrets", name, cls=CloudLimitError,
            )
        service = "secretsmanager" if match.group(1) else "ssm"
        out.append({"name": name, "arn": ref, "service": service, "region": match.group(1) or match.group(2)})
    return out


def architecture(instance_type: str) -> str:
    """The AMI architecture an EC2 instance type needs: Graviton families are arm64."""
    return "arm64" if _GRAVITON.match(instance_type) else "x86_64"


def retries(job: JobConfig, compute_type: str) -> int:
    """Retries after a failed run, from retry_config.max_attempts (default 1 attempt: no retry)."""
    retry = job.retry_config or {}
    attempts = retry.get("max_attempts") if isinstance(retry, dict) else None
    if attempts is None:
        return 0
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise job.error(f"{attempts!r} is not a number of attempts; allowed: an integer >= 1 (1 = no retry)",
                        "retry_config", "max_attempts")
    high = {"lambda": LAMBDA_MAX_RETRIES}.get(compute_type, SCHEDULER_MAX_RETRIES) + 1
    if attempts > high:
        why = "Lambda retries an asynchronous invocation at most twice" if compute_type == "lambda" else \
            "EventBridge Scheduler retries at most 185 times"
        raise job.error(f"{attempts} attempts: {why}; allowed: 1-{high}", "retry_config", "max_attempts",
                        cls=CloudLimitError)
    return attempts - 1


_ROLE_ARN = (r"^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$", "an IAM role ARN")
# resource_refs keys each compute type reads, with the format each must have (checked at generation and by
# a validation block in variables.tf, so an edited terraform.tfvars fails at plan with the same message).
REF_FORMATS = {
    "execution_role_arn": _ROLE_ARN,
    "task_role_arn": _ROLE_ARN,
    "scheduler_role_arn": _ROLE_ARN,
    "dead_letter_queue_arn": (r"^arn:aws(-cn|-us-gov)?:sqs:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,80}(\.fifo)?$",
                              "an SQS queue ARN"),
    "cluster_name": (r"^[A-Za-z0-9_-]{1,255}$", "an ECS cluster name"),
    "log_group_name": (r"^[A-Za-z0-9_/.#-]{1,512}$", "a CloudWatch log group name"),
    "ami_id": (r"^ami-[0-9a-f]{8,17}$", "an AMI id (ami-...)"),
    "subnet_id": (r"^subnet-[0-9a-f]{8,17}$", "a subnet id (subnet-...)"),
    "instance_profile_name": (r"^[A-Za-z0-9+=,.@_-]{1,128}$", "an instance profile name"),
}
READS = {
    "ecs_task": ("execution_role_arn", "task_role_arn", "cluster_name", "log_group_name", "scheduler_role_arn",
                 "dead_letter_queue_arn"),
    "lambda": ("execution_role_arn", "log_group_name", "scheduler_role_arn", "dead_letter_queue_arn"),
    "ec2_instance": ("ami_id", "subnet_id", "instance_profile_name", "log_group_name", "scheduler_role_arn",
                     "dead_letter_queue_arn"),
}
IDENTITY_REFS = {"lambda": "execution_role_arn", "ec2_instance": "instance_profile_name"}
_LOCKFILE_VERSION = (1, 11)  # S3 native state locking (use_lockfile) is generally available from Terraform 1.11
_MINIMUM = re.compile(r"^\s*(>=|~>)\s*(\d+)\.(\d+)")


def required_version(constraint: str, backend: dict) -> str:
    """terraform_version, raised to >= 1.11 when the S3 backend locks with use_lockfile."""
    if backend["type"] != "s3" or not backend["config"].get("use_lockfile"):
        return constraint
    minimums = [_MINIMUM.match(part) for part in constraint.split(",")]
    if any(m and (int(m.group(2)), int(m.group(3))) >= _LOCKFILE_VERSION for m in minimums):
        return constraint
    floor = ">= {}.{}".format(*_LOCKFILE_VERSION)
    if len(minimums) == 1 and minimums[0] and minimums[0].group(1) == ">=":
        return floor  # ">= 1.10" becomes ">= 1.11"
    return f"{constraint}, {floor}"


def ref_rules(job: JobConfig, compute_type: str, required: list[str]) -> list[dict[str, str]]:
    """The format rule of every resource_refs key the compute type reads (see compute.ref_rules)."""
    return compute.ref_rules(job, READS[compute_type], REF_FORMATS, required)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _plain(job: JobConfig, value: str, what: str, *loc: str) -> str:
    """A value the EC2 start-up script passes on: control characters are refused (they have no use there)."""
    if _CONTROL.search(value):
        raise job.error(f"{what} {value!r} holds a control character; the start-up script refuses it", *loc)
    return value


def context(job: JobConfig, runtime, refs: dict[str, str], schedule, settings: Settings, project: ProjectSettings,
            region: str, parts: list[str], warnings: list, *, backend: dict, module: bool,
            required_refs: list[str], command: list[str], container_env: dict[str, str]) -> dict[str, Any]:
    """Template values only AWS workspaces use."""
    compute_type = runtime.compute_type
    if compute_type == "ec2_instance" and not module:
        for part in command:
            _plain(job, part, "the command argument", "infrastructure", "runtime_environment")
        for value in container_env.values():
            _plain(job, value, "the container environment value", "infrastructure")
    resolved, key = image(job, settings, project, region, warnings)
    if compute_type == "ec2_instance" and not module:
        _plain(job, resolved, f"the image ({key})", "infrastructure", "runtime_environment", "compute_type")
    ecr = ECR_IMAGE.match(resolved)
    found = secrets(job)
    retry_count = retries(job, compute_type)
    log_group = refs.get("log_group_name") or "/dativo/" + "/".join(parts)
    # the identity ref is required when runtime_environment.service_account does not name it
    identity = [IDENTITY_REFS[compute_type]] if compute_type in IDENTITY_REFS and not runtime.service_account else []
    instance_type = runtime.derived.get("instance_type")
    retention = settings.aws.log_retention_days
    return {
        "required_version": required_version(settings.terraform_version, backend),
        "ref_rules": [] if module else ref_rules(job, compute_type, required_refs + identity),
        "image": resolved,
        "image_key": key,
        "ecr": {"registry": resolved.split("/", 1)[0], "region": ecr.group(1)} if ecr else None,
        "secrets": found,
        "secret_map": {s["name"]: s["arn"] for s in found},
        "retries": retry_count,
        "scheduler_role_name": compute.resource_name(parts + ["scheduler"], 64)
        if schedule and not refs.get("scheduler_role_arn") else None,
        "ami_architecture": architecture(instance_type) if instance_type else None,
        "kms": settings.aws.kms,
        "job_script": {"head": JOB_SCRIPT_HEAD, "tail": JOB_SCRIPT_TAIL},
        "ec2_job": {
            "image": resolved,
            "region": region,
            "log_group": log_group,
            "ecr_registry": resolved.split("/", 1)[0] if ecr else "",
            "ecr_region": ecr.group(1) if ecr else "",
            "timeout_seconds": runtime.timeout_seconds or 0,
            "attempts": 1 + retry_count,
            "command": command,
            "environment": container_env,
            "secrets": {s["name"]: s["arn"] for s in found},
        },
        # CloudWatch keeps logs for this many days; checkov wants a year (see the README's checkov skips).
        "short_retention": retention != 0 and retention < 365,
    }


# The EC2 start-up script around the job's values (see templates/aws/ec2_instance/main.tf.j2): the job's
# values are set between HEAD and TAIL, each base64-encoded, so no value can change what the script does.
JOB_SCRIPT_HEAD = r"""#!/bin/bash
# dativo-tf: run the job's container, then stop the instance, whatever happens (cloud-init runs this at every boot).
set -euo pipefail
trap 'shutdown -h now' EXIT
b64d() { printf '%s' "$1" | base64 -d; }
fetch_secret() {
  local service region
  service="$(cut -d: -f3 <<<"$1")"
  region="$(cut -d: -f4 <<<"$1")"
  if [ "$service" = secretsmanager ]; then
    aws secretsmanager get-secret-value --region "$region" --secret-id "$1" --query SecretString --output text
  else
    aws ssm get-parameter --region "$region" --name "$1" --with-decryption --query Parameter.Value --output text
  fi
}
job_args=()
docker_env=()""".split("\n")

JOB_SCRIPT_TAIL = r"""if ! command -v docker >/dev/null; then
  dnf install -y docker
fi
systemctl start docker
if [ -n "$ecr_registry" ]; then
  aws ecr get-login-password --region "$ecr_region" | docker login --username AWS --password-stdin "$ecr_registry"
fi
run() {
  docker rm -f dativo-job >/dev/null 2>&1 || true
  timeout --kill-after=30 "$timeout_seconds" docker run --rm --name dativo-job \
    --log-driver awslogs --log-opt "awslogs-region=$region" --log-opt "awslogs-group=$log_group" \
    "${docker_env[@]}" "$image" "${job_args[@]}"
}
attempt=1
until run; do
  if [ "$attempt" -ge "$attempts" ]; then
    echo "dativo: the job failed (attempt $attempt of $attempts); stopping the instance" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  echo "dativo: the job failed; attempt $attempt of $attempts" >&2
done
echo "dativo: the job succeeded; stopping the instance"
""".rstrip("\n").split("\n")
