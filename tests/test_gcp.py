"""GCP workspaces that really run: the VM's zone, names Kubernetes accepts, module paths, retries and
timeouts, the identities schedules start jobs as, secrets, and secure defaults."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from dativo_ingest import gcp
from dativo_ingest.errors import InputError
from tests.tfcheck import parse

SA = "sa@p.iam.gserviceaccount.com"
SCHEDULE = 'schedule: {cron: "0 3 * * *", timezone: UTC}'


def gce(extra: str = "", runtime: str = "") -> str:
    return (f"cloud_provider: gcp\n{extra}runtime_environment:\n  compute_type: gce_instance\n"
            f"  service_account: {SA}\n  network: {{subnet_ids: [s]}}\n{runtime}")


def cloud_run(extra: str = "", refs: str = "") -> str:
    return (f"cloud_provider: gcp\n{extra}runtime_environment:\n  compute_type: cloud_run\n  service_account: {SA}\n"
            + (f"terraform:\n  resource_refs:\n{refs}" if refs else ""))


def gke(extra: str = "", runtime: str = "") -> str:
    return (f"cloud_provider: gcp\n{extra}runtime_environment:\n  compute_type: gke_pod\n{runtime}"
            "terraform: {resource_refs: {cluster_name: gke-1}}\n")


def settings(project, text: str) -> None:
    """Replace the settings' top-level blocks that `text` sets (a key may appear once in YAML), then add `text`."""
    import yaml

    path = project.root / "dativo-tf.yaml"
    text = textwrap.dedent(text)
    replaced = set(yaml.safe_load(text))
    kept, skipping = [], False
    for line in path.read_text().splitlines(keepends=True):
        if line[:1] not in (" ", "\t", "\n", "#", ""):
            skipping = line.split(":", 1)[0].strip() in replaced
        if not skipping:
            kept.append(line)
    path.write_text("".join(kept) + text)


def hcl_string(literal: str) -> str:
    """The value of an HCL quoted string as generated (JSON escapes, `$${` and `%%{` for literal `${`, `%{`);
    a template with quotes inside its interpolations comes back as written, between the outer quotes."""
    try:
        return json.loads(literal).replace("$${", "${").replace("%%{", "%{")
    except json.JSONDecodeError:
        return literal[1:-1]


def resources(ws, kind: str = "resource") -> dict[str, dict]:
    """{type.name: body} of main.tf."""
    out = {}
    for entry in parse_text(ws.files["main.tf"]).get(kind, []):
        for rtype, named in entry.items():
            for name, body in named.items():
                out[f"{rtype}.{name}"] = body
    return out


def plain(value):
    """python-hcl2 output with quoted strings (values and keys) turned into their values."""
    if isinstance(value, str):
        return hcl_string(value) if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items() if k != "__is_block__"}
    return value


def parse_text(text: str) -> dict:
    import hcl2

    return plain(hcl2.loads(text))


# --- item 2: the VM's zone ---------------------------------------------------------------------------------


def test_zone_table_is_shipped_and_consistent():
    table = gcp.zone_table()
    assert {"us-central1", "us-east1", "europe-west1", "europe-west4"} <= set(table)
    for region, zones in table.items():
        assert zones and all(z.startswith(region + "-") and re.fullmatch(r"[a-z]", z[len(region) + 1:]) for z in zones)


@pytest.mark.parametrize("region", ["us-east1", "europe-west1", "us-central1", "europe-west4"])
def test_default_zone_is_a_real_zone_of_the_jobs_region(project, region):
    ws = project.render("vm", gce(f"region: {region}\n"))
    zone = resources(ws)["google_compute_instance.job"]["zone"]
    assert zone in gcp.zone_table()[region]  # us-east1-a and europe-west1-a do not exist


def test_the_jobs_region_wins_over_the_settings_region(project):
    settings(project, "gcp: {project_id: proj-123, region: us-central1, zone: us-central1-f, backend: {bucket: b}}\n"
                      "environments: {prod: {gcp: {zone: europe-west4-b}}}\n")
    ws = project.render("vm", gce("region: europe-west4\n"))
    assert resources(ws)["google_compute_instance.job"]["zone"] == "europe-west4-b"


