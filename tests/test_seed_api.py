"""The user's document: its Python snippet runs as written against the examples."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import EXAMPLES

SEED_SNIPPET = textwrap.dedent('''
    from dativo_ingest.config import JobConfig
    from dativo_ingest.infrastructure_metadata import generate_terraform_variables

    # Load job configuration
    job_config = JobConfig.from_yaml("jobs/my_job.yaml")
    asset_definition = job_config._resolve_asset()

    # Generate Terraform variables
    variables = generate_terraform_variables(job_config, asset_definition)

    # Output as JSON
    import json
    print(json.dumps(variables, indent=2))
''')


def test_seed_snippet_runs_verbatim(examples_copy):
    job = examples_copy / "jobs/production_tenant/csv_employee_to_iceberg_with_infrastructure_aws.yaml"
    (examples_copy / "jobs/my_job.yaml").write_text(job.read_text())
    proc = subprocess.run([sys.executable, "-c", SEED_SNIPPET], cwd=examples_copy, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    variables = json.loads(proc.stdout)
    assert set(variables) >= {"cloud_provider", "runtime_environment", "tags", "resource_refs", "job_metadata"}
    assert variables["tags"]["CostCenter"] == "FIN-001" and variables["tags"]["ManagedBy"] == "Terraform"
    assert variables["enable_cloudwatch_logs"] is True


def test_api_functions(monkeypatch):
    from dativo_ingest.config import JobConfig
    from dativo_ingest.infrastructure_metadata import (
        extract_infrastructure_tags, generate_terraform_output, generate_terraform_variables,
    )

    monkeypatch.chdir(EXAMPLES)
    job = JobConfig.from_yaml("jobs/production_tenant/csv_employee_to_iceberg_with_infrastructure_gcp.yaml")
    assert job.infrastructure.cloud_provider == "gcp"
    asset = job._resolve_asset()
    tags = extract_infrastructure_tags(job, asset)
    assert tags["Regulation"] == "GDPR,CCPA" and tags["Owner"] == "data-engineering-team@company.com"
    variables = generate_terraform_variables(job, asset)
    assert variables["labels"]["owner"] == "data-engineering-team_company_com"
    assert json.loads(generate_terraform_output(job, asset)) == json.loads(json.dumps(variables))
    assert 'cloud_provider = "gcp"' in generate_terraform_output(job, asset, format="hcl")
