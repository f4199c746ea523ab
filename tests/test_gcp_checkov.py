"""checkov (offline) finds no failed check in GCP variants the examples do not show: scheduled jobs with
secrets on every compute type, with and without a disk KMS key and a dedicated Kubernetes namespace."""

from __future__ import annotations

import textwrap

import pytest

from tests.test_checkov import checkov, failures, scan  # noqa: F401 - checkov is a fixture

GCP_VARIANTS = {
    "run_scheduled": """
        cloud_provider: gcp
        schedule: "0 4 * * *"
        secrets: {PGPASSWORD: pg-password}
        runtime_environment:
          compute_type: cloud_run
          service_account: etl@proj-123.iam.gserviceaccount.com
          network: {vpc_id: projects/p/global/networks/n, subnet_ids: [s], security_group_ids: [etl]}
    """,
    "gce_scheduled": """
        cloud_provider: gcp
        region: us-east1
        schedule: "0 4 * * *"
        secrets: {PGPASSWORD: 'projects/shared/secrets/pg/versions/2'}
        runtime_environment:
          compute_type: gce_instance
          service_account: etl@proj-123.iam.gserviceaccount.com
          network: {subnet_ids: [s], security_group_ids: [etl]}
    """,
    "gke_once": """
        cloud_provider: gcp
        secrets: {PGPASSWORD: etl-db/password}
        runtime_environment: {compute_type: gke_pod}
        terraform: {resource_refs: {cluster_name: gke-1, kubernetes_service_account: etl}}
    """,
    "gke_scheduled": """
        cloud_provider: gcp
        schedule: "0 4 * * *"
        secrets: {PGPASSWORD: etl-db/password}
        runtime_environment: {compute_type: gke_pod}
        terraform: {resource_refs: {cluster_name: gke-1}}
    """,
}
DEDICATED = """
    kubernetes: {namespace: etl}
    environments:
      prod:
        gcp: {kms: {disks: projects/k/locations/us-east1/keyRings/r/cryptoKeys/disks}}
"""


@pytest.mark.parametrize("dedicated", [False, True], ids=["defaults", "kms-key-and-namespace"])
def test_gcp_variants_have_no_failed_checks(checkov, project, tmp_path, dedicated):  # noqa: F811
    if dedicated:
        settings = project.root / "dativo-tf.yaml"
        settings.write_text(settings.read_text() + textwrap.dedent(DEDICATED))
    out = tmp_path / "variants"
    for name, infra in GCP_VARIANTS.items():
        ws = project.render(name, textwrap.dedent(infra))
        for file, text in ws.files.items():
            (out / name / file).parent.mkdir(parents=True, exist_ok=True)
            (out / name / file).write_text(text)
        if dedicated:
            assert "#checkov:skip" not in ws.files["main.tf"]
    report = scan(checkov, out)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] >= 10
    assert failures(report) == []