def test_a_zone_outside_the_jobs_region_is_an_error_naming_the_key(project):
    settings(project, "gcp: {project_id: proj-123, zone: us-central1-a, backend: {bucket: b}}\n")
    with pytest.raises(InputError) as info:
        project.render("vm", gce("region: europe-west1\n"))
    assert info.value.key == "gcp.zone" and info.value.path == "dativo-tf.yaml" and info.value.line
    assert "'us-central1-a' is in region 'us-central1'" in info.value.message
    assert "europe-west1-b, europe-west1-c, europe-west1-d" in info.value.message


def test_a_zone_set_per_environment_is_named_there(project):
    settings(project, "environments:\n  prod:\n    gcp: {zone: us-west1-a}\n")
    with pytest.raises(InputError) as info:
        project.render("vm", gce())  # us-central1
    assert info.value.key == "environments.prod.gcp.zone"
    text = (project.root / "dativo-tf.yaml").read_text()
    assert info.value.line == text.splitlines().index("    gcp: {zone: us-west1-a}") + 1


def test_a_zone_that_does_not_exist_is_an_error(project):
    settings(project, "gcp: {project_id: proj-123, region: us-east1, zone: us-east1-a, backend: {bucket: b}}\n")
    with pytest.raises(InputError, match=r"'us-east1-a' is not a zone of 'us-east1'; allowed: us-east1-b, us-east1-c"):
        project.render("vm", gce())


def test_a_region_missing_from_the_table_needs_an_explicit_zone(project):
    with pytest.raises(InputError) as info:
        project.render("vm", gce("region: mars-north1\n"))
    assert info.value.key == "infrastructure.region" and "set gcp.zone" in info.value.message
    settings(project, "environments: {prod: {gcp: {zone: mars-north1-x}}}\n")
    ws = project.render("vm", gce("region: mars-north1\n"))
    assert resources(ws)["google_compute_instance.job"]["zone"] == "mars-north1-x"


# --- item 3: Kubernetes CronJob names --------------------------------------------------------------------


def test_cronjob_name_leaves_room_for_the_suffix_kubernetes_adds(project):
    long_name = "nightly_clickstream_compaction_for_the_events_table_v2"
    ws = project.render(long_name, gke(SCHEDULE + "\n"))
    name = hcl_string(re.search(r'^  name = (".*")$', ws.files["main.tf"], re.M).group(1))
    assert len(name) <= 52 and name.startswith("acme-prod-nightly-clickstream")
    once = project.render(long_name, gke())
    assert len(hcl_string(re.search(r'^  name = (".*")$', once.files["main.tf"], re.M).group(1))) == 63


# --- item 4: module paths ----------------------------------------------------------------------------------


MODULE_MAIN = 'variable "cloud_provider" {}\nvariable "runtime_environment" {}\nvariable "tags" {}\n' \
              'variable "resource_refs" {}\nvariable "job_metadata" {}\n'


def module_job(path: str, version: str = "") -> str:
    return (f"cloud_provider: gcp\nruntime_environment: {{compute_type: cloud_run}}\n"
            f"terraform:\n  module_path: {path}\n" + (f"  module_version: '{version}'\n" if version else ""))


def render_with(project, name, infra, out: Path | None = None):
    from dativo_ingest.config import JobConfig
    from dativo_ingest.project import ProjectSettings
    from dativo_ingest.render import render_job

    settings_obj = ProjectSettings.load(project.root / "dativo-tf.yaml")
    settings_obj.out = out
    return render_job(JobConfig.from_yaml(project.job(name, infra)), settings_obj)


def test_a_repo_path_that_looks_like_a_registry_address_is_local(project):
    (project.root / "infra/modules/etl").mkdir(parents=True)
    ws = render_with(project, "mod", module_job("infra/modules/etl", "~> 1.0"))
    assert 'source = "../../../../infra/modules/etl"' in ws.files["main.tf"]
    assert "version" not in ws.files["main.tf"]


def test_a_registry_address_keeps_its_version(project):
    ws = render_with(project, "mod", module_job("acme/dativo-etl-job/google", "~> 1.2"))
    assert 'source  = "acme/dativo-etl-job/google"' in ws.files["main.tf"]
    assert 'version = "~> 1.2"' in ws.files["main.tf"]


@pytest.mark.parametrize("path, why", [("./modules/missing", "does not exist"), ("modules/missing", "does not exist"),
                                       ("../elsewhere/etl", "points outside"), ("/no/such/module", "points outside")])
def test_a_local_module_folder_that_does_not_exist_is_an_error(project, path, why):
    """Outside the project, that comes first (allow_outside_project); inside, a missing folder is an error."""
    with pytest.raises(InputError) as info:
        render_with(project, "mod", module_job(path))
    assert info.value.key == "infrastructure.terraform.module_path" and why in info.value.message


