"""AWS workspaces that really run (issue 13): the Lambda image and its region, async retries and concurrency,
the EC2 AMI and instance profile, the scheduler's generated least-privilege role, secrets, timeouts, KMS keys,
launch outputs, resource_refs validation and the Terraform version for S3 locking."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import hcl2
import pytest
import yaml

from dativo_ingest.errors import InputError
from tests.conftest import EXAMPLES
from tests.tfcheck import plan_errors_with_tfvars_edit

EXEC = "arn:aws:iam::123456789012:role/exec"
SM_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:pg-AbCdEf"
SSM_ARN = "arn:aws:ssm:us-east-1:123456789012:parameter/etl/token"
NET = "network: {subnet_ids: [subnet-0a1b2c3d4e5f60718], security_group_ids: [sg-1]}"


def infra(compute: str, *, schedule: bool = True, runtime: str = "", refs: str = "", top: str = "") -> str:
    lines = ["cloud_provider: aws"] + ([top] if top else [])
    if schedule:
        lines.append('schedule: "0 4 * * *"')
    lines.append(f"runtime_environment:\n  compute_type: {compute}\n  {NET}" + (f"\n  {runtime}" if runtime else ""))
    if refs:
        lines.append("terraform:\n  resource_refs:\n    " + refs.replace("\n", "\n    "))
    return "\n".join(lines)


ECS = dict(refs=f"execution_role_arn: {EXEC}\ncluster_name: etl")
LAMBDA = dict(refs=f"execution_role_arn: {EXEC}")
EC2 = dict(runtime="service_account: etl-profile")


def blocks(text: str, kind: str, rtype: str) -> dict[str, dict]:
    out = {}
    for entry in hcl2.loads(text).get(kind, []):
        for name, body in entry.get(f'"{rtype}"', {}).items():
            out[name.strip('"')] = body
    return out


def unquote(value):
    if isinstance(value, list):
        return [unquote(v) for v in value]
    return value[1:-1] if isinstance(value, str) and value.startswith('"') else value


def statements(main: str, document: str = "scheduler") -> dict[str, dict]:
    """The policy document's statements by action."""
    (doc,) = [b for n, b in blocks(main, "data", "aws_iam_policy_document").items() if n == document]
    out = {}
    for st in doc["statement"]:
        for action in unquote(st["actions"]):
            out[action] = st
    return out


def set_settings(project, text: str) -> None:
    (project.root / "dativo-tf.yaml").write_text(textwrap.dedent(text))


# --- item 1: Lambda image region -----------------------------------------------------------------------


def test_lambda_image_in_another_region_is_an_error_naming_the_setting(project):
    settings = project.root / "dativo-tf.yaml"  # an image in one region only
    settings.write_text(settings.read_text().replace("ecr.{region}.amazonaws.com", "ecr.us-east-1.amazonaws.com"))
    with pytest.raises(InputError) as info:
        project.render("fn", infra("lambda", top="region: eu-west-1", **LAMBDA))
    err = info.value
    assert (err.path, err.key, err.line) == ("dativo-tf.yaml", "aws.image", 3)
    assert "eu-west-1" in err.message and "us-east-1" in err.message and "{region}" in err.message


def test_lambda_image_per_environment_and_region_placeholder(project):
    set_settings(project, """
        aws:
          image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/etl:1
          lambda_image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/etl-lambda:1
          backend: {bucket: b}
        environments:
          prod:
            aws:
              lambda_image: 123456789012.dkr.ecr.{region}.amazonaws.com/etl-lambda:2
    """)
    ws = project.render("fn", infra("lambda", top="region: eu-west-1", **LAMBDA))
    fn = blocks(ws.files["main.tf"], "resource", "aws_lambda_function")["job"]
    assert unquote(fn["image_uri"]) == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/etl-lambda:2"
    assert not [w for w in ws.warnings if "Runtime API" in w.message]
    settings = project.root / "dativo-tf.yaml"
    settings.write_text(settings.read_text().replace("{region}", "us-west-2"))
    with pytest.raises(InputError) as info:
        project.render("fn", infra("lambda", top="region: eu-west-1", **LAMBDA))
    assert info.value.key == "environments.prod.aws.lambda_image" and info.value.line == 9


# --- item 5: Lambda runtime, retries, concurrency --------------------------------------------------------


def test_lambda_without_a_lambda_image_warns_about_the_runtime_api(project):
    ws = project.render("fn", infra("lambda", **LAMBDA))
    (warning,) = [w for w in ws.warnings if "Runtime API" in w.message]
    assert "aws.lambda_image" in warning.message and warning.path == "jobs/fn.yaml"


