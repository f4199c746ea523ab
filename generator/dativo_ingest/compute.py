"""Per compute type: resolve the runtime (sizes, timeouts, names) and enforce each cloud's limits.

Every check raises an InputError naming the job file, the key, the value and what is allowed, so nothing
invalid reaches `terraform apply`.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from dativo_ingest.config import COMPUTE_SIZES, COMPUTE_TYPES, JobConfig
from dativo_ingest.errors import CloudLimitError

# compute_size -> (vCPU, memory MiB), used when cpu_units / memory_mb are not given
SIZES = dict(zip(COMPUTE_SIZES, [(0.5, 1024), (1, 2048), (2, 4096), (4, 8192), (8, 16384)], strict=True))
DEFAULT_SIZE = "medium"
CPU_UNITS_PER_VCPU = {"aws": 1024, "gcp": 1000}

# Fargate: cpu -> (min memory, max memory, step)
FARGATE = {
    256: (512, 2048, None), 512: (1024, 4096, 1024), 1024: (2048, 8192, 1024), 2048: (4096, 16384, 1024),
    4096: (8192, 30720, 1024), 8192: (16384, 61440, 4096), 16384: (32768, 122880, 8192),
}
FARGATE_256_MEMORY = (512, 1024, 2048)
FARGATE_DEFAULT_EPHEMERAL_GIB, FARGATE_MAX_EPHEMERAL_GIB = 20, 200
LAMBDA_MEMORY, LAMBDA_MAX_TIMEOUT, LAMBDA_EPHEMERAL_MB = (128, 10240), 900, (512, 10240)
CLOUD_RUN_MEMORY = {1: (512, 4096), 2: (512, 8192), 4: (2048, 16384), 6: (4096, 24576), 8: (4096, 32768)}
CLOUD_RUN_MAX_TIMEOUT = 168 * 3600
EC2_MIN_ROOT_GIB, EC2_DEFAULT_ROOT_GIB = 8, 30
GCE_MIN_DISK_GB, GCE_DEFAULT_DISK_GB = 10, 30
# Instance types tried in order (cheapest first) when instance_type is not given: (type, vCPU, GiB)
EC2_TYPES = [
    ("t3.micro", 2, 1), ("t3.small", 2, 2), ("t3.medium", 2, 4), ("m6i.large", 2, 8), ("r6i.large", 2, 16),
    ("m6i.xlarge", 4, 16), ("r6i.xlarge", 4, 32), ("m6i.2xlarge", 8, 32), ("r6i.2xlarge", 8, 64),
    ("m6i.4xlarge", 16, 64), ("r6i.4xlarge", 16, 128), ("m6i.8xlarge", 32, 128), ("r6i.8xlarge", 32, 256),
    ("m6i.16xlarge", 64, 256), ("r6i.16xlarge", 64, 512),
]
# E2 custom machine types: even vCPU count 2-32, 0.5-8 GB per vCPU, memory a multiple of 256 MB, <= 128 GB
E2_CUSTOM_VCPU, E2_MEM_PER_VCPU, E2_MAX_MEMORY = (2, 32), (512, 8192), 131072
_CUSTOM_MACHINE = re.compile(r"^(?:(e2|n1|n2|n2d)-)?custom-(\d+)-(\d+)(-ext)?\Z")
_MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+\Z")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+\Z")

RE = ("infrastructure", "runtime_environment")


@dataclass
class Runtime:
    """What the templates need about where and how the job runs; every value already checked."""

    cloud: str
    compute_type: str
    compute_size: str
    cpu_units: int
    memory_mb: int
    timeout_seconds: int | None
    ephemeral_storage_gb: int | None
    persistent_volume: bool
    service_account: str | None
    vpc_id: str | None
    subnet_ids: list[str]
    security_group_ids: list[str]
    derived: dict[str, Any] = field(default_factory=dict)  # per compute type, see resolve_*
    warnings: list[str] = field(default_factory=list)

    def as_variable(self) -> dict[str, Any]:
        """The seed's `runtime_environment` variable, with the resolved sizes."""
        out: dict[str, Any] = {
            "compute_type": self.compute_type,
            "compute_size": self.compute_size,
            "memory_mb": self.memory_mb,
            "cpu_units": self.cpu_units,
        }
        if self.timeout_seconds is not None:
            out["timeout_seconds"] = self.timeout_seconds
        if self.vpc_id or self.subnet_ids or self.security_group_ids:
            network: dict[str, Any] = {"subnet_ids": self.subnet_ids, "security_group_ids": self.security_group_ids}
            if self.vpc_id:
                network = {"vpc_id": self.vpc_id, **network}
            out["network"] = network
        storage: dict[str, Any] = {"persistent_volume": self.persistent_volume}
        if self.ephemeral_storage_gb is not None:
            storage = {"ephemeral_storage_gb": self.ephemeral_storage_gb, **storage}
        out["storage"] = storage
        if self.service_account:
            out["service_account"] = self.service_account
        for key in ("instance_type", "machine_type"):
            if key in self.derived:
                out[key] = self.derived[key]
        return out


