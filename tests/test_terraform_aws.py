"""Real Terraform with the real AWS provider: every AWS resource-mode workspace (goldens and the variants the
examples do not show) passes `terraform validate`, and `terraform test` applies it against a mocked provider
(`mock_provider "aws"`) and checks the outputs an orchestrator uses.

The provider comes from a local plugin mirror (DATIVO_TF_PLUGIN_DIR, default /opt/tf-plugins; nothing is
downloaded). The mirror may hold another major version than the workspaces ask for, so the copy under test
accepts any provider version >= 5.0; the arguments the templates write exist in both."""

from __future__ import annotations

import os
import re
import shutil
import textwrap
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.tfcheck import terraform
from tests.test_checkov import AWS_VARIANTS

PLUGIN_DIR = Path(os.environ.get("DATIVO_TF_PLUGIN_DIR", "/opt/tf-plugins"))
HAS_AWS = (PLUGIN_DIR / "registry.terraform.io" / "hashicorp" / "aws").is_dir()
pytestmark = pytest.mark.skipif(not HAS_AWS, reason=f"no hashicorp/aws provider in the plugin mirror {PLUGIN_DIR}")

GOLDEN = EXAMPLES / "workspaces"
AWS_GOLDEN = sorted(p.parent for p in GOLDEN.rglob("main.tf")
                    if '"aws"' in (p.parent / "providers.tf").read_text() and "module " not in p.read_text())

MOCKS = """
mock_provider "aws" {
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\\"Version\\":\\"2012-10-17\\",\\"Statement\\":[]}"
    }
  }
  mock_data "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/mock"
    }
  }
  mock_data "aws_ecs_cluster" {
    defaults = {
      arn = "arn:aws:ecs:us-east-1:123456789012:cluster/mock"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/scheduler"
    }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn = "arn:aws:lambda:us-east-1:123456789012:function:mock"
    }
  }
  mock_resource "aws_instance" {
    defaults = {
      arn = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"
    }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn                  = "arn:aws:ecs:us-east-1:123456789012:task-definition/mock:1"
      arn_without_revision = "arn:aws:ecs:us-east-1:123456789012:task-definition/mock"
    }
  }
}

run "apply" {
  command = apply
%s}
"""

ASSERTS = {
    "aws_ecs_task_definition": """
  assert {
    condition     = output.container_name == "dativo-ingest" && output.assign_public_ip == "DISABLED"
    error_message = "RunTask outputs"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.job.container_definitions)[0].name == "dativo-ingest"
    error_message = "the job's container comes first"
  }
""",
    "aws_lambda_function": """
  assert {
    condition     = aws_lambda_function.job.reserved_concurrent_executions == 1
    error_message = "one run at a time"
  }
""",
    "aws_instance": """
  assert {
    condition     = startswith(aws_instance.job.user_data, "#!/bin/bash")
    error_message = "the start-up script"
  }
""",
}


def prepare(source: dict[str, str], work: Path) -> Path:
    work.mkdir(parents=True)
    for name, text in source.items():
        if name == "backend.tf":
            continue  # no state bucket in a test
        if name == "versions.tf":
            text = re.sub(r'(\n\s+version\s+)= "[^"]*"', r'\1= ">= 5.0"', text)
        (work / name).write_text(text)
    main = source["main.tf"]
    asserts = "".join(text for marker, text in ASSERTS.items() if f'resource "{marker}"' in main)
    (work / "main.tftest.hcl").write_text(textwrap.dedent(MOCKS) % asserts)
    return work


def check(work: Path) -> None:
    rc, out, err = terraform(["init", "-backend=false", "-input=false", "-no-color", f"-plugin-dir={PLUGIN_DIR}"], work)
    assert rc == 0, err
    rc, out, err = terraform(["validate", "-no-color"], work)
    assert rc == 0, f"terraform validate failed in {work}:\n{out}\n{err}"
    rc, out, err = terraform(["test", "-no-color"], work)
    assert rc == 0 and "1 passed, 0 failed" in out, f"terraform test failed in {work}:\n{out}\n{err}"


@pytest.mark.parametrize("workspace", AWS_GOLDEN, ids=lambda p: p.relative_to(GOLDEN).as_posix())
def test_golden_aws_workspace_validates_and_applies_against_mocks(workspace, tmp_path):
    files = {p.name: p.read_text() for p in workspace.iterdir() if p.is_file()}
    check(prepare(files, tmp_path / workspace.name))


@pytest.mark.parametrize("name", sorted(AWS_VARIANTS))
def test_aws_variant_validates_and_applies_against_mocks(project, tmp_path, name):
    ws = project.render(name, textwrap.dedent(AWS_VARIANTS[name]))
    check(prepare(ws.files, tmp_path / name))


def test_the_golden_set_covers_every_aws_compute_type():
    mains = " ".join((w / "main.tf").read_text() for w in AWS_GOLDEN)
    for marker in ("aws_ecs_task_definition", "aws_lambda_function", "aws_instance"):
        assert f'resource "{marker}"' in mains
    shutil.which("bash")  # nothing else needed: the provider comes from the mirror
