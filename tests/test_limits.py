"""Cloud limits: accepted at the edge, rejected one past it, with a message naming file, key and allowed values."""

from __future__ import annotations

import pytest

from dativo_ingest.cron import CronError, to_aws
from dativo_ingest.errors import InputError

REFS_ECS = "terraform: {resource_refs: {execution_role_arn: arn:aws:iam::123456789012:role/x}}"
REFS_LAMBDA = "terraform: {resource_refs: {execution_role_arn: arn:aws:iam::123456789012:role/x}}"
REFS_RUN = "terraform: {resource_refs: {service_account_email: sa@p.iam.gserviceaccount.com}}"


def ecs(cpu, memory, storage=None):
    extra = f"\n  storage: {{ephemeral_storage_gb: {storage}}}" if storage else ""
    return f"cloud_provider: aws\nruntime_environment:\n  compute_type: ecs_task\n  cpu_units: {cpu}\n  memory_mb: {memory}{extra}\n{REFS_ECS}"


def lam(memory=1024, timeout=60, storage=None):
    extra = f"\n  storage: {{ephemeral_storage_gb: {storage}}}" if storage else ""
    return (f"cloud_provider: aws\nruntime_environment:\n  compute_type: lambda\n  memory_mb: {memory}\n"
            f"  timeout_seconds: {timeout}{extra}\n{REFS_LAMBDA}")


def run(cpu, memory, timeout=60):
    return (f"cloud_provider: gcp\nruntime_environment:\n  compute_type: cloud_run\n  cpu_units: {cpu}\n"
            f"  memory_mb: {memory}\n  timeout_seconds: {timeout}\n{REFS_RUN}")


def gce(machine):
    return (f"cloud_provider: gcp\nruntime_environment:\n  compute_type: gce_instance\n  machine_type: {machine}\n"
            f"  network: {{subnet_ids: [s]}}\n{REFS_RUN}")


OK = [
    ecs(256, 512), ecs(256, 2048), ecs(512, 4096), ecs(4096, 30720), ecs(8192, 61440), ecs(16384, 122880),
    ecs(1024, 2048, storage=20), ecs(1024, 2048, storage=21), ecs(1024, 2048, storage=200),
    lam(128), lam(10240), lam(timeout=900), lam(storage=1), lam(storage=10),
    run(1000, 512), run(1000, 4096), run(2000, 8192), run(4000, 2048), run(6000, 24576), run(8000, 32768),
    run(1000, 512, timeout=604800), gce("e2-custom-2-1024"), gce("e2-custom-32-131072"), gce("n2-standard-8"),
]
BAD = [
    (ecs(1000, 2048), "cpu_units", "1000 is not a Fargate CPU size; allowed: 256, 512, 1024"),
    (ecs(256, 4096), "memory_mb", "allowed: 512, 1024, 2048"),
    (ecs(512, 5120), "memory_mb", "allowed: 1024-4096 in steps of 1024"),
    (ecs(4096, 31744), "memory_mb", "allowed: 8192-30720 in steps of 1024"),
    (ecs(8192, 62464), "memory_mb", "allowed: 16384-61440 in steps of 4096"),
    (ecs(16384, 131072), "memory_mb", "allowed: 32768-122880 in steps of 8192"),
    (ecs(1024, 2048, storage=201), "storage", "allowed: 21-200 GiB"),
    (lam(127), "memory_mb", "allowed: 128-10240"),
    (lam(10241), "memory_mb", "allowed: 128-10240"),
    (lam(timeout=901), "timeout_seconds", "over Lambda's maximum of 900 s"),
    (lam(timeout=3600), "timeout_seconds", "3600 s is over Lambda's maximum of 900 s"),
    (lam(storage=11), "storage", "allowed: 512-10240 MB"),
    (run(1500, 2048), "cpu_units", "allowed: 1000, 2000, 4000, 6000, 8000"),
    (run(1000, 511), "memory_mb", "allowed: 512-4096 MiB"),
    (run(1000, 4097), "memory_mb", "allowed: 512-4096 MiB"),
    (run(4000, 2047), "memory_mb", "allowed: 2048-16384 MiB"),
    (run(8000, 32769), "memory_mb", "allowed: 4096-32768 MiB"),
    (run(1000, 512, timeout=604801), "timeout_seconds", "allowed: 1-604800 (168 h)"),
    (gce("e2-custom-3-3072"), "machine_type", "even number of vCPUs"),
    (gce("e2-custom-2-1000"), "machine_type", "multiple of 256 MB"),
    (gce("e2-custom-2-16640"), "machine_type", "0.5-8 GB per vCPU"),
    (gce("Not A Type"), "machine_type", "not a Compute Engine machine type"),
]