def _limit(job: JobConfig, key: str, message: str) -> CloudLimitError:
    return job.error(message, *RE, key, cls=CloudLimitError)


def resolve(job: JobConfig) -> Runtime:
    infra = job.infrastructure
    assert infra is not None
    env = infra.runtime_environment
    cloud = infra.cloud_provider
    allowed = COMPUTE_TYPES[cloud]
    if not env.compute_type:
        raise job.error(f"required for a workspace; allowed for {cloud}: {', '.join(allowed)}", *RE, "compute_type")
    if env.compute_type not in allowed:
        other = "gcp" if cloud == "aws" else "aws"
        hint = f" ({env.compute_type!r} is a {other} compute type)" if env.compute_type in COMPUTE_TYPES[other] else ""
        raise job.error(
            f"{env.compute_type!r} is not a compute type for {cloud}{hint}; allowed: {', '.join(allowed)}",
            *RE, "compute_type", cls=CloudLimitError,
        )
    size = env.compute_size or DEFAULT_SIZE
    if (env.cpu_units is None or env.memory_mb is None) and size not in SIZES:
        raise job.error(f"unknown compute_size {size!r}; allowed: {', '.join(SIZES)}", *RE, "compute_size")
    vcpu, memory = SIZES.get(size, SIZES[DEFAULT_SIZE])
    network = env.network
    storage = env.storage
    runtime = Runtime(
        cloud=cloud,
        compute_type=env.compute_type,
        compute_size=size,
        cpu_units=env.cpu_units if env.cpu_units is not None else int(vcpu * CPU_UNITS_PER_VCPU[cloud]),
        memory_mb=env.memory_mb if env.memory_mb is not None else memory,
        timeout_seconds=env.timeout_seconds,
        ephemeral_storage_gb=storage.ephemeral_storage_gb if storage else None,
        persistent_volume=storage.persistent_volume if storage else False,
        service_account=env.service_account,
        vpc_id=network.vpc_id if network else None,
        subnet_ids=list(network.subnet_ids) if network else [],
        security_group_ids=list(network.security_group_ids) if network else [],
    )
    if runtime.persistent_volume:
        runtime.warnings.append("storage.persistent_volume is not provisioned by dativo-tf; attach storage in an extra .tf file")
    RESOLVERS[env.compute_type](job, runtime)
    return runtime


def _ecs_task(job: JobConfig, rt: Runtime) -> None:
    cpu, memory = rt.cpu_units, rt.memory_mb
    if cpu not in FARGATE:
        raise _limit(job, "cpu_units", f"{cpu} is not a Fargate CPU size; allowed: {', '.join(map(str, FARGATE))}")
    low, high, step = FARGATE[cpu]
    valid = memory in FARGATE_256_MEMORY if step is None else low <= memory <= high and memory % step == 0
    if not valid:
        allowed = (
            ", ".join(map(str, FARGATE_256_MEMORY)) if step is None else f"{low}-{high} in steps of {step}"
        )
        raise _limit(job, "memory_mb", f"{memory} MiB is not valid for Fargate cpu {cpu}; allowed: {allowed}")
    gib = rt.ephemeral_storage_gb
    if gib is not None and gib > FARGATE_MAX_EPHEMERAL_GIB:
        raise _limit(
            job, "storage",
            f"ephemeral_storage_gb {gib} is over Fargate's maximum; allowed: 21-200 GiB (20 or less means the default 20)",
        )
    rt.derived["ephemeral_gib"] = gib if gib is not None and gib > FARGATE_DEFAULT_EPHEMERAL_GIB else None


