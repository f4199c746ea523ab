"""Workspaces for job shapes beyond the examples: every compute type with and without a schedule and a
network, both tfvars formats, hostile tag values. Each is checked with the real tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dativo_ingest.errors import InputError
from tests.tfcheck import fmt_check, parse, schema_problems, tfvars_conform

NETWORK = {
    "aws": "network: {vpc_id: vpc-1, subnet_ids: [subnet-1, subnet-2], security_group_ids: [sg-1]}",
    "gcp": "network: {vpc_id: projects/p/global/networks/n, subnet_ids: [projects/p/regions/us-central1/subnetworks/s], security_group_ids: [etl]}",
}
CASES = {
    "ecs_task": ("aws", "cpu_units: 2048\n    memory_mb: 16384\n    storage: {ephemeral_storage_gb: 21}",
                 "execution_role_arn: arn:aws:iam::123456789012:role/x\n      cluster_name: c\n      scheduler_role_arn: arn:aws:iam::123456789012:role/s"),
    # lambda and ec2_instance name no scheduler role: the workspace creates it
    "lambda": ("aws", "memory_mb: 10240\n    timeout_seconds: 900\n    service_account: arn:aws:iam::123456789012:role/fn",
               "dead_letter_queue_arn: arn:aws:sqs:us-east-1:123456789012:dlq"),
    "ec2_instance": ("aws", "instance_type: c7g.large\n    service_account: profile",
                     "ami_id: ami-0123456789abcdef0\n      subnet_id: subnet-0123456789abcdef0"),
    "cloud_run": ("gcp", "cpu_units: 8000\n    memory_mb: 32768\n    timeout_seconds: 604800",
                  "service_account_email: sa@p.iam.gserviceaccount.com"),
    "gce_instance": ("gcp", "machine_type: e2-custom-4-8192\n    service_account: sa@p.iam.gserviceaccount.com", "subnet_id: s"),
    "gke_pod": ("gcp", "cpu_units: 250\n    memory_mb: 512", "cluster_name: gke-1"),
}
SECRETS = {  # infrastructure.secrets per cloud
    "aws": "secrets: {PGPASSWORD: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pg-AbCdEf', "
           "API_TOKEN: 'arn:aws:ssm:us-east-1:123456789012:parameter/etl/api-token'}",
    # GCP: Secret Manager references; GKE: Kubernetes secret/key
    "gcp": "secrets: {PGPASSWORD: 'projects/shared/secrets/pg/versions/3', API_TOKEN: 'api-token'}",
    "gke_pod": "secrets: {PGPASSWORD: etl-db/password, API_TOKEN: 'api.tokens/token'}",
}
HOSTILE_TAGS = 'Quote: "say \\"hi\\""\n    Template: "${var.secret} %{ if x }"\n    Newline: "a\\nb"\n    Unicode: "Zürich ✓"'


def _infra(compute: str, schedule: bool, network: bool) -> str:
    cloud, runtime, refs = CASES[compute]
    if compute in ("ec2_instance", "gce_instance"):
        network = True  # these need a subnet
    lines = [f"cloud_provider: {cloud}"]
    if schedule:
        lines.append('schedule: {cron: "*/20 6-18 * * 1-5", timezone: Europe/Paris}')
    lines.append(f"runtime_environment:\n  compute_type: {compute}\n  " + runtime.replace("\n    ", "\n  "))
    if network:
        lines.append("  " + NETWORK[cloud])
    lines.append("tags:\n  " + HOSTILE_TAGS.replace("\n    ", "\n  "))
    if compute in SECRETS or cloud in SECRETS:
        lines.append(SECRETS.get(compute) or SECRETS[cloud])
    lines.append("terraform:\n  resource_refs:\n    " + refs.replace("\n      ", "\n    "))
    lines.append("  variables: {flag: true, count_max: 3, names: [a, b], mixed: {a: 1, b: x}, nothing: null}")
    return "\n".join(lines)


@pytest.mark.parametrize("tfvars_format", ["hcl", "json"])
@pytest.mark.parametrize("network", [False, True], ids=["no-network", "network"])
@pytest.mark.parametrize("schedule", [False, True], ids=["once", "scheduled"])
@pytest.mark.parametrize("compute", sorted(CASES))
def test_workspace_passes_real_tool_checks(project, tmp_path, compute, schedule, network, tfvars_format):
    if tfvars_format == "json":
        settings = project.root / "dativo-tf.yaml"
        settings.write_text(settings.read_text() + "tfvars_format: json\n")
    if compute == "ecs_task" and schedule and not network:
        with pytest.raises(InputError, match="a scheduled ecs_task needs network.subnet_ids"):
            project.render(f"{compute}_job", _infra(compute, schedule, network))
        return
    ws = project.render(f"{compute}_job", _infra(compute, schedule, network))
    out = tmp_path / "ws"
    out.mkdir()
    for name, text in ws.files.items():
        (out / name).write_text(text)
    fmt_check([out])
    problems = []
    for path in sorted(out.glob("*.tf*")):
        if path.suffix == ".json":
            assert json.loads(path.read_text())
            assert path.read_text() == json.dumps(json.loads(path.read_text()), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            continue
        parsed = parse(path)
        if path.suffix == ".tf":
            problems += schema_problems(parsed, path.name)
    assert problems == []
    tfvars_conform(out)
    main = ws.files["main.tf"]
    if schedule:
        assert any(r in main for r in ("aws_scheduler_schedule", "google_cloud_scheduler_job", "kubernetes_cron_job_v1",
                                       "google_compute_resource_policy"))
    if cloud_of(compute) == "aws" and schedule:
        assert 'cron(0/20 6-18 ? * 2-6 *)' in main
    # HCL is escaped; JSON tfvars are read literally by Terraform, so they hold the text as written
    hcl_text = "".join(text for name, text in ws.files.items() if not name.endswith(".json"))
    assert "${var.secret}" not in hcl_text.replace("$${var.secret}", "")


def test_schema_check_reports_mistakes():
    parsed = {"resource": [{'"aws_instance"': {'"x"': {"instance_typo": '"t3.micro"', "metadata_options": {"a": 1},
                                                       "__is_block__": True}}},
                           {'"aws_lamda_function"': {'"y"': {"__is_block__": True}}}]}
    problems = schema_problems(parsed, "main.tf")
    assert any("instance_typo" in p for p in problems)
    assert any("metadata_options" in p and "a block" in p for p in problems)
    assert any("aws_lamda_function" in p for p in problems)


def test_tfvars_check_rejects_a_mismatch(tmp_path):
    (tmp_path / "variables.tf").write_text('variable "n" {\n  type = number\n}\n')
    (tmp_path / "terraform.tfvars").write_text('n = "not a number"\n')
    with pytest.raises(AssertionError, match="do not conform"):
        tfvars_conform(tmp_path)


def test_fmt_check_rejects_misaligned(tmp_path):
    (tmp_path / "main.tf").write_text('locals {\n  a = 1\n  bbb = 2\n}\n')
    with pytest.raises(AssertionError, match="fmt"):
        fmt_check([tmp_path])


def cloud_of(compute: str) -> str:
    return CASES[compute][0]