@pytest.mark.parametrize("infra", OK)
def test_accepted_at_the_edge(project, infra):
    assert project.render("job", infra) is not None


@pytest.mark.parametrize("infra, key, message", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_rejected_one_past_the_edge(project, infra, key, message):
    with pytest.raises(InputError) as info:
        project.render("job", infra)
    err = info.value
    assert message in err.message
    assert err.path == "jobs/job.yaml" and err.line is not None
    assert err.key.endswith(key)


def test_compute_type_must_match_cloud(project):
    with pytest.raises(InputError, match="'cloud_run' is not a compute type for aws .*allowed: ecs_task, lambda, ec2_instance"):
        project.render("job", "cloud_provider: aws\nruntime_environment: {compute_type: cloud_run}")


def test_unknown_cloud(project):
    with pytest.raises(InputError) as info:
        project.render("job", "cloud_provider: azure\nruntime_environment: {compute_type: vm}")
    assert info.value.errors[0].key == "infrastructure.cloud_provider"
    assert "'aws' or 'gcp'" in info.value.errors[0].message


def test_derived_sizes(project):
    ec2 = project.render("job", "cloud_provider: aws\nruntime_environment: {compute_type: ec2_instance, cpu_units: 4096, memory_mb: 16384, network: {subnet_ids: [s]}, service_account: etl-profile}")
    assert ec2.variables["runtime_environment"]["instance_type"] == "m6i.xlarge"
    vm = project.render("job", gce("x").replace("machine_type: x", "cpu_units: 1000\n  memory_mb: 3000"))
    assert vm.variables["runtime_environment"]["machine_type"] == "e2-custom-2-3072"


@pytest.mark.parametrize("standard, aws", [
    ("0 3 * * *", "cron(0 3 * * ? *)"),
    ("*/15 * * * 1-5", "cron(0/15 * ? * 2-6 *)"),
    ("0 0 * * 0", "cron(0 0 ? * 1 *)"),
    ("0 0 * * 7", "cron(0 0 ? * 1 *)"),
    ("0 0 * * 5-7", "cron(0 0 ? * 6-7,1 *)"),
    ("30 2 1 * *", "cron(30 2 1 * ? *)"),
    ("0 9 * JAN-MAR MON-FRI", "cron(0 9 ? JAN-MAR MON-FRI *)"),
    ("@daily", "cron(0 0 * * ? *)"),
])
def test_cron_to_aws(standard, aws):
    assert to_aws(standard) == aws


@pytest.mark.parametrize("bad, message", [
    ("0 3 * *", "has 4 fields"), ("60 * * * *", "minute 60 is out of range"), ("0 24 * * *", "hour 24"),
    ("0 0 1 * 1", "cannot restrict both"), ("*/0 * * * *", "step 0"), ("0 0 5-1 * *", "backwards"),
])
def test_cron_errors(bad, message):
    with pytest.raises(CronError, match=message):
        to_aws(bad)


def test_schedule_error_names_the_key(project):
    with pytest.raises(InputError) as info:
        project.render("job", ecs(256, 512) + '\nschedule: "0 3 * *"')
    assert info.value.key == "infrastructure.schedule" and "4 fields" in info.value.message


def test_inferring_a_variable_type_visits_each_value_once(monkeypatch):
    """`terraform.variables` come from the job: a nested list whose items differ in type (a tuple type) must
    not be typed twice per level, which grows as 2^depth (a 50-deep value took minutes)."""
    from dativo_ingest import render

    value: object = [1, 1]
    for _ in range(16):
        value = [value, 1]
    calls = 0
    real = render.infer_type

    def counting(v):
        nonlocal calls
        calls += 1
        return real(v)

    monkeypatch.setattr(render, "infer_type", counting)
    typed = render.infer_type(value)
    assert typed.startswith("tuple([tuple([") and typed.endswith(", number])")
    assert calls <= 2 * (16 * 2 + 2) + 1, calls  # each of the 34 values (and the outermost) once