def _lambda(job: JobConfig, rt: Runtime) -> None:
    low, high = LAMBDA_MEMORY
    if not low <= rt.memory_mb <= high:
        raise _limit(job, "memory_mb", f"{rt.memory_mb} MB is outside Lambda's range; allowed: {low}-{high}")
    if rt.timeout_seconds is None:
        rt.timeout_seconds = LAMBDA_MAX_TIMEOUT
    if rt.timeout_seconds > LAMBDA_MAX_TIMEOUT:
        raise _limit(
            job, "timeout_seconds",
            f"{rt.timeout_seconds} s is over Lambda's maximum of 900 s (15 minutes); "
            "allowed: 1-900, or use compute_type ecs_task for longer jobs",
        )
    if job.infrastructure.runtime_environment.cpu_units is not None:
        rt.warnings.append("cpu_units is ignored for lambda: Lambda allocates CPU in proportion to memory_mb")
    if rt.ephemeral_storage_gb is not None:
        mb = rt.ephemeral_storage_gb * 1024
        low, high = LAMBDA_EPHEMERAL_MB
        if not low <= mb <= high:
            raise _limit(
                job, "storage",
                f"ephemeral_storage_gb {rt.ephemeral_storage_gb} ({mb} MB) is outside Lambda's range; "
                f"allowed: {low}-{high} MB (1-10 GB)",
            )
        rt.derived["ephemeral_mb"] = mb
    else:
        rt.derived["ephemeral_mb"] = None


def _ec2_instance(job: JobConfig, rt: Runtime) -> None:
    explicit = job.infrastructure.runtime_environment.instance_type
    if explicit:
        if not _INSTANCE_TYPE.match(explicit):
            raise _limit(job, "instance_type", f"{explicit!r} is not an EC2 instance type (like m6i.large)")
        rt.derived["instance_type"] = explicit
    else:
        vcpu = rt.cpu_units / CPU_UNITS_PER_VCPU["aws"]
        gib = rt.memory_mb / 1024
        for name, cpus, mem in EC2_TYPES:
            if cpus >= vcpu and mem >= gib:
                rt.derived["instance_type"] = name
                break
        else:
            raise _limit(
                job, "memory_mb",
                f"no instance type in the built-in table fits {vcpu:g} vCPU and {gib:g} GiB; set instance_type",
            )
    rt.derived["root_volume_gib"] = max(EC2_MIN_ROOT_GIB, rt.ephemeral_storage_gb or EC2_DEFAULT_ROOT_GIB)
    if not rt.subnet_ids:
        raise job.error("ec2_instance needs network.subnet_ids (the instance's subnet)", *RE, "network")


def _cloud_run(job: JobConfig, rt: Runtime) -> None:
    cpu = rt.cpu_units / 1000
    if cpu not in CLOUD_RUN_MEMORY:
        raise _limit(
            job, "cpu_units",
            f"{rt.cpu_units} is not a Cloud Run CPU size; allowed: 1000, 2000, 4000, 6000, 8000 (1000 = 1 vCPU)",
        )
    low, high = CLOUD_RUN_MEMORY[int(cpu)]
    if not low <= rt.memory_mb <= high:
        raise _limit(
            job, "memory_mb",
            f"{rt.memory_mb} MiB is not valid for Cloud Run with {int(cpu)} vCPU; allowed: {low}-{high} MiB",
        )
    if rt.timeout_seconds is None:
        rt.timeout_seconds = 3600
    if rt.timeout_seconds > CLOUD_RUN_MAX_TIMEOUT:
        raise _limit(
            job, "timeout_seconds",
            f"{rt.timeout_seconds} s is over the Cloud Run jobs maximum; allowed: 1-{CLOUD_RUN_MAX_TIMEOUT} (168 h)",
        )
    rt.derived["cpu"] = str(int(cpu))
    rt.derived["memory"] = f"{rt.memory_mb}Mi"
    if rt.ephemeral_storage_gb:
        rt.warnings.append("storage.ephemeral_storage_gb is ignored for cloud_run: its disk is in memory (memory_mb)")


