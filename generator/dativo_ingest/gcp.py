"""GCP specifics of a workspace: the VM's zone, secret references, retries, the VM start-up script's
metadata and the identities schedules run as. Every check raises an InputError naming the file and key."""

from __future__ import annotations

import base64
import json
import re
from functools import lru_cache
from importlib.resources import files
from typing import Any

from dativo_ingest import compute
from dativo_ingest.config import JobConfig
from dativo_ingest.errors import CloudLimitError, InputError
from dativo_ingest.project import ProjectSettings
from dativo_ingest.settings import Settings
from dativo_ingest.yamlsource import line_of

_ZONE = re.compile(r"^([a-z]+(?:-[a-z]+)*[0-9]+)-[a-z]\Z")
# Secret Manager: projects/P/secrets/S[/versions/V], or S, or S:V (S in the job's project). V: a number or latest.
_SECRET_PATH = re.compile(r"^projects/([a-z0-9][a-z0-9.:-]*[a-z0-9])/secrets/([A-Za-z0-9_-]{1,255})(?:/versions/([^/]+))?\Z")
_SECRET_SHORT = re.compile(r"^([A-Za-z0-9_-]{1,255})(?::([^:/]+))?\Z")
_VERSION = re.compile(r"^(latest|[1-9][0-9]*)\Z")
# Kubernetes: <secret name>/<key>; the name a DNS subdomain, the key a config key.
_K8S_SECRET = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/([-._a-zA-Z0-9]+)\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
CLOUD_RUN_MAX_RETRIES = 10
# What a VM or pod needs beyond the job's own timeouts: boot or scheduling, image pull and secret reads.
GCE_START_MARGIN_SECONDS = 600
K8S_MAX_BACKOFF_SECONDS = 360  # the Job controller waits 10 s, 20 s, 40 s ... at most 6 min between attempts
STARTUP_SCRIPT = ("gcp", "gce_instance", "startup.sh")
# The format of every resource_refs key a GCP compute type reads: checked at generation and by a validation
# block in variables.tf (so an edited tfvars fails at plan with the same message).
_ACCOUNT = (r"^[a-z0-9][a-z0-9._-]*@[a-z0-9][a-z0-9.:-]*\.gserviceaccount\.com$", "a service account email")
REF_FORMATS = {
    "service_account_email": _ACCOUNT,
    "scheduler_service_account_email": _ACCOUNT,
    "subnet_id": (r"^(https://www\.googleapis\.com/compute/v1/)?(projects/[a-z0-9.:-]+/regions/[a-z0-9-]+/subnetworks/)?"
                  r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", "a subnetwork name or projects/P/regions/R/subnetworks/NAME"),
    "cluster_name": (r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", "a GKE cluster name"),
    "cluster_location": (r"^[a-z]+-[a-z]+[0-9]+(-[a-z])?$", "a GKE cluster's region or zone"),
    "namespace": (r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", "a Kubernetes namespace name"),
    "kubernetes_service_account": (r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", "a Kubernetes service account name"),
}
READS = {
    "cloud_run": ("service_account_email", "subnet_id", "scheduler_service_account_email"),
    "gce_instance": ("service_account_email", "subnet_id"),
    "gke_pod": ("cluster_name", "cluster_location", "namespace", "kubernetes_service_account"),
}
REQUIRED = {"gke_pod": ("cluster_name",)}


@lru_cache(maxsize=1)
def zone_table() -> dict[str, list[str]]:
    """Compute Engine zones per region (templates/gcp/zones.json, from the GCP regions-and-zones docs)."""
    path = files("dativo_ingest.templates").joinpath("gcp", "zones.json")
    return json.loads(path.read_text(encoding="utf-8"))["regions"]


def _settings_error(project: ProjectSettings, environment: str | None, key: str, message: str) -> InputError:
    """An error about a settings key, at its line: under environments.<env> when that layer sets it."""
    parts = key.split(".")
    loc: list[str] = parts
    environments = project.raw.get("environments")
    node: Any = environments.get(environment or "") if isinstance(environments, dict) else None
    for part in parts:
        node = node.get(part) if isinstance(node, dict) else None
    if node is not None:
        loc = ["environments", str(environment), *parts]
    return CloudLimitError(message, path=project.display_path, line=line_of(project.text, loc) if project.text else None,
                           key=".".join(loc))


def zone(job: JobConfig, project: ProjectSettings, settings: Settings, region: str) -> str:
    """The VM's zone: gcp.zone when set (it must be a zone of the job's region), else the region's first zone."""
    table = zone_table()
    configured = settings.gcp.zone
    region_key = ("infrastructure", "region") if job.infrastructure.region else None
    where = "infrastructure.region" if region_key else "gcp.region"
    if configured:
        match = _ZONE.match(configured)
        if not match:
            raise _settings_error(project, job.environment, "gcp.zone",
                                  f"{configured!r} is not a Compute Engine zone name (like us-east1-b)")
        if match.group(1) != region:
            raise _settings_error(
                project, job.environment, "gcp.zone",
                f"zone {configured!r} is in region {match.group(1)!r}, but {job.relative_path} runs in {region!r} "
                f"({where}); allowed: a zone of {region!r}"
                + (f" ({', '.join(table[region])})" if region in table else "")
                + ", or no gcp.zone (set it per environment under environments.<env>.gcp.zone)",
            )
        if region in table and configured not in table[region]:
            raise _settings_error(project, job.environment, "gcp.zone",
                                  f"{configured!r} is not a zone of {region!r}; allowed: {', '.join(table[region])}")
        return configured
    if region not in table:
        message = (f"{region!r} is not a Compute Engine region dativo-tf knows (templates/gcp/zones.json): check the "
                   f"name, or set gcp.zone to one of its zones in {project.display_path}")
        if region_key:
            raise job.error(message, *region_key, cls=CloudLimitError)
        raise _settings_error(project, job.environment, "gcp.region", message)
    return table[region][0]


def attempts(job: JobConfig) -> int:
    """retry_config.max_attempts (runs in all, first included); 1 (no retry) when not set."""
    retry = job.retry_config or {}
    value = retry.get("max_attempts", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise job.error(f"{value!r} is not a number of attempts; allowed: a whole number, 1 or more (1: no retry)",
                        "retry_config", "max_attempts")
    return value


def secrets(job: JobConfig, compute_type: str, project_id: str) -> list[dict[str, str]]:
    """infrastructure.secrets as references: for GKE {env, name, key}; else {env, secret, version, path}."""
    out = []
    for env, reference in sorted(job.infrastructure.secrets.items()):
        loc = ("infrastructure", "secrets", env)
        if compute_type == "gke_pod":
            match = _K8S_SECRET.match(reference)
            if not match or len(match.group(1)) > 253 or len(match.group(5)) > 253:
                raise job.error(
                    f"{reference!r} is not a Kubernetes secret reference; allowed: <secret name>/<key>, the name "
                    "lowercase letters, digits, '-' and '.' (like etl-db/password)", *loc)
            out.append({"env": env, "name": match.group(1), "key": match.group(5)})
            continue
        path, short = _SECRET_PATH.match(reference), _SECRET_SHORT.match(reference)
        if path:
            secret_project, name, version = path.group(1), path.group(2), path.group(3) or "latest"
            secret = f"projects/{secret_project}/secrets/{name}"
        elif short:
            secret_project, name, version = project_id, short.group(1), short.group(2) or "latest"
            secret = name
        else:
            secret = ""
        if not secret or not _VERSION.match(version):
            raise job.error(
                f"{reference!r} is not a Secret Manager reference; allowed: projects/PROJECT/secrets/NAME/versions/"
                "VERSION, projects/PROJECT/secrets/NAME, NAME or NAME:VERSION (VERSION a number or latest; "
                "NAME letters, digits, '_' and '-')", *loc)
        out.append({"env": env, "secret": secret, "version": version,
                    "path": f"projects/{secret_project}/secrets/{name}/versions/{version}"})
    return out


def ref_rules(job: JobConfig, compute_type: str) -> list[dict[str, Any]]:
    """The format rule of every resource_refs key the compute type reads (see compute.ref_rules)."""
    return compute.ref_rules(job, READS[compute_type], REF_FORMATS, REQUIRED.get(compute_type, ()))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


@lru_cache(maxsize=1)
def startup_script() -> list[str]:
    """The VM start-up script's lines: constant text, no job value in it."""
    return files("dativo_ingest.templates").joinpath(*STARTUP_SCRIPT).read_text(encoding="utf-8").splitlines()


def startup_metadata(job: JobConfig, image: str, command: list[str], env: dict[str, str],
                     job_secrets: list[dict[str, str]], timeout: int, max_attempts: int,
                     scheduled: bool) -> dict[str, str]:
    """The instance metadata the start-up script reads: values base64-encoded, never inside the script."""
    sources = (("image", "gcp.image or image in dativo-tf.yaml", [image]),
               ("command argument", "the job file's path or command in dativo-tf.yaml", command),
               ("container environment value", "the job file's path", list(env.values())))
    for what, origin, values in sources:
        for value in values:
            if _CONTROL.search(value):
                raise job.error(f"the {what} {value!r} holds a control character, which the VM start-up refuses; "
                                f"it comes from {origin}: rename or fix it", "infrastructure", "runtime_environment")
    return {
        "dativo-args": " ".join(_b64(arg) for arg in command),
        "dativo-env": " ".join(f"{name}={_b64(value)}" for name, value in env.items()),
        "dativo-image": _b64(image),
        "dativo-max-attempts": str(max_attempts),
        **({"dativo-scheduled": "true"} if scheduled else {}),
        **({"dativo-secrets": " ".join(f"{s['env']}={s['path']}" for s in job_secrets)} if job_secrets else {}),
        "dativo-timeout-seconds": str(timeout),
    }


def context(job: JobConfig, project: ProjectSettings, settings: Settings, parts: list[str],
            ctx: dict[str, Any]) -> dict[str, Any]:
    """Template values for the GCP compute types (resource mode)."""
    runtime = ctx["runtime"]
    compute_type = runtime.compute_type
    max_attempts = attempts(job)
    retries = max_attempts - 1
    if compute_type == "cloud_run" and retries > CLOUD_RUN_MAX_RETRIES:
        raise job.error(f"{max_attempts} attempts is over Cloud Run's maximum of {CLOUD_RUN_MAX_RETRIES} retries; "
                        f"allowed: 1-{CLOUD_RUN_MAX_RETRIES + 1}", "retry_config", "max_attempts", cls=CloudLimitError)
    job_secrets = secrets(job, compute_type, ctx["project_id"])
    out: dict[str, Any] = {
        "ref_rules": ref_rules(job, compute_type),
        "max_attempts": max_attempts,
        "retries": retries,
        "secrets": job_secrets,
        "secret_ids": sorted({s["secret"] for s in job_secrets if "secret" in s}),
    }
    if compute_type == "gce_instance":
        timeout = runtime.timeout_seconds
        out["zone"] = zone(job, project, settings, ctx["region"])
        out["startup_script"] = startup_script()
        out["startup_metadata"] = startup_metadata(job, ctx["image"], ctx["command"], ctx["container_env"],
                                                   job_secrets, timeout, max_attempts, bool(ctx["schedule"]))
        out["max_run_seconds"] = timeout * max_attempts + GCE_START_MARGIN_SECONDS
        out["start_margin"] = GCE_START_MARGIN_SECONDS
    if compute_type == "gke_pod":
        out["start_margin"] = GCE_START_MARGIN_SECONDS
        out["job_deadline_seconds"] = (runtime.timeout_seconds * max_attempts + K8S_MAX_BACKOFF_SECONDS * retries
                                       + GCE_START_MARGIN_SECONDS)
    if compute_type == "cloud_run" and ctx["schedule"]:
        out["scheduler_account_id"] = compute.resource_name(["sched", *parts], 30, lowercase=True, allowed="a-z0-9-")
    return out