@pytest.mark.parametrize("attempts, retries", [(None, 0), (1, 0), (3, 2)])
def test_lambda_async_retries_follow_retry_config_and_runs_never_overlap(project, attempts, retries):
    extra = f"retry_config: {{max_attempts: {attempts}}}\n" if attempts else ""
    main = project.render("fn", infra("lambda", **LAMBDA), extra).files["main.tf"]
    config = blocks(main, "resource", "aws_lambda_function_event_invoke_config")["job"]
    assert config["maximum_retry_attempts"] == retries
    fn = blocks(main, "resource", "aws_lambda_function")["job"]
    assert fn["reserved_concurrent_executions"] == 1
    assert "image_config" not in fn  # the Lambda image's CMD is its handler
    assert "DATIVO_COMMAND" in main
    target = blocks(main, "resource", "aws_scheduler_schedule")["job"]["target"][0]
    assert target["retry_policy"][0]["maximum_retry_attempts"] == retries


def test_lambda_retries_past_two_are_an_error(project):
    with pytest.raises(InputError) as info:
        project.render("fn", infra("lambda", **LAMBDA), "retry_config: {max_attempts: 4}\n")
    assert info.value.key == "retry_config.max_attempts" and "allowed: 1-3" in info.value.message


# --- item 6: EC2 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("instance_type, arch", [("m7g.large", "arm64"), ("t4g.small", "arm64"), ("c7gn.xlarge", "arm64"),
                                                 ("a1.large", "arm64"), ("m6i.large", "x86_64"), ("g4dn.xlarge", "x86_64")])
def test_ec2_ami_matches_the_instance_architecture_and_never_forces_replacement(project, instance_type, arch):
    main = project.render("vm", infra("ec2_instance", runtime=f"service_account: p\n  instance_type: {instance_type}")).files["main.tf"]
    ami = blocks(main, "data", "aws_ssm_parameter")["ami"]
    assert unquote(ami["name"]) == f"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"
    instance = blocks(main, "resource", "aws_instance")["job"]
    assert instance["lifecycle"][0]["ignore_changes"] == ["ami"]
    assert instance["ami"] == "${data.aws_ssm_parameter.ami.insecure_value}"  # readable in plans
    assert instance["ebs_optimized"] is True
    assert instance["depends_on"] == ["${aws_cloudwatch_log_group.job}"]


def test_ec2_without_an_instance_profile_is_an_error(project):
    with pytest.raises(InputError, match="ec2_instance needs an instance profile") as info:
        project.render("vm", infra("ec2_instance"))
    assert info.value.key == "infrastructure.terraform.resource_refs"


# --- item 7: the scheduler's role ------------------------------------------------------------------------


def seed_style_job(project) -> Path:
    """The seed's AWS job in resource mode with a schedule: its own resource_refs, nothing added."""
    seed = yaml.safe_load((EXAMPLES / "jobs/production_tenant/csv_employee_to_iceberg_with_infrastructure_aws.yaml").read_text())
    terraform_block = seed["infrastructure"]["terraform"]
    for key in ("module_path", "module_version", "variables"):
        terraform_block.pop(key)
    seed["infrastructure"]["schedule"] = {"cron": "0 2 * * *", "timezone": "UTC"}
    seed.pop("asset_path")
    path = project.root / "jobs" / "seed_job.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(seed))
    return path


def test_scheduled_seed_style_ecs_job_gets_a_least_privilege_scheduler_role(project):
    ws = project.render_path(seed_style_job(project))
    main = ws.files["main.tf"]
    assert set(blocks(main, "resource", "aws_iam_role")) == {"scheduler"}
    st = statements(main)
    assert set(st) == {"ecs:RunTask", "iam:PassRole", "ecs:TagResource"}
    assert unquote(st["ecs:RunTask"]["resources"]) == ["${aws_ecs_task_definition.job.arn_without_revision}",
                                              "${aws_ecs_task_definition.job.arn_without_revision}:*"]
    assert st["ecs:RunTask"]["condition"][0]["values"] == ["${data.aws_ecs_cluster.job.arn}"]
    assert st["iam:PassRole"]["resources"] == ["${local.execution_role_arn}", "${local.task_role_arn}"]
    assert unquote(st["iam:PassRole"]["condition"][0]["values"]) == ["ecs-tasks.amazonaws.com"]
    assert unquote(st["ecs:TagResource"]["condition"][0]["values"]) == ["RunTask"]
    assert "${data.aws_partition.current.partition}" in st["ecs:TagResource"]["resources"][0]
    target = blocks(main, "resource", "aws_scheduler_schedule")["job"]["target"][0]
    assert target["role_arn"] == "${aws_iam_role.scheduler.arn}"
    assume = statements(main, "scheduler_assume")["sts:AssumeRole"]
    assert unquote(assume["principals"][0]["identifiers"]) == ["scheduler.amazonaws.com"]