def test_local_module_path_is_relative_to_the_output_folder_actually_used(project, tmp_path):
    """`generate --out DIR` (ProjectSettings.out): `terraform get` in the written workspace finds the module."""
    from tests.tfcheck import terraform

    (project.root / "modules/etl").mkdir(parents=True)
    (project.root / "modules/etl/main.tf").write_text(MODULE_MAIN)
    out = tmp_path / "elsewhere" / "deep"
    ws = render_with(project, "mod", module_job("./modules/etl"), out=out)
    workspace = out / ws.directory
    workspace.mkdir(parents=True)
    source = re.search(r'source = "(.*)"', ws.files["main.tf"]).group(1)
    assert (workspace / source).resolve() == (project.root / "modules/etl").resolve()
    (workspace / "main.tf").write_text(ws.files["main.tf"].split("\n\n  cloud_provider")[0] + "\n" +
                                       "  cloud_provider = 1\n  runtime_environment = 1\n  tags = 1\n"
                                       "  resource_refs = 1\n  job_metadata = 1\n}\n")
    rc, _, err = terraform(["get", "-no-color"], workspace)
    assert rc == 0, err


# --- item 9: timeouts and retries --------------------------------------------------------------------------


def test_cloud_run_does_not_retry_unless_asked(project):
    job = resources(project.render("run", cloud_run()))["google_cloud_run_v2_job.job"]
    assert job["template"][0]["template"][0]["max_retries"] == 0  # the provider's default is 3
    job = resources(project.render("run3", cloud_run(), "retry_config: {max_attempts: 3}\n"))["google_cloud_run_v2_job.job"]
    assert job["template"][0]["template"][0]["max_retries"] == 2


@pytest.mark.parametrize("attempts, message", [(12, "over Cloud Run's maximum of 10 retries"),
                                               (0, "allowed: a whole number, 1 or more"),
                                               ("'3'", "allowed: a whole number, 1 or more")])
def test_bad_attempt_counts_are_errors(project, attempts, message):
    with pytest.raises(InputError, match=message) as info:
        project.render("run", cloud_run(), f"retry_config: {{max_attempts: {attempts}}}\n")
    assert info.value.key == "retry_config.max_attempts"


def test_gke_limits_each_attempt_and_the_whole_job(project):
    ws = project.render("pod", gke(runtime="  timeout_seconds: 900\n"), "retry_config: {max_attempts: 2}\n")
    spec = resources(ws)["kubernetes_job_v1.job"]["spec"][0]
    assert spec["backoff_limit"] == 1
    assert spec["active_deadline_seconds"] == 2 * 900 + gcp.K8S_MAX_BACKOFF_SECONDS + gcp.GCE_START_MARGIN_SECONDS
    pod = spec["template"][0]["spec"][0]
    assert pod["active_deadline_seconds"] == "${var.runtime_environment.timeout_seconds}"
    default = resources(project.render("pod2", gke()))["kubernetes_job_v1.job"]["spec"][0]
    assert default["backoff_limit"] == 0 and default["active_deadline_seconds"] == 3600 + gcp.GCE_START_MARGIN_SECONDS


def test_gce_vm_runs_at_most_every_attempt(project):
    ws = project.render("vm", gce(runtime="  timeout_seconds: 1200\n"), "retry_config: {max_attempts: 3}\n")
    vm = resources(ws)["google_compute_instance.job"]
    assert vm["scheduling"][0]["max_run_duration"][0]["seconds"] == 3 * 1200 + gcp.GCE_START_MARGIN_SECONDS
    assert vm["metadata"]["dativo-max-attempts"] == "3" and vm["metadata"]["dativo-timeout-seconds"] == "1200"


# --- item 7: who may start the job -------------------------------------------------------------------------


def test_cloud_scheduler_runs_as_its_own_account_allowed_to_run_this_job(project):
    ws = project.render("run", cloud_run(SCHEDULE + "\n"))
    res = resources(ws)
    account = res["google_service_account.scheduler"]
    assert re.fullmatch(r"[a-z][-a-z0-9]{4,28}[a-z0-9]", account["account_id"])
    binding = res["google_cloud_run_v2_job_iam_member.scheduler"]
    assert binding["role"] == "roles/run.invoker"
    assert binding["name"] == "${google_cloud_run_v2_job.job.name}"
    assert binding["member"] == "serviceAccount:${google_service_account.scheduler.email}"
    scheduler = res["google_cloud_scheduler_job.job"]
    oauth = scheduler["http_target"][0]["oauth_token"][0]
    assert oauth["service_account_email"] == "${google_service_account.scheduler.email}"  # not the job's identity
    assert scheduler["retry_config"][0]["retry_count"] > 0