def _e2_custom(vcpus: int, memory: int) -> str | None:
    """Why an E2 custom shape is invalid, or None."""
    low, high = E2_CUSTOM_VCPU
    if not (low <= vcpus <= high and vcpus % 2 == 0):
        return f"{vcpus} vCPUs: E2 custom machine types take an even number of vCPUs, {low}-{high}"
    if memory % 256:
        return f"{memory} MB: memory must be a multiple of 256 MB"
    per_low, per_high = E2_MEM_PER_VCPU
    if not per_low * vcpus <= memory <= min(per_high * vcpus, E2_MAX_MEMORY):
        return f"{memory} MB with {vcpus} vCPUs: allowed 0.5-8 GB per vCPU ({per_low * vcpus}-{min(per_high * vcpus, E2_MAX_MEMORY)} MB)"
    return None


def _gce_instance(job: JobConfig, rt: Runtime) -> None:
    explicit = job.infrastructure.runtime_environment.machine_type
    if explicit:
        custom = _CUSTOM_MACHINE.match(explicit)
        if custom and custom.group(1) in (None, "e2") and not custom.group(4):
            problem = _e2_custom(int(custom.group(2)), int(custom.group(3)))
            if problem:
                raise _limit(job, "machine_type", f"{explicit!r} is not a valid custom machine type: {problem}")
        elif not _MACHINE_TYPE.match(explicit):
            raise _limit(job, "machine_type", f"{explicit!r} is not a Compute Engine machine type (like e2-standard-4)")
        rt.derived["machine_type"] = explicit
    else:
        # The smallest valid E2 custom shape that fits the request.
        vcpus = max(2, math.ceil(rt.cpu_units / 1000))
        vcpus += vcpus % 2
        memory = max(-(-rt.memory_mb // 256) * 256, E2_MEM_PER_VCPU[0] * vcpus)
        while memory > E2_MEM_PER_VCPU[1] * vcpus and vcpus < E2_CUSTOM_VCPU[1]:
            vcpus += 2
        problem = _e2_custom(vcpus, memory)
        if problem:
            raise _limit(job, "memory_mb", f"no E2 custom machine type fits: {problem}; set machine_type")
        rt.derived["machine_type"] = f"e2-custom-{vcpus}-{memory}"
    rt.derived["disk_gb"] = max(GCE_MIN_DISK_GB, rt.ephemeral_storage_gb or GCE_DEFAULT_DISK_GB)
    if rt.timeout_seconds is None:
        rt.timeout_seconds = 3600
    if not rt.subnet_ids and not rt.vpc_id:
        raise job.error("gce_instance needs network.subnet_ids or network.vpc_id", *RE, "network")


def _gke_pod(job: JobConfig, rt: Runtime) -> None:
    if rt.timeout_seconds is None:
        rt.timeout_seconds = 3600
    rt.derived["cpu"] = f"{rt.cpu_units}m"
    rt.derived["memory"] = f"{rt.memory_mb}Mi"
    if rt.ephemeral_storage_gb:
        rt.derived["ephemeral_storage"] = f"{rt.ephemeral_storage_gb}Gi"


RESOLVERS = {
    "ecs_task": _ecs_task, "lambda": _lambda, "ec2_instance": _ec2_instance,
    "cloud_run": _cloud_run, "gce_instance": _gce_instance, "gke_pod": _gke_pod,
}


def resource_name(parts: list[str], limit: int, *, lowercase: bool = False, allowed: str = r"a-zA-Z0-9_-") -> str:
    """A cloud resource name from job parts: disallowed characters -> '-', cut to `limit` with a stable hash
    suffix when too long."""
    name = "-".join(parts)
    if lowercase:
        name = name.lower()
    name = re.sub(f"[^{allowed}]+", "-", name).strip("-_")
    if lowercase and (not name or not name[0].isalpha()):
        name = "j-" + name
    if len(name) > limit:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = name[: limit - 9].rstrip("-_") + "-" + digest
    return name


def ref_rules(job, names, formats: dict[str, tuple[str, str]], required) -> list[dict]:
    """The format rule of every resource_refs key in `names` (`formats`: key -> (regex, what it is)); a set key
    breaking its rule is an error naming it. The rules become validation blocks on var.resource_refs."""
    import re

    refs = job.infrastructure.terraform.resource_refs
    rules = []
    for name in names:
        pattern, what = formats[name]
        value = refs.get(name)
        if value and not re.match(pattern, value):
            raise job.error(f"{value!r} is not {what} (pattern {pattern})",
                            "infrastructure", "terraform", "resource_refs", name)
        rules.append({"key": name, "pattern": pattern, "what": what, "required": name in required})
    return rules
