"""checkov (offline, --skip-download) finds no failed check in any golden workspace nor in AWS variants the
examples do not show (generated roles, secrets, KMS keys). Every inline skip in the templates is listed with its
reason in the README. checkov lives in its own virtualenv (`make checkov`): its pins clash with dagster's."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT

CHECKOV = Path(os.environ.get("DATIVO_TF_CHECKOV", ROOT / ".venv-checkov" / "bin" / "checkov"))
GOLDEN = EXAMPLES / "workspaces"
_SKIP = re.compile(r"#checkov:skip=([A-Z0-9_]+):(.+)")


@pytest.fixture(scope="module")
def checkov() -> Path:
    if not CHECKOV.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"checkov is missing at {CHECKOV}: CI must run it (make checkov builds .venv-checkov)")
        pytest.skip(f"checkov is not installed at {CHECKOV}; run `make checkov`")
    return CHECKOV


def scan(checkov: Path, folder: Path) -> dict:
    proc = subprocess.run(
        [str(checkov), "-d", str(folder), "--framework", "terraform", "--skip-download", "--quiet", "--compact",
         "-o", "json"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "LOG_LEVEL": "ERROR"},
    )
    assert proc.stdout.strip(), proc.stderr
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    (report,) = [r for r in reports if r.get("check_type") == "terraform"]
    return report


def failures(report: dict) -> list[str]:
    return [f"{f['check_id']} {f['file_path']} {f['resource']}: {f['check_name']}"
            for f in report["results"]["failed_checks"]]


def test_golden_workspaces_have_no_failed_checks(checkov):
    report = scan(checkov, GOLDEN)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] >= 20
    assert failures(report) == []


AWS_VARIANTS = {
    "ecs_all": """
        cloud_provider: aws
        schedule: "0 4 * * *"
        runtime_environment:
          compute_type: ecs_task
          timeout_seconds: 3600
          network: {subnet_ids: [subnet-0a1b2c3d4e5f60718], security_group_ids: [sg-1]}
        secrets: {PGPASSWORD: 'arn:aws:ssm:us-east-1:123456789012:parameter/pg'}
        terraform:
          resource_refs:
            execution_role_arn: arn:aws:iam::123456789012:role/exec
            task_role_arn: arn:aws:iam::123456789012:role/task
            cluster_name: etl
            dead_letter_queue_arn: arn:aws:sqs:us-east-1:123456789012:dlq
    """,
    "lambda_no_network": """
        cloud_provider: aws
        schedule: "0 4 * * *"
        runtime_environment: {compute_type: lambda, service_account: fn-role}
        secrets: {API_TOKEN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:tok-AbCdEf'}
    """,
    "ec2_arm": """
        cloud_provider: aws
        schedule: "0 4 * * *"
        runtime_environment:
          compute_type: ec2_instance
          instance_type: m7g.large
          service_account: etl-profile
          network: {subnet_ids: [subnet-0a1b2c3d4e5f60718], security_group_ids: [sg-1]}
        secrets: {API_TOKEN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:tok-AbCdEf'}
    """,
}
KMS = """
    lambda_image: 123456789012.dkr.ecr.{region}.amazonaws.com/etl-lambda:1
    log_retention_days: 365
    kms:
      logs: arn:aws:kms:us-east-1:123456789012:key/logs
      scheduler: arn:aws:kms:us-east-1:123456789012:key/scheduler
      disks: arn:aws:kms:us-east-1:123456789012:key/disks
"""


@pytest.mark.parametrize("kms", [False, True], ids=["defaults", "kms-keys"])
def test_aws_variants_have_no_failed_checks(checkov, project, tmp_path, kms):
    import textwrap

    if kms:
        settings = project.root / "dativo-tf.yaml"
        text = settings.read_text()
        settings.write_text(text.replace("  region: us-east-1\n", "  region: us-east-1\n" + textwrap.indent(
            textwrap.dedent(KMS).strip("\n"), "  ") + "\n", 1))
    out = tmp_path / "variants"
    for name, infra in AWS_VARIANTS.items():
        ws = project.render(name, textwrap.dedent(infra))
        for file, text in ws.files.items():
            (out / name / file).parent.mkdir(parents=True, exist_ok=True)
            (out / name / file).write_text(text)
        if kms:
            assert "arn:aws:kms:us-east-1:123456789012:key/" in ws.files["main.tf"]
            assert "#checkov:skip=CKV_AWS_158" not in ws.files["main.tf"]
    report = scan(checkov, out)
    assert report["summary"]["parsing_errors"] == 0
    assert failures(report) == []


def test_every_skip_in_the_templates_is_explained_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Checkov skips"):]
    section = section[: section.find("\n## ", 1) if "\n## " in section[1:] else len(section)]
    skips = {m.group(1) for path in (ROOT / "templates").rglob("*.j2") for m in _SKIP.finditer(path.read_text())}
    assert skips, "no inline skips found"
    missing = sorted(s for s in skips if f"`{s}`" not in section)
    assert missing == [], f"README 'Checkov skips' does not list {missing}"