def test_a_named_scheduler_account_is_used_not_created(project):
    ws = project.render("run", cloud_run(SCHEDULE + "\n", "    scheduler_service_account_email: cron@p.iam.gserviceaccount.com\n"))
    res = resources(ws)
    assert "google_service_account.scheduler" not in res
    assert res["google_cloud_run_v2_job_iam_member.scheduler"]["member"] == \
        'serviceAccount:${var.resource_refs["scheduler_service_account_email"]}'


def test_instance_schedule_may_start_the_vm(project):
    ws = project.render("vm", gce(SCHEDULE + "\n"))
    res = resources(ws)
    vm = res["google_compute_instance.job"]
    assert "resource_policies" not in vm  # attached once the service agent may start the VM
    assert vm["lifecycle"][0]["ignore_changes"] == ["resource_policies"]
    grant = res["google_compute_instance_iam_member.schedule"]
    assert grant["role"] == "roles/compute.instanceAdmin.v1"
    assert grant["member"] == ("serviceAccount:service-${data.google_project.current.number}"
                               "@compute-system.iam.gserviceaccount.com")
    attach = res["google_compute_resource_policy_attachment.job"]
    assert attach["name"] == "${google_compute_resource_policy.job.name}"
    assert attach["depends_on"] == ["${google_compute_instance_iam_member.schedule}"]
    assert "google_project.current" in resources(ws, "data")


# --- item 8: secrets ---------------------------------------------------------------------------------------


SECRETS = ("secrets:\n  PGPASSWORD: projects/shared-p/secrets/pg-password/versions/4\n  API_TOKEN: api-token\n"
           "  S3_KEY: s3-key:2\n")


def test_cloud_run_reads_secrets_from_secret_manager(project):
    ws = project.render("run", cloud_run(SECRETS))
    res = resources(ws)
    container = res["google_cloud_run_v2_job.job"]["template"][0]["template"][0]["containers"][0]
    refs = {e["name"]: e["value_source"][0]["secret_key_ref"][0] for e in container["env"] if "value_source" in e}
    assert refs == {"API_TOKEN": {"secret": "api-token", "version": "latest"},
                    "PGPASSWORD": {"secret": "projects/shared-p/secrets/pg-password", "version": "4"},
                    "S3_KEY": {"secret": "s3-key", "version": "2"}}
    grant = res["google_secret_manager_secret_iam_member.job"]
    assert grant["for_each"] == '${toset(["api-token", "projects/shared-p/secrets/pg-password", "s3-key"])}'
    assert grant["role"] == "roles/secretmanager.secretAccessor"
    assert grant["member"] == "serviceAccount:${local.service_account_email}"


def test_gke_reads_secrets_from_kubernetes_secrets(project):
    ws = project.render("pod", gke("secrets: {PGPASSWORD: etl-db/password, API_TOKEN: api.tokens/prod_token}\n"))
    pod = resources(ws)["kubernetes_job_v1.job"]["spec"][0]["template"][0]["spec"][0]
    refs = {e["name"]: e["value_from"][0]["secret_key_ref"][0] for e in pod["container"][0]["env"] if "value_from" in e}
    assert refs == {"API_TOKEN": {"name": "api.tokens", "key": "prod_token"},
                    "PGPASSWORD": {"name": "etl-db", "key": "password"}}


@pytest.mark.parametrize("build, reference", [
    (cloud_run, "projects/p/secrets/s/versions/v1"), (cloud_run, "s:"), (cloud_run, "a/b"),
    (cloud_run, "projects/P_up/secrets/s"), (gke, "Etl-DB/password"), (gke, "etl-db"), (gke, "etl-db/pass word"),
])
def test_bad_secret_references_are_errors_naming_the_key(project, build, reference):
    with pytest.raises(InputError) as info:
        project.render("job", build(f"secrets: {{PGPASSWORD: '{reference}'}}\n"))
    assert info.value.key == "infrastructure.secrets.PGPASSWORD" and "allowed:" in info.value.message