@pytest.mark.parametrize("compute, kw, action, resources", [
    ("lambda", LAMBDA, "lambda:InvokeFunction", ["${aws_lambda_function.job.arn}", "${aws_lambda_function.job.arn}:*"]),
    ("ec2_instance", EC2, "ec2:StartInstances", ["${aws_instance.job.arn}"]),
])
def test_lambda_and_ec2_schedules_get_their_own_role(project, compute, kw, action, resources):
    main = project.render("job", infra(compute, **kw)).files["main.tf"]
    st = statements(main)
    assert set(st) == {action} and unquote(st[action]["resources"]) == resources


def test_a_named_scheduler_role_and_a_dead_letter_queue(project):
    refs = ECS["refs"] + "\nscheduler_role_arn: arn:aws:iam::123456789012:role/sched\n" \
                         "dead_letter_queue_arn: arn:aws:sqs:us-east-1:123456789012:dlq"
    main = project.render("job", infra("ecs_task", refs=refs)).files["main.tf"]
    assert "aws_iam_role" not in blocks(main, "resource", "aws_iam_role") and 'resource "aws_iam_role"' not in main
    target = blocks(main, "resource", "aws_scheduler_schedule")["job"]["target"][0]
    assert target["role_arn"] == '${var.resource_refs["scheduler_role_arn"]}'
    assert target["dead_letter_config"][0]["arn"] == '${var.resource_refs["dead_letter_queue_arn"]}'
    generated = project.render("job", infra("ecs_task", refs=ECS["refs"] + "\ndead_letter_queue_arn: "
                                            "arn:aws:sqs:us-east-1:123456789012:dlq")).files["main.tf"]
    assert statements(generated)["sqs:SendMessage"]["resources"] == ['${var.resource_refs["dead_letter_queue_arn"]}']


@pytest.mark.parametrize("compute, kw", [("ecs_task", ECS), ("lambda", LAMBDA), ("ec2_instance", EC2)])
def test_no_generated_arn_hard_codes_the_partition(project, compute, kw):
    top = f"secrets: {{A: '{SM_ARN}', B: '{SSM_ARN}'}}"
    files = project.render("job", infra(compute, top=top, **kw)).files
    text = files["main.tf"] + files["outputs.tf"]
    for given in (EXEC, SM_ARN, SSM_ARN):
        text = text.replace(given, "")
    assert "arn:aws" not in text


# --- item 8: secrets --------------------------------------------------------------------------------------


def test_ecs_secrets_are_value_from_with_an_execution_role_policy(project):
    top = f"secrets: {{PGPASSWORD: '{SM_ARN}', API_TOKEN: '{SSM_ARN}'}}"
    main = project.render("job", infra("ecs_task", top=top, **ECS)).files["main.tf"]
    assert "secrets     = [for name, arn in local.container_secrets : { name = name, valueFrom = arn }]" in main
    local = hcl2.loads(main)["locals"][0]["container_secrets"]
    assert unquote(local["PGPASSWORD"]) == SM_ARN and unquote(local["API_TOKEN"]) == SSM_ARN
    st = statements(main, "secrets")
    assert unquote(st["secretsmanager:GetSecretValue"]["resources"]) == [SM_ARN]
    assert unquote(st["ssm:GetParameters"]["resources"]) == [SSM_ARN]
    policy = blocks(main, "resource", "aws_iam_role_policy")["secrets"]
    assert policy["role"] == '${regex("[^/]+$", local.execution_role_arn)}'


def test_lambda_reads_its_secrets_at_start(project):
    main = project.render("fn", infra("lambda", top=f"secrets: {{PGPASSWORD: '{SSM_ARN}'}}", **LAMBDA)).files["main.tf"]
    assert "DATIVO_SECRETS = jsonencode(local.secrets)" in main
    assert unquote(statements(main, "secrets")["ssm:GetParameter"]["resources"]) == [SSM_ARN]
    assert blocks(main, "resource", "aws_iam_role_policy")["secrets"]["role"] == '${regex("[^/]+$", local.role_arn)}'


