"""Tag precedence (the seed's five levels plus settings defaults) and each cloud's tag rules."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from dativo_ingest.errors import InputError
from dativo_ingest.tags import (
    GCP_KEY, GCP_VALUE, K8S_NAME, aws_tags, gcp_label_key, gcp_labels, k8s_labels,
)
from tests.conftest import write_tree

ASSET_FULL = """
    name: orders
    domain: sales
    dataProduct: orders-product
    team: {owner: team@example.com}
    compliance: {classification: [PII, CONFIDENTIAL], regulations: [GDPR, CCPA], retention_days: 30}
    finops: {cost_center: CC-ASSET, project: asset-project, environment: asset-env}
"""


def _tags(tmp_path, job_extra: str = "", infra_tags: str = "", defaults: str = "{Company: Acme, Owner: default-owner}"):
    from dativo_ingest.config import JobConfig
    from dativo_ingest.tags import merge_tags

    write_tree(tmp_path, {
        "dativo-tf.yaml": f"tags: {{defaults: {defaults}}}\n",
        "assets/a.yaml": ASSET_FULL,
        "jobs/j.yaml": "tenant_id: t1\nenvironment: job-env\nasset: job-asset\nasset_path: assets/a.yaml\n"
        + job_extra + "infrastructure:\n  cloud_provider: aws\n  tags: {" + infra_tags + "}\n",
    })
    job = JobConfig.from_yaml(tmp_path / "jobs/j.yaml")
    return merge_tags(job, job._resolve_asset(), {"Company": "Acme", "Owner": "default-owner", "TenantId": "default"})


@pytest.mark.parametrize("key, job_extra, infra_tags, value, source", [
    # (1) infrastructure.tags beat everything
    ("CostCenter", "finops: {cost_center: CC-JOB}\n", "CostCenter: CC-INFRA", "CC-INFRA", "infrastructure.tags"),
    # (2) job finops beats asset finops, and finops beats compliance/governance/job level
    ("CostCenter", "finops: {cost_center: CC-JOB}\n", "", "CC-JOB", "job finops.cost_center"),
    ("CostCenter", "", "", "CC-ASSET", "asset finops.cost_center"),
    ("Environment", "finops: {environment: fin-env}\n", "", "fin-env", "job finops.environment"),
    ("Environment", "", "", "asset-env", "asset finops.environment"),
    # (3) compliance from the asset
    ("Regulation", "", "", "GDPR,CCPA", "asset compliance.regulations"),
    ("Compliance", "", "", "PII", "asset compliance.classification"),
    ("DataClassification", "", "", "CONFIDENTIAL", "asset compliance.classification"),
    # (4) governance: overrides beat team.owner, which beats settings defaults
    ("Owner", "governance_overrides: {owner: override@example.com}\n", "", "override@example.com", "governance_overrides.owner"),
    ("Owner", "", "", "team@example.com", "asset team.owner"),
    ("Domain", "", "", "sales", "asset domain"),
    # (5) job level beats settings defaults
    ("TenantId", "", "", "t1", "job tenant_id"),
    ("JobName", "", "", "job-asset", "job asset name"),
    ("ManagedBy", "", "", "Terraform", "dativo-tf"),
    # (6) settings defaults are the lowest level
    ("Company", "", "", "Acme", "settings tags.defaults"),
    ("Company", "", "Company: Other", "Other", "infrastructure.tags"),
])
def test_precedence(tmp_path, key, job_extra, infra_tags, value, source):
    tags = _tags(tmp_path, job_extra, infra_tags)
    assert tags[key].value == value
    assert source in tags[key].source


def test_infrastructure_beats_finops_beats_compliance_for_the_same_key(tmp_path):
    # Compliance normally comes from the asset (level 3); finops cannot set it, infra tags can.
    assert _tags(tmp_path, infra_tags="Compliance: HIPAA")["Compliance"].value == "HIPAA"


def test_environment_job_level_when_no_finops(tmp_path):
    write_tree(tmp_path, {"jobs/j.yaml": "tenant_id: t\nenvironment: e1\ninfrastructure: {cloud_provider: aws}\n"})
    from dativo_ingest.config import JobConfig
    from dativo_ingest.tags import merge_tags

    job = JobConfig.from_yaml(tmp_path / "jobs/j.yaml")
    tags = merge_tags(job, None)
    assert tags["Environment"].value == "e1" and "job environment" in tags["Environment"].source


def test_seed_regulation_list_is_fixed_for_aws():
    assert aws_tags({"Regulation": "GDPR,CCPA"}) == {"Regulation": "GDPR_CCPA"}


def test_aws_errors():
    with pytest.raises(InputError, match="reserved prefix"):
        aws_tags({"aws:x": "1"})
    with pytest.raises(InputError, match="at most 128"):
        aws_tags({"k" * 129: "1"})
    with pytest.raises(InputError, match="at most 256"):
        aws_tags({"k": "v" * 257})
    with pytest.raises(InputError, match="at most 50"):
        aws_tags({f"k{i}": "v" for i in range(51)})
    assert len(aws_tags({f"k{i}": "v" for i in range(50)})) == 50


def test_gcp_rules():
    assert gcp_label_key("CostCenter") == "cost_center"
    assert gcp_label_key("DataClassification") == "data_classification"
    assert gcp_labels({"Owner": "a@b.com"}) == {"owner": "a_b_com"}
    with pytest.raises(InputError, match="both become the GCP label 'cost_center'"):
        gcp_labels({"CostCenter": "a", "cost_center": "b"})
    with pytest.raises(InputError, match="start with a letter"):
        gcp_labels({"1st": "a"})
    with pytest.raises(InputError, match="at most 64"):
        gcp_labels({f"k{i}": "v" for i in range(65)})


AWS_OK = re.compile(r"^[\w\s+\-=.:/@]*$", re.UNICODE)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=0, max_size=140), st.text(max_size=300), max_size=5))
def test_aws_any_input_gives_valid_tags_or_a_clear_error(tags):
    try:
        out = aws_tags(tags)
    except InputError as exc:
        assert exc.message and exc.key
        return
    assert len(out) <= 50
    for key, value in out.items():
        assert 1 <= len(key) <= 128 and len(value) <= 256
        assert not key.lower().startswith("aws:")
        for text in (key, value):
            assert all(ch.isalnum() or ch.isspace() or ch in "+-=._:/@" for ch in text), text


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=100), st.text(max_size=100), max_size=5))
def test_gcp_and_k8s_any_input_gives_valid_labels_or_a_clear_error(tags):
    try:
        labels = gcp_labels(tags)
        kube = k8s_labels(tags)
    except InputError as exc:
        assert exc.message
        return
    for key, value in labels.items():
        assert GCP_KEY.match(key) and GCP_VALUE.match(value), (key, value)
    for key, value in kube.items():
        assert 1 <= len(key) <= 63 and K8S_NAME.match(key) and K8S_NAME.match(value), (key, value)


def test_asset_tags_name_the_asset_file_relative_to_each_project(tmp_path):
    """Tags from an asset are built once per (asset, project root): the same asset model seen from two roots
    names its file relative to each."""
    from dativo_ingest.config import load_asset
    from dativo_ingest.tags import _from_asset

    write_tree(tmp_path, {"repo/assets/a.yaml": "name: a\ndomain: sales\nteam: {owner: x@y.z}\n"})
    asset = load_asset(tmp_path / "repo/assets/a.yaml")
    outer, governance, _, _ = _from_asset(asset, tmp_path.resolve())
    inner, again, _, _ = _from_asset(asset, (tmp_path / "repo").resolve())
    assert (outer, inner) == ("repo/assets/a.yaml", "assets/a.yaml")
    assert [t.source for t in again] == ["asset domain (assets/a.yaml)", "asset team.owner (assets/a.yaml)"]
    assert _from_asset(asset, tmp_path.resolve())[1] is governance  # reused, not rebuilt
