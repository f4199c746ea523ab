"""Dagster code location for the examples repo: one infrastructure asset per job, plus a job asset that
runs after its infrastructure and receives its Terraform outputs.

    dagster dev -f examples/dagster/definitions.py

DATIVO_TF_MODE=plan or apply runs Terraform in each workspace (that needs the providers and cloud
credentials); the default, render, only writes the workspaces. TERRAFORM_BINARY overrides `terraform`.
"""

import os
from pathlib import Path

import dagster as dg

from dativo_ingest.dagster_assets import TerraformResource, build_definitions, infrastructure_input

EXAMPLES = Path(__file__).resolve().parent.parent

terraform = TerraformResource(
    mode=os.environ.get("DATIVO_TF_MODE", "render"),
    binary=os.environ.get("TERRAFORM_BINARY", "terraform"),
)


@dg.asset(ins={"infra": infrastructure_input(EXAMPLES / "jobs/acme/orders_ecs.yaml")}, group_name="acme",
          kinds={"python"})
def orders_etl(context: dg.AssetExecutionContext, infra: dict) -> None:
    """The Dativo job itself: runs once its infrastructure is in place, with that workspace's outputs."""
    context.log.info(f"running on task definition {infra.get('task_definition_arn', '(not applied yet)')}")


# Dagster loads the one Definitions object at module scope: the infrastructure assets plus your own.
defs = dg.Definitions.merge(
    build_definitions(EXAMPLES / "dativo-tf.yaml", terraform=terraform),
    dg.Definitions(assets=[orders_etl]),
)