@pytest.mark.parametrize("ref", ["s3cr3t-value", "arn:aws:secretsmanager:us-east-1:123456789012:secret:pg:password::",
                                 "arn:aws:s3:::bucket/key", "projects/p/secrets/s/versions/latest"])
def test_a_secret_must_be_a_reference(project, ref):
    with pytest.raises(InputError) as info:
        project.render("job", infra("ecs_task", top=f"secrets: {{PGPASSWORD: '{ref}'}}", **ECS))
    assert info.value.key == "infrastructure.secrets.PGPASSWORD" and "never the value" in info.value.message


def test_a_secret_value_never_reaches_a_generated_file(project, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "hunter2-the-real-value")
    extra = "source:\n  connection: {password: '${PGPASSWORD}'}\n"
    for compute, kw in (("ecs_task", ECS), ("lambda", LAMBDA), ("ec2_instance", EC2)):
        ws = project.render(compute, infra(compute, top=f"secrets: {{PGPASSWORD: '{SM_ARN}'}}", **kw), extra)
        assert all("hunter2" not in text for text in ws.files.values())


@pytest.mark.parametrize("name", ["db_password", "apiKey", "github_token", "client_secret", "key", "ssh_keys",
                                  "aws_credentials", "PrivateKey"])
def test_secret_looking_terraform_variables_are_refused(project, name):
    text = infra("ecs_task", **ECS) + f"\n  variables: {{{name}: x}}"
    with pytest.raises(InputError) as info:
        project.render("job", text)
    errors = getattr(info.value, "errors", [info.value])
    assert any(e.key == f"infrastructure.terraform.variables.{name}" and "infrastructure.secrets" in e.message
               for e in errors)


@pytest.mark.parametrize("name", ["keyboard_layout", "monkey_count", "enable_xray_tracing", "log_retention_days"])
def test_ordinary_terraform_variables_pass(project, name):
    assert project.render("job", infra("ecs_task", **ECS) + f"\n  variables: {{{name}: 1}}") is not None


# --- item 9: the ECS timeout ------------------------------------------------------------------------------


def test_ecs_timeout_is_an_essential_sleep_container(project):
    main = project.render("job", infra("ecs_task", runtime="timeout_seconds: 5400", **ECS)).files["main.tf"]
    assert 'name       = "timeout"' in main and 'entryPoint = ["sleep", tostring(var.runtime_environment.timeout_seconds)]' in main
    timeout = main[main.index('name       = "timeout"'):]
    assert "essential  = true" in timeout[:200]
    assert "stopTimeout = 30" in main
    untimed = project.render("job", infra("ecs_task", **ECS)).files["main.tf"]
    assert '"timeout"' not in untimed


# --- item 10: KMS keys and EBS --------------------------------------------------------------------------


def test_kms_keys_from_settings(project):
    set_settings(project, """
        aws:
          image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/etl:1
          kms:
            logs: arn:aws:kms:us-east-1:123456789012:key/logs
            scheduler: arn:aws:kms:us-east-1:123456789012:key/sched
            disks: arn:aws:kms:us-east-1:123456789012:key/disks
    """)
    main = project.render("vm", infra("ec2_instance", **EC2)).files["main.tf"]
    assert unquote(blocks(main, "resource", "aws_cloudwatch_log_group")["job"]["kms_key_id"]).endswith("key/logs")
    assert unquote(blocks(main, "resource", "aws_scheduler_schedule")["job"]["kms_key_arn"]).endswith("key/sched")
    root = blocks(main, "resource", "aws_instance")["job"]["root_block_device"][0]
    assert unquote(root["kms_key_id"]).endswith("key/disks")
    assert unquote(statements(main)["kms:Decrypt"]["resources"]) == ["arn:aws:kms:us-east-1:123456789012:key/sched"]


# --- item 12: outputs to launch a run -------------------------------------------------------------------


def test_ecs_outputs_have_everything_for_run_task(project):
    outputs = project.render("job", infra("ecs_task", **ECS)).files["outputs.tf"]
    names = set(re.findall(r'^output "([a-z_]+)"', outputs, re.M))
    assert {"cluster_name", "cluster_arn", "task_definition_arn", "container_name", "subnets", "security_groups",
            "assign_public_ip", "network_configuration", "launch_type"} <= names


