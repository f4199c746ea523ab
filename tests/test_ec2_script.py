"""The EC2 start-up script, as Terraform renders it, run under bash with stub dnf/docker/aws/systemctl/
shutdown/timeout binaries: it logs in to ECR, fetches the secrets, runs the container with the awslogs driver
and the timeout, retries per retry_config, and stops the instance on every exit. Job values cannot change it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from dativo_ingest.errors import InputError
from tests.tfcheck import terraform

SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pg-AbCdEf"
PARAM_ARN = "arn:aws:ssm:us-east-1:123456789012:parameter/etl/api-token"
HOSTILE = "$(touch pwned) `touch pwned2` ' \" ; exit 0 $HOME JOB"


def ec2(extra_runtime: str = "", schedule: bool = False, secrets: bool = True) -> str:
    lines = ["cloud_provider: aws"]
    if schedule:
        lines.append('schedule: "0 2 * * *"')
    lines.append("runtime_environment:\n  compute_type: ec2_instance\n  instance_type: m7g.large\n"
                 "  service_account: etl-profile\n  timeout_seconds: 600\n"
                 "  network: {subnet_ids: [subnet-0a1b2c3d4e5f60718], security_group_ids: [sg-1]}" + extra_runtime)
    if secrets:
        lines.append(f"secrets: {{PGPASSWORD: '{SECRET_ARN}', API_TOKEN: '{PARAM_ARN}'}}")
    return "\n".join(lines)


def startup_locals(main_tf: str) -> str:
    """The literal-only `locals` block that builds the start-up script."""
    start = main_tf.index("# Start-up script")
    block = main_tf.index("locals {", start)
    end = main_tf.index("\n}\n", block)
    return main_tf[block:end + 3]


def evaluate(main_tf: str, tmp_path: Path) -> dict[str, str]:
    """Terraform itself evaluates the script locals (no provider needed): {user_data, job_script}."""
    work = tmp_path / "tf"
    work.mkdir()
    (work / "main.tf").write_text(startup_locals(main_tf) + textwrap.dedent("""
        output "user_data" {
          value = local.user_data
        }

        output "job_script" {
          value = local.job_script
        }
    """))
    rc, out, err = terraform(["init", "-input=false", "-no-color"], work)
    assert rc == 0, err
    rc, out, err = terraform(["apply", "-auto-approve", "-input=false", "-no-color", "-lock=false"], work)
    assert rc == 0, err
    rc, out, err = terraform(["output", "-json", "-no-color"], work)
    assert rc == 0, err
    return {name: value["value"] for name, value in json.loads(out).items()}


STUB = """#!/usr/bin/env python3
import json, os, sys
name = os.path.basename(sys.argv[0])
record = {"cmd": name, "args": sys.argv[1:]}
if name == "docker" and sys.argv[1:2] == ["run"]:
    record["env"] = {k: os.environ.get(k) for k in ("PGPASSWORD", "API_TOKEN")}
if name == "docker" and sys.argv[1:2] == ["login"]:
    record["stdin"] = sys.stdin.read()
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps(record) + "\\n")
fail = os.environ.get("STUB_FAIL", "")
if name == "aws":
    if sys.argv[1] in fail.split(","):
        sys.exit(3)
    print({"ecr": "ecr-token", "secretsmanager": "pg value", "ssm": "token value"}[sys.argv[1]])
if name == "docker" and sys.argv[1:2] == ["run"]:
    counter = os.environ["STUB_LOG"] + ".runs"
    runs = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
    open(counter, "w").write(str(runs))
    sys.exit(1 if runs <= int(os.environ.get("STUB_DOCKER_FAILURES", "0")) else 0)
if name == "timeout":
    args = sys.argv[1:]
    while args[0].startswith("--"):
        args.pop(0)
    os.execvp(args[1], args[1:])  # args[0] is the duration