def test_gce_reads_secrets_at_start_and_the_vm_account_may_read_them(project):
    ws = project.render("vm", gce(SECRETS))
    res = resources(ws)
    assert res["google_compute_instance.job"]["metadata"]["dativo-secrets"] == (
        "API_TOKEN=projects/proj-123/secrets/api-token/versions/latest "
        "PGPASSWORD=projects/shared-p/secrets/pg-password/versions/4 "
        "S3_KEY=projects/proj-123/secrets/s3-key/versions/2")
    assert res["google_secret_manager_secret_iam_member.job"]["member"] == \
        "serviceAccount:${var.runtime_environment.service_account}"


# --- item 10: secure by default ----------------------------------------------------------------------------


def test_gce_vm_is_locked_down_and_logs_to_cloud_logging(project):
    vm = resources(project.render("vm", gce()))["google_compute_instance.job"]
    meta = vm["metadata"]
    assert meta["block-project-ssh-keys"] == "TRUE" and meta["enable-oslogin"] == "TRUE"
    assert meta["google-logging-enabled"] == "true"
    assert "kms_key_self_link" not in vm["boot_disk"][0]
    key = "projects/k/locations/us-central1/keyRings/r/cryptoKeys/disks"
    settings(project, f"gcp: {{project_id: proj-123, kms: {{disks: {key}}}, backend: {{bucket: b}}}}\n")
    vm = resources(project.render("vm", gce()))["google_compute_instance.job"]
    assert vm["boot_disk"][0]["kms_key_self_link"] == key


def test_gke_pod_is_locked_down(project):
    pod = resources(project.render("pod", gke()))["kubernetes_job_v1.job"]["spec"][0]["template"][0]["spec"][0]
    assert pod["automount_service_account_token"] is False
    assert pod["security_context"][0]["run_as_non_root"] is True
    assert pod["security_context"][0]["seccomp_profile"][0]["type"] == "RuntimeDefault"
    container = pod["container"][0]["security_context"][0]
    assert container["allow_privilege_escalation"] is False and container["capabilities"][0]["drop"] == ["ALL"]
    settings(project, "kubernetes: {run_as_non_root: false, run_as_user: 1000}\n")
    pod = resources(project.render("pod", gke()))["kubernetes_job_v1.job"]["spec"][0]["template"][0]["spec"][0]
    assert pod["security_context"][0]["run_as_non_root"] is False
    assert pod["security_context"][0]["run_as_user"] == 1000


# --- resource_refs formats -------------------------------------------------------------------------------


@pytest.mark.parametrize("build, ref, message", [
    (cloud_run, "    service_account_email: etl-sa\n", "not a service account email"),
    (cloud_run, "    scheduler_service_account_email: cron@example.com\n", "not a service account email"),
    (cloud_run, "    subnet_id: projects/p/regions/us-central1/networks/n\n", "not a subnetwork name"),
])
def test_a_malformed_resource_ref_is_an_error_at_generation(project, build, ref, message):
    with pytest.raises(InputError, match=message) as info:
        project.render("job", build(refs=ref))
    assert info.value.key == "infrastructure.terraform.resource_refs." + ref.split(":")[0].strip()


def test_a_malformed_gke_ref_is_an_error_at_generation(project):
    infra = gke().replace("cluster_name: gke-1", "cluster_name: GKE_1")
    with pytest.raises(InputError, match="not a GKE cluster name") as info:
        project.render("job", infra)
    assert info.value.key == "infrastructure.terraform.resource_refs.cluster_name"


@pytest.mark.parametrize("tfvars_edit, message", [
    (('cluster_name = "gke-1"', 'cluster_name = "GKE_1"'), "resource_refs.cluster_name must be a GKE cluster name"),
    (('cluster_name = "gke-1"', 'other = "x"'), "resource_refs.cluster_name is required"),
])
def test_variables_validate_resource_refs_at_plan(project, tmp_path, tfvars_edit, message):
    from tests.tfcheck import plan_errors_with_tfvars_edit

    ws = project.render("pod", gke())
    err = plan_errors_with_tfvars_edit(ws.files, tmp_path / "ws", *tfvars_edit)
    assert message in err, err


def test_secrets_in_module_mode_are_a_warning(project):
    (project.root / "modules/etl").mkdir(parents=True)
    ws = render_with(project, "mod", module_job("modules/etl") + "secrets: {PGPASSWORD: pg}\n")
    (warning,) = [w for w in ws.warnings if w.key == "infrastructure.secrets"]
    assert "not passed to the module" in warning.message and warning.line