def test_module_mode_outputs_individual_values(project):
    shutil.copytree(EXAMPLES / "modules", project.root / "modules")
    text = ("cloud_provider: aws\nruntime_environment: {compute_type: ecs_task, " + NET + "}\n"
            "terraform:\n  module_path: modules/dativo-etl-job\n  resource_refs: {cluster_name: etl}")
    outputs = project.render("job", text).files["outputs.tf"]
    parsed = {k: v for entry in hcl2.loads(outputs)["output"] for k, v in entry.items()}
    assert parsed['"job_id"']["value"] == "${module.dativo_etl_job.job_id}"
    assert parsed['"cluster_name"']["value"] == '${var.resource_refs["cluster_name"]}'
    assert "sensitive" not in parsed['"job_id"'] and "sensitive" not in parsed['"subnets"']


# --- item 13: Terraform version, retention, resource_refs validation ------------------------------------


@pytest.mark.parametrize("constraint, expected", [(">= 1.10", ">= 1.11"), ("~> 1.12", "~> 1.12"),
                                                  (">= 1.9, < 2.0", ">= 1.9, < 2.0, >= 1.11"), (">= 1.11.2", ">= 1.11.2")])
def test_use_lockfile_needs_terraform_1_11(project, constraint, expected):
    settings = project.root / "dativo-tf.yaml"
    settings.write_text(settings.read_text() + f"terraform_version: '{constraint}'\n")
    versions = project.render("job", infra("ecs_task", **ECS)).files["versions.tf"]
    assert f'required_version = "{expected}"' in versions
    gcp = project.render("gjob", "cloud_provider: gcp\nruntime_environment: {compute_type: cloud_run, "
                                 "service_account: sa@p.iam.gserviceaccount.com}").files["versions.tf"]
    assert f'required_version = "{constraint}"' in gcp


@pytest.mark.parametrize("where", ["top", "environment"])
def test_log_retention_must_be_a_cloudwatch_value(project, where):
    settings = project.root / "dativo-tf.yaml"
    if where == "top":
        settings.write_text(settings.read_text().replace("  region: us-east-1\n", "  region: us-east-1\n  log_retention_days: 31\n"))
    else:
        settings.write_text(settings.read_text() + "environments:\n  prod:\n    aws: {log_retention_days: 31}\n")
    with pytest.raises(InputError) as info:
        project.render("job", infra("ecs_task", **ECS))
    errors = getattr(info.value, "errors", [info.value])
    key = "aws.log_retention_days" if where == "top" else "environments.prod.aws.log_retention_days"
    assert any(e.key == key and "allowed: 0, 1, 3, 5" in e.message and "3653" in e.message for e in errors)


def test_a_malformed_resource_ref_is_an_error_at_generation(project):
    with pytest.raises(InputError) as info:
        project.render("job", infra("ecs_task", refs="execution_role_arn: exec-role\ncluster_name: etl"))
    assert info.value.key == "infrastructure.terraform.resource_refs.execution_role_arn"
    assert "not an IAM role ARN" in info.value.message


@pytest.mark.parametrize("tfvars_edit, message", [
    (('"arn:aws:iam::123456789012:role/exec"', '"exec-role"'), "resource_refs.execution_role_arn must be an IAM role ARN"),
    (('execution_role_arn = "arn:aws:iam::123456789012:role/exec"', 'other = "x"'), "resource_refs.execution_role_arn is required"),
])
def test_variables_validate_resource_refs_at_plan(project, tmp_path, tfvars_edit, message):
    ws = project.render("job", infra("ecs_task", **ECS))
    err = plan_errors_with_tfvars_edit(ws.files, tmp_path / "ws", *tfvars_edit)
    assert message in err, err


def test_lambda_on_a_non_ecr_image_names_the_top_level_setting(project):
    set_settings(project, """
        image: ghcr.io/dativo-io/dativo-ingest:1
        aws:
          region: us-east-1
    """)
    with pytest.raises(InputError) as info:
        project.render("fn", infra("lambda", **LAMBDA))
    assert (info.value.key, info.value.line) == ("image", 2)
    assert "not an ECR image" in info.value.message and "aws.lambda_image" in info.value.message


@pytest.mark.parametrize("compute, runtime, refs, key", [
    ("lambda", "", f"execution_role_arn: {EXEC}", "execution_role_arn"),
    ("ec2_instance", "", "instance_profile_name: etl-profile", "instance_profile_name"),
])
def test_the_identity_ref_is_required_in_variables_when_no_service_account_names_it(project, compute, runtime, refs, key):
    variables = project.render("job", infra(compute, refs=refs)).files["variables.tf"]
    assert f'contains(keys(var.resource_refs), "{key}")' in variables
    named = project.render("job", infra(compute, runtime="service_account: some-name")).files["variables.tf"]
    assert f'contains(keys(var.resource_refs), "{key}")' not in named