"""


def run_user_data(user_data: str, tmp_path: Path, *, docker_installed: bool = True, **env: str) -> tuple[int, list[dict]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("aws", "dnf", "systemctl", "shutdown", "timeout") + (("docker",) if docker_installed else ()):
        (bin_dir / name).write_text(STUB)
        (bin_dir / name).chmod(0o755)
    boot = tmp_path / "per-boot"
    script = user_data.replace("/var/lib/cloud/scripts/per-boot", str(boot))
    log = tmp_path / "calls.jsonl"
    real = ":".join(p for p in ("/usr/bin", "/bin") if Path(p).is_dir())
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PATH": f"{bin_dir}:{real}", "STUB_LOG": str(log), "HOME": str(tmp_path), **env})
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc.returncode, calls


def rendered(project, tmp_path, infra: str, extra: str = "") -> tuple[str, dict[str, str]]:
    ws = project.render("hr_job", infra, extra)
    return ws.files["main.tf"], evaluate(ws.files["main.tf"], tmp_path)


def test_runs_the_container_with_ecr_login_secrets_logs_and_timeout_then_stops(project, tmp_path):
    main, out = rendered(project, tmp_path, ec2())
    code, calls = run_user_data(out["user_data"], tmp_path)
    assert code == 0
    cmds = [c["cmd"] for c in calls]
    assert cmds[-1] == "shutdown" and cmds.count("docker") >= 3  # login, rm, run
    login = next(c for c in calls if c["cmd"] == "docker" and c["args"][0] == "login")
    assert login["args"] == ["login", "--username", "AWS", "--password-stdin", "123456789012.dkr.ecr.us-east-1.amazonaws.com"]
    assert login["stdin"].strip() == "ecr-token"
    fetches = [c["args"] for c in calls if c["cmd"] == "aws" and c["args"][0] != "ecr"]
    assert ["secretsmanager", "get-secret-value", "--region", "eu-west-1", "--secret-id", SECRET_ARN] == fetches[1][:6] \
        or ["secretsmanager", "get-secret-value", "--region", "eu-west-1", "--secret-id", SECRET_ARN] == fetches[0][:6]
    timeout = next(c for c in calls if c["cmd"] == "timeout")
    assert "600" in timeout["args"]
    run = next(c for c in calls if c["cmd"] == "docker" and c["args"][0] == "run")
    args = run["args"]
    assert args[args.index("--log-driver") + 1] == "awslogs"
    assert "awslogs-group=/dativo/acme/prod/hr_job" in args and "awslogs-region=us-east-1" in args
    assert args[-6:] == ["123456789012.dkr.ecr.us-east-1.amazonaws.com/dativo-ingest:1.0", "run", "--config",
                         "jobs/hr_job.yaml", "--mode", "self_hosted"]
    # secrets reach the container by name from the environment, never on the command line
    assert ["-e", "PGPASSWORD"] == args[args.index("PGPASSWORD") - 1: args.index("PGPASSWORD") + 1]
    assert run["env"] == {"PGPASSWORD": "pg value", "API_TOKEN": "token value"}
    assert "pg value" not in json.dumps([c["args"] for c in calls])
    assert "DATIVO_JOB_PATH=jobs/hr_job.yaml" in args
    # no generated file holds a secret's value or sets up anything but the ARN
    assert "pg value" not in main and SECRET_ARN in main


@pytest.mark.parametrize("fail", ["ecr", "secretsmanager", "ssm"])
def test_a_failed_step_still_stops_the_instance(project, tmp_path, fail):
    _, out = rendered(project, tmp_path, ec2())
    code, calls = run_user_data(out["user_data"], tmp_path, STUB_FAIL=fail)
    assert code != 0
    assert calls[-1]["cmd"] == "shutdown"
    assert not any(c["cmd"] == "docker" and c["args"][0] == "run" for c in calls)


def test_installs_docker_when_missing_and_stops_when_the_install_fails(project, tmp_path):
    _, out = rendered(project, tmp_path, ec2(secrets=False))
    code, calls = run_user_data(out["user_data"], tmp_path, docker_installed=False, STUB_FAIL="")
    # dnf (a stub) "installs" nothing, so docker is still missing: the script fails, and the instance stops
    assert calls[0] == {"cmd": "dnf", "args": ["install", "-y", "docker"]}
    assert code != 0 and calls[-1]["cmd"] == "shutdown"


@pytest.mark.parametrize("attempts, failures, runs, ok", [(None, 1, 1, False), (3, 2, 3, True), (3, 5, 3, False)])
def test_retries_follow_retry_config(project, tmp_path, attempts, failures, runs, ok):
    extra = f"retry_config: {{max_attempts: {attempts}}}\n" if attempts else ""
    _, out = rendered(project, tmp_path, ec2(secrets=False), extra)
    code, calls = run_user_data(out["user_data"], tmp_path, STUB_DOCKER_FAILURES=str(failures))
    assert sum(1 for c in calls if c["cmd"] == "docker" and c["args"][0] == "run") == runs
    assert (code == 0) == ok
    assert calls[-1]["cmd"] == "shutdown"


def test_a_scheduled_instance_only_prepares_on_its_first_boot(project, tmp_path):
    main, out = rendered(project, tmp_path, ec2(schedule=True, secrets=False))
    code, calls = run_user_data(out["user_data"], tmp_path)
    assert code == 0
    assert [c["cmd"] for c in calls] == ["dnf", "shutdown"]
    # the per-boot script is in place for the scheduled starts
    assert (tmp_path / "per-boot" / "dativo-job.sh").read_text() == out["job_script"]


def test_hostile_values_pass_through_literally(project, tmp_path):
    settings = project.root / "dativo-tf.yaml"
    settings.write_text(settings.read_text() + f"command: [run, {json.dumps(HOSTILE)}, '{{job_path}}']\n")
    main, out = rendered(project, tmp_path, ec2(secrets=False))
    assert HOSTILE not in out["user_data"]  # only base64 of it
    code, calls = run_user_data(out["user_data"], tmp_path)
    assert code == 0
    run = next(c for c in calls if c["cmd"] == "docker" and c["args"][0] == "run")
    assert run["args"][-3:] == ["run", HOSTILE, "jobs/hr_job.yaml"]
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_control_characters_are_refused(project):
    settings = project.root / "dativo-tf.yaml"
    settings.write_text(settings.read_text() + 'command: [run, "a\\nb"]\n')
    with pytest.raises(InputError, match="control character"):
        project.render("hr_job", ec2())


def test_the_script_is_bash_syntax_clean(project, tmp_path):
    _, out = rendered(project, tmp_path, ec2())
    for name, text in out.items():
        proc = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
        assert proc.returncode == 0, (name, proc.stderr)
    assert re.search(r"^trap 'shutdown -h now' EXIT$", out["job_script"], re.M)


# --- property: any job path is refused, or reaches the shell byte for byte ------------------------------

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st  # noqa: E402

# Folder names a job can live in: shell metacharacters, quotes, spaces, unicode, and control characters.
_FOLDER = st.text(alphabet=st.sampled_from(list("ab $`'\"\\;|&(){}[]<>*?!#~%=,:é中\x00\n\r\t\x1b\x7f\u0085\u2028")),
                  min_size=1, max_size=12)


@hsettings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(folders=st.lists(_FOLDER, min_size=12, max_size=12, unique=True))
def test_any_job_path_is_refused_or_reaches_the_shell_byte_for_byte(project, tmp_path_factory, folders):
    from dativo_ingest.config import JobConfig
    from dativo_ingest.project import ProjectSettings
    from dativo_ingest.render import render_job
    from tests.conftest import job_yaml

    work = tmp_path_factory.mktemp("prop")
    accepted: list[tuple[str, str]] = []  # (job path, main.tf)
    for i, folder in enumerate(folders):
        if "/" in folder or "\x00" in folder or folder in (".", ".."):
            continue  # no file system can hold such a folder name
        path = project.root / "jobs" / folder / f"job{i}.yaml"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (OSError, ValueError):
            continue
        path.write_text(job_yaml(ec2(secrets=False)))
        try:
            ws = render_job(JobConfig.from_yaml(path), ProjectSettings.load(project.root / "dativo-tf.yaml"))
        except InputError as exc:  # refused: it must be because of a control character, and say so
            assert "control character" in str(exc), str(exc)
            assert any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f or c in "\u2028\u2029" for c in folder), folder
            continue
        accepted.append((f"jobs/{folder}/job{i}.yaml", ws.files["main.tf"]))
    if not accepted:
        return
    # one Terraform run evaluates every accepted job's script (a module each)
    root = work / "tf"
    for i, (_, main_tf) in enumerate(accepted):
        module = root / f"m{i}"
        module.mkdir(parents=True)
        (module / "main.tf").write_text(startup_locals(main_tf) + '\noutput "user_data" {\n  value = local.user_data\n}\n')
    (root / "main.tf").write_text("".join(
        f'module "m{i}" {{\n  source = "./m{i}"\n}}\n\noutput "m{i}" {{\n  value = module.m{i}.user_data\n}}\n\n'
        for i in range(len(accepted))))
    for args in (["init", "-input=false", "-no-color"], ["apply", "-auto-approve", "-input=false", "-no-color", "-lock=false"]):
        rc, _, err = terraform(args, root)
        assert rc == 0, err
    rc, out, err = terraform(["output", "-json", "-no-color"], root)
    assert rc == 0, err
    values = json.loads(out)
    for i, (job_path, _) in enumerate(accepted):
        run_dir = work / f"run{i}"
        run_dir.mkdir()
        code, calls = run_user_data(values[f"m{i}"]["value"], run_dir)
        assert code == 0, job_path
        docker = next(c for c in calls if c["cmd"] == "docker" and c["args"][0] == "run")["args"]
        assert f"DATIVO_JOB_PATH={job_path}" in docker  # byte for byte, as one argument
        assert docker[-4:-2] == ["--config", job_path]
        assert sorted(p.name for p in run_dir.iterdir()) == sorted(["bin", "calls.jsonl", "calls.jsonl.runs"]
                                                                  + (["per-boot"] if (run_dir / "per-boot").exists() else []))
