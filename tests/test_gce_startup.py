"""The GCE start-up script, taken from a rendered main.tf and run under bash against stub binaries (curl as
the metadata server and Secret Manager, docker, docker-credential-gcr, shutdown), with hostile job paths."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest

from dativo_ingest.errors import InputError
from tests.test_gcp import SA, hcl_string

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

STUBS = {
    # curl [-flags] [-H header]... URL: the metadata server (attributes from $META/<key>, a token) and
    # Secret Manager (a payload naming the secret, so the test sees which one was read)
    "curl": r"""
        url=${@: -1}
        echo "$*" >> "$LOG/curl"
        case $url in
          http://metadata.google.internal/computeMetadata/v1/instance/attributes/*)
            key=${url##*/}; [[ -f $META/$key ]] || exit 22; cat "$META/$key" ;;
          http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token)
            printf '{"access_token":"tok-123","expires_in":3599,"token_type":"Bearer"}' ;;
          https://secretmanager.googleapis.com/v1/*:access)
            [[ " $* " == *" Authorization: Bearer tok-123 "* ]] || exit 22
            ref=${url#https://secretmanager.googleapis.com/v1/}; ref=${ref%:access}
            data=$(printf 'value of %s' "$ref" | base64 -w0)
            printf '{\n  "name": "%s",\n  "payload": {\n    "data": "%s",\n    "dataCrc32c": "1"\n  }\n}\n' "$ref" "$data" ;;
          *) exit 22 ;;
        esac
    """,
    # docker run ...: records its arguments (NUL-separated) and the values of the -e NAME variables
    "docker": r"""
        [[ $1 == run ]] || exit 0
        n=$(( $(cat "$LOG/runs" 2>/dev/null || echo 0) + 1 )); echo $n > "$LOG/runs"
        printf '%s\0' "$@" > "$LOG/docker.$n"
        prev=""
        for arg in "$@"; do
          if [[ $prev == -e ]]; then printf '%s=%s\0' "$arg" "${!arg}" >> "$LOG/env.$n"; fi
          prev=$arg
        done
        [[ -n ${DOCKER_SLEEP:-} ]] && sleep "$DOCKER_SLEEP"
        exit "${DOCKER_RC:-0}"
    """,
    "docker-credential-gcr": r"""echo "$*" >> "$LOG/credential" """,
    "shutdown": r"""echo "$*" >> "$LOG/shutdown" """,
}


def metadata_and_script(main_tf: str) -> tuple[dict[str, str], str]:
    """The instance metadata (dativo-* keys) and the start-up script of a rendered GCE main.tf."""
    meta = {m.group(1): hcl_string(m.group(2)) for m in re.finditer(r'^    "(dativo-[a-z-]+)" += (".*")$', main_tf, re.M)}
    body = main_tf.split('"startup-script" = join("\\n", [\n', 1)[1].split("\n    ])", 1)[0]
    lines = [hcl_string(line.strip().rstrip(",")) for line in body.splitlines()]
    return meta, "\n".join(lines) + "\n"


class Vm:
    """A fake VM: a stub bin folder, a metadata folder, and a log of what the stubs saw."""

    def __init__(self, root: Path, main_tf: str):
        self.root = root
        self.meta, self.script = metadata_and_script(main_tf)
        for name in ("bin", "meta", "log"):
            (root / name).mkdir(parents=True)
        for name, body in STUBS.items():
            path = root / "bin" / name
            path.write_text("#!/bin/bash\n" + textwrap.dedent(body))
            path.chmod(path.stat().st_mode | stat.S_IEXEC)
        for key, value in self.meta.items():
            (root / "meta" / key).write_text(value)
        (root / "startup.sh").write_text(self.script)

    def boot(self, **env: str) -> subprocess.CompletedProcess:
        environ = {"PATH": f"{self.root / 'bin'}:{os.environ['PATH']}", "META": str(self.root / "meta"),
                   "LOG": str(self.root / "log"), "DATIVO_TF_STATE": str(self.root / "disk/var/lib/dativo-tf"), **env}
        return subprocess.run(["bash", str(self.root / "startup.sh")], cwd=self.root, env=environ,
                              capture_output=True, text=True, timeout=120)

    def log(self, name: str) -> str | None:
        path = self.root / "log" / name
        return path.read_text() if path.exists() else None

    def runs(self) -> list[list[str]]:
        count = int(self.log("runs") or 0)
        return [self.log(f"docker.{n}").split("\0")[:-1] for n in range(1, count + 1)]

    def env(self, run: int = 1) -> dict[str, str]:
        return dict(item.split("=", 1) for item in (self.log(f"env.{run}") or "").split("\0")[:-1])


HOSTILE_FOLDER = "$(touch PWNED); `touch PWNED2` 'q' \"d\" * ${HOME} %{x} \\ é"


def render(project, folder: str = "acme", infra_extra: str = "", job_extra: str = "", schedule: bool = False):
    from dativo_ingest.config import JobConfig
    from dativo_ingest.project import ProjectSettings
    from dativo_ingest.render import render_job
    from tests.conftest import job_yaml

    infra_extra += 'schedule: "0 3 * * *"\n' if schedule else ""
    infra = (f"cloud_provider: gcp\n{infra_extra}runtime_environment:\n  compute_type: gce_instance\n"
             f"  service_account: {SA}\n  timeout_seconds: 600\n  network: {{subnet_ids: [s]}}\n")
    path = project.root / "jobs" / folder / "etl.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(job_yaml(infra, job_extra))
    return render_job(JobConfig.from_yaml(path), ProjectSettings.load(project.root / "dativo-tf.yaml"))


def test_hostile_job_path_reaches_the_container_verbatim_and_runs_nothing(project, tmp_path):
    ws = render(project, HOSTILE_FOLDER)
    vm = Vm(tmp_path / "vm", ws.files["main.tf"])
    assert not any("PWNED" in value for value in vm.meta.values()) and "PWNED" not in vm.script  # base64 only
    result = vm.boot()
    assert result.returncode == 0, result.stderr
    job_path = f"jobs/{HOSTILE_FOLDER}/etl.yaml"
    (run,) = vm.runs()
    assert run[-6:] == ["ghcr.io/dativo-io/dativo-ingest:latest", "run", "--config", job_path, "--mode", "self_hosted"]
    assert vm.env()["DATIVO_JOB_PATH"] == job_path
    assert not any(arg.startswith("DATIVO_") and "=" in arg for arg in run)  # variables go by name: -e NAME
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))
    assert vm.log("shutdown") == "-h now\n"


def test_a_control_character_in_a_value_is_refused(project):
    with pytest.raises(InputError, match="control character"):
        render(project, "bad\nfolder")


def test_failed_attempts_are_retried_then_the_vm_powers_off(project, tmp_path):
    ws = render(project, job_extra="retry_config: {max_attempts: 3}\n")
    vm = Vm(tmp_path / "vm", ws.files["main.tf"])
    result = vm.boot(DOCKER_RC="1")
    assert result.returncode == 1 and "failed after 3 attempt(s)" in result.stderr
    assert len(vm.runs()) == 3
    assert vm.log("shutdown") == "-h now\n"


def test_a_successful_run_is_not_repeated(project, tmp_path):
    ws = render(project, job_extra="retry_config: {max_attempts: 3}\n")
    vm = Vm(tmp_path / "vm", ws.files["main.tf"])
    assert vm.boot().returncode == 0
    (run,) = vm.runs()
    assert "--log-driver=gcplogs" in run and "--rm" in run
    assert vm.log("shutdown") == "-h now\n"


def test_an_attempt_is_stopped_at_the_timeout(project, tmp_path):
    ws = render(project)
    vm = Vm(tmp_path / "vm", ws.files["main.tf"])
    (vm.root / "meta" / "dativo-timeout-seconds").write_text("1")
    result = vm.boot(DOCKER_SLEEP="100")
    assert result.returncode == 1 and "failed after 1 attempt(s)" in result.stderr
    assert vm.log("shutdown") == "-h now\n"


def test_unreadable_metadata_still_powers_off(project, tmp_path):
    ws = render(project)
    vm = Vm(tmp_path / "vm", ws.files["main.tf"])
    (vm.root / "meta" / "dativo-image").unlink()
    result = vm.boot()
    assert result.returncode == 1 and "cannot read dativo-image" in result.stderr
    assert vm.runs() == [] and vm.log("shutdown") == "-h now\n"


def test_secrets_are_read_at_start_and_passed_by_name(project, tmp_path):
    ws = render(project, infra_extra="secrets: {PGPASSWORD: 'pg-password:3', API_TOKEN: projects/shared/secrets/api}\n")
    vm = Vm(tmp_path / "vm", ws.files["main.tf"])
    assert vm.boot().returncode == 0
    (run,) = vm.runs()
    env = vm.env()
    assert env["PGPASSWORD"] == "value of projects/proj-123/secrets/pg-password/versions/3"
    assert env["API_TOKEN"] == "value of projects/shared/secrets/api/versions/latest"
    assert "PGPASSWORD" in run and not any("value of" in arg for arg in run)
    assert "value of" not in "".join(ws.files.values())


def test_private_registry_login_uses_the_vm_account(project, tmp_path):
    settings = project.root / "dativo-tf.yaml"
    settings.write_text(settings.read_text().replace("gcp:\n", "gcp:\n  image: europe-docker.pkg.dev/p/etl/ingest:1\n", 1))
    ws = render(project)
    vm = Vm(tmp_path / "vm", ws.files["main.tf"])
    assert vm.boot().returncode == 0
    assert vm.log("credential") == "configure-docker --registries=europe-docker.pkg.dev\n"
    assert vm.runs()[0][-6] == "europe-docker.pkg.dev/p/etl/ingest:1"


def test_the_script_is_the_same_for_every_job(project, tmp_path):
    one = metadata_and_script(render(project, "a").files["main.tf"])[1]
    two = metadata_and_script(render(project, HOSTILE_FOLDER, job_extra="retry_config: {max_attempts: 2}\n").files["main.tf"])[1]
    assert one == two
    assert base64.b64encode(b"jobs/a/etl.yaml").decode() in render(project, "a").files["main.tf"]


def test_a_scheduled_vm_does_not_run_the_job_when_apply_creates_it(project, tmp_path):
    ws = render(project, schedule=True)
    vm = Vm(tmp_path / "vm", ws.files["main.tf"])
    first = vm.boot()
    assert first.returncode == 0 and "first boot of a scheduled job's VM" in first.stdout
    assert vm.runs() == [] and vm.log("shutdown") == "-h now\n"
    assert vm.boot().returncode == 0  # the instance schedule's start
    assert len(vm.runs()) == 1 and vm.log("shutdown") == "-h now\n-h now\n"


def test_an_unscheduled_vm_runs_the_job_at_its_first_boot(project, tmp_path):
    vm = Vm(tmp_path / "vm", render(project).files["main.tf"])
    assert "dativo-scheduled" not in vm.meta
    assert vm.boot().returncode == 0 and len(vm.runs()) == 1


def test_hostile_image_and_command_settings_reach_docker_verbatim(project, tmp_path):
    settings = project.root / "dativo-tf.yaml"
    hostile = "$(touch PWNED3);`touch PWNED4` 'a b' \"c\" $IFS %x * \\ é"
    as_setting = hostile.replace("{", "{{").replace("}", "}}")  # command arguments are format strings
    settings.write_text(settings.read_text() + "image: 'ghcr.io/x/y:1 $(touch PWNED5)'\n"
                        + "command: [run, --config, '{job_path}', --note, " + json.dumps(as_setting) + "]\n")
    vm = Vm(tmp_path / "vm", render(project).files["main.tf"])
    result = vm.boot()
    assert result.returncode == 0, result.stderr
    (run,) = vm.runs()
    assert run[-6:] == ["ghcr.io/x/y:1 $(touch PWNED5)", "run", "--config", "jobs/acme/etl.yaml", "--note",
                        hostile]
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))
