"""The offline cost estimate: hand-computed costs per compute type from the shipped prices, runs per month
of tricky schedules, the price file, `prices:` overrides, unknown regions, budgets and the `cost` command."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
import json
import re

import pytest
from click.testing import CliRunner

from dativo_ingest import compute
from dativo_ingest.cli import main
from dativo_ingest.config import JobConfig
from dativo_ingest.cost import estimate, format_usd, price_table, roll_up, runs_per_month, shipped_prices
from dativo_ingest.errors import InputError, InputErrors
from dativo_ingest.project import ProjectSettings
from tests.conftest import EXAMPLES, write_tree

# The 400-year Gregorian cycle the runs are counted over: 146097 days, 20871 weeks, 4800 months.
DAYS, WEEKS, MONTHS, YEARS = 146097, 20871, 4800, 400


def P(key: str, region: str) -> float:
    """A shipped price."""
    return shipped_prices()[key].regions[region]


def run(args, cwd, monkeypatch):
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(main, args)


def estimate_of(project, infrastructure: str, extra: str = "", settings_extra: str = ""):
    if settings_extra:
        path = project.root / "dativo-tf.yaml"
        path.write_text(path.read_text() + settings_extra)
    job_path = project.job("job", infrastructure, extra)
    settings = ProjectSettings.load(project.root / "dativo-tf.yaml")
    return estimate(JobConfig.from_yaml(job_path, project_root=project.root), settings)


# --- one job per compute type, computed by hand from the shipped prices --------------------------------


def test_fargate_1_vcpu_2_gb_60_minutes_a_day_every_day(project):
    e = estimate_of(project, """
        cloud_provider: aws
        region: us-east-1
        schedule: "0 6 * * *"
        runtime_environment: {compute_type: ecs_task, cpu_units: 1024, memory_mb: 2048, timeout_seconds: 7200}
    """, extra="finops: {expected_runtime_minutes: 60}\n")
    per_run = 1 * 1 * P("aws.fargate.vcpu_hour", "us-east-1") + 2 * 1 * P("aws.fargate.memory_gb_hour", "us-east-1")
    runs = DAYS / MONTHS  # once a day: 30.436875 runs in an average month
    assert e.runs_per_month == pytest.approx(runs)
    assert e.per_run_usd == pytest.approx(per_run)
    assert e.monthly_usd == pytest.approx(runs * per_run)
    assert (e.upper_bound, e.always_on_usd, e.cost_center, e.warnings) == (False, 0, "CC-ASSET", [])


def test_fargate_pays_ephemeral_storage_above_20_gb_and_a_one_minute_minimum(project):
    e = estimate_of(project, """
        cloud_provider: aws
        runtime_environment:
          compute_type: ecs_task
          cpu_units: 512
          memory_mb: 1024
          storage: {ephemeral_storage_gb: 50}
    """, extra="finops: {expected_runtime_minutes: 0.5}\n")
    hours = 60 / 3600  # 30 s is billed as the 1-minute minimum
    per_run = hours * (0.5 * P("aws.fargate.vcpu_hour", "us-east-1") + 1 * P("aws.fargate.memory_gb_hour", "us-east-1")
                       + (50 - 20) * P("aws.fargate.ephemeral_gb_hour", "us-east-1"))
    assert e.per_run_usd == pytest.approx(per_run)
    assert (e.runs_per_month, e.scheduled, e.schedule) == (1, False, "per manual run")
    assert e.monthly_usd == pytest.approx(per_run)


def test_lambda_gb_seconds_requests_and_ephemeral_storage_every_30_minutes(project):
    e = estimate_of(project, """
        cloud_provider: aws
        region: eu-west-1
        schedule: "*/30 * * * *"
        runtime_environment:
          compute_type: lambda
          memory_mb: 2048
          timeout_seconds: 600
          storage: {ephemeral_storage_gb: 4}
    """, extra="finops: {expected_runtime_minutes: 5}\n")
    seconds = 5 * 60
    per_run = (2 * seconds * P("aws.lambda.gb_second", "eu-west-1") + 1 * P("aws.lambda.request", "eu-west-1")
               + (4096 - 512) / 1024 * seconds * P("aws.lambda.ephemeral_gb_second", "eu-west-1"))
    runs = 48 * DAYS / MONTHS
    assert e.per_run_usd == pytest.approx(per_run)
    assert e.monthly_usd == pytest.approx(runs * per_run)


def test_ec2_instance_hours_plus_its_root_volume_all_month(project):
    e = estimate_of(project, """
        cloud_provider: aws
        runtime_environment:
          compute_type: ec2_instance
          cpu_units: 2048
          memory_mb: 8192
          timeout_seconds: 14400
          network: {subnet_ids: [subnet-1]}
          storage: {ephemeral_storage_gb: 100}
    """, extra="finops: {expected_runtime_minutes: 90}\n")
    assert [line.price_key for line in e.lines] == ["aws.ec2.m6i.large", "aws.ebs.gp3_gb_month"]
    per_run = 1.5 * P("aws.ec2.m6i.large", "us-east-1")
    always_on = 100 * P("aws.ebs.gp3_gb_month", "us-east-1")  # the stopped instance keeps its volume
    assert e.per_run_usd == pytest.approx(per_run)
    assert e.always_on_usd == pytest.approx(always_on)
    assert e.monthly_usd == pytest.approx(1 * per_run + always_on)


def test_cloud_run_vcpu_and_gib_seconds_every_hour(project):
    e = estimate_of(project, """
        cloud_provider: gcp
        schedule: "15 * * * *"
        runtime_environment: {compute_type: cloud_run, cpu_units: 2000, memory_mb: 4096, timeout_seconds: 3000}
    """, extra="finops: {expected_runtime_minutes: 12}\n")
    seconds = 12 * 60
    per_run = 2 * seconds * P("gcp.cloud_run.vcpu_second", "us-central1") + \
        4 * seconds * P("gcp.cloud_run.memory_gib_second", "us-central1")
    assert e.region == "us-central1"
    assert e.monthly_usd == pytest.approx(24 * DAYS / MONTHS * per_run)


@pytest.mark.parametrize("machine, family, vcpus, memory_gb", [
    (None, "e2_custom", 4, 16),  # cpu_units 4000 / memory_mb 16384 -> e2-custom-4-16384
    ("e2-standard-4", "e2", 4, 16),
    ("e2-highcpu-8", "e2", 8, 8),
])
def test_gce_e2_vcpu_and_memory_hours_plus_the_boot_disk_all_month(project, machine, family, vcpus, memory_gb):
    line = f"\n          machine_type: {machine}" if machine else ""
    e = estimate_of(project, f"""
        cloud_provider: gcp
        runtime_environment:
          compute_type: gce_instance
          cpu_units: 4000
          memory_mb: 16384
          timeout_seconds: 21600{line}
          network: {{vpc_id: net}}
          storage: {{ephemeral_storage_gb: 200}}
    """, extra="finops: {expected_runtime_minutes: 120}\n")
    per_run = 2 * (vcpus * P(f"gcp.gce.{family}.vcpu_hour", "us-central1")
                   + memory_gb * P(f"gcp.gce.{family}.memory_gb_hour", "us-central1"))
    always_on = 200 * P("gcp.pd.balanced_gb_month", "us-central1")
    assert e.per_run_usd == pytest.approx(per_run)
    assert e.monthly_usd == pytest.approx(per_run + always_on)


def test_gke_autopilot_pod_requests_on_weekdays(project):
    e = estimate_of(project, """
        cloud_provider: gcp
        schedule: "30 2 * * 1-5"
        runtime_environment: {compute_type: gke_pod, cpu_units: 500, memory_mb: 1536, timeout_seconds: 5400}
    """, extra="finops: {expected_runtime_minutes: 90}\n")
    per_run = 0.5 * 1.5 * P("gcp.gke_autopilot.vcpu_hour", "us-central1") + \
        1.5 * 1.5 * P("gcp.gke_autopilot.memory_gb_hour", "us-central1")
    runs = 5 * WEEKS / MONTHS
    assert e.monthly_usd == pytest.approx(runs * per_run)


def test_every_compute_type_has_a_case_above():
    assert set(compute.RESOLVERS) == {"ecs_task", "lambda", "ec2_instance", "cloud_run", "gce_instance", "gke_pod"}


# --- duration -----------------------------------------------------------------------------------------


def test_without_expected_runtime_the_timeout_gives_an_upper_bound(project):
    e = estimate_of(project, """
        cloud_provider: aws
        runtime_environment: {compute_type: ecs_task, cpu_units: 1024, memory_mb: 2048, timeout_seconds: 1800}
    """)
    per_run = 0.5 * (P("aws.fargate.vcpu_hour", "us-east-1") + 2 * P("aws.fargate.memory_gb_hour", "us-east-1"))
    assert e.upper_bound and e.duration_seconds == 1800
    assert e.per_run_usd == pytest.approx(per_run)
    assert e.summary().startswith("≤ $") and "upper bound: timeout_seconds" in e.summary()


def test_the_assets_expected_runtime_applies_when_the_job_has_none(project):
    asset = project.root / "assets/orders.yaml"
    asset.write_text(asset.read_text().replace("project: asset-project}", "project: asset-project, expected_runtime_minutes: 30}"))
    e = estimate_of(project, """
        cloud_provider: aws
        runtime_environment: {compute_type: ecs_task, cpu_units: 1024, memory_mb: 2048, timeout_seconds: 7200}
    """)
    assert (e.duration_seconds, e.upper_bound) == (30 * 60, False)


def test_no_runtime_and_no_timeout_is_unknown_with_a_warning(project):
    e = estimate_of(project, "cloud_provider: aws\nruntime_environment: {compute_type: ecs_task}\n")
    assert e.monthly_usd is None and e.per_run_usd is None
    assert "duration of a run, and so its cost, is unknown" in e.warnings[0]


def test_an_expected_runtime_longer_than_the_timeout_is_an_error(project):
    with pytest.raises(InputError) as info:
        estimate_of(project, """
            cloud_provider: aws
            runtime_environment: {compute_type: lambda, memory_mb: 1024, timeout_seconds: 600}
        """, extra="finops: {expected_runtime_minutes: 20}\n")
    assert re.search(r"jobs/job\.yaml:\d+: error: finops\.expected_runtime_minutes: 20 minutes is longer than "
                     r"timeout_seconds 600 \(10 minutes\)", str(info.value))


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_expected_runtime_minutes_is_validated(project, value):
    path = project.job("job", "cloud_provider: aws\n", extra=f"finops: {{expected_runtime_minutes: {value}}}\n")
    with pytest.raises(InputErrors) as info:
        JobConfig.from_yaml(path)
    assert "jobs/job.yaml:6: error: finops.expected_runtime_minutes" in str(info.value)


# --- runs per month -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cron, zone, expected", [
    # 3 times an hour, 13 hours (6-18), on the 5 weekdays of each of the cycle's 20871 weeks
    ("*/20 6-18 * * 1-5", "UTC", 3 * 13 * 5 * WEEKS / MONTHS),
    # only the 7 months with 31 days have a 31st
    ("0 3 31 * *", "UTC", 7 * YEARS / MONTHS),
    ("0 0 1 * *", "UTC", 1.0),
    ("@hourly", "UTC", 24 * DAYS / MONTHS),
    # both day fields restricted: the 13th OR a Friday; 688 of the cycle's 4800 13ths are Fridays
    ("0 12 13 * 5", "UTC", (MONTHS + WEEKS - 688) / MONTHS),
    # 02:30 does not exist on the last Sunday of March (skipped, once a year) and happens twice on the last
    # Sunday of October (runs once)
    ("30 2 * * *", "Europe/Berlin", (DAYS - YEARS) / MONTHS),
    ("30 2 * * *", "America/New_York", (DAYS - YEARS) / MONTHS),
    # 03:00 always exists in Berlin
    ("0 3 * * *", "Europe/Berlin", DAYS / MONTHS),
    # every 30 minutes: 02:00 and 02:30 are skipped once a year; the repeated hour runs once
    ("*/30 * * * *", "Europe/Berlin", (48 * DAYS - 2 * YEARS) / MONTHS),
    # Lord Howe Island moves its clocks by 30 minutes (02:00 -> 02:30): 02:15 is skipped once a year, 02:45 never
    ("15 2 * * *", "Australia/Lord_Howe", (DAYS - YEARS) / MONTHS),
    ("45 2 * * *", "Australia/Lord_Howe", DAYS / MONTHS),
    # 29 February: 97 leap years in the cycle
    ("0 0 29 2 *", "UTC", 97 / MONTHS),
    # no daylight saving time in Tokyo
    ("30 2 * * *", "Asia/Tokyo", DAYS / MONTHS),
    ("0 9 * * MON-FRI", "UTC", 5 * WEEKS / MONTHS),
    ("0 9 * * 5-7", "UTC", 3 * WEEKS / MONTHS),  # Friday, Saturday and Sunday (7)
])
def test_runs_per_month(cron, zone, expected):
    assert runs_per_month(cron, zone) == pytest.approx(expected, rel=1e-12)


def test_an_unknown_time_zone_is_an_error(project):
    with pytest.raises(InputError) as info:
        estimate_of(project, """
            cloud_provider: aws
            schedule: {cron: "0 3 * * *", timezone: Europe/Atlantis}
            runtime_environment: {compute_type: lambda, memory_mb: 1024}
        """)
    assert "error: infrastructure.schedule.timezone: unknown time zone (did you mean 'Europe/Athens'?)" in str(info.value)


# --- the price file -----------------------------------------------------------------------------------


def test_every_shipped_price_has_unit_currency_date_source_and_regions():
    import yaml
    from importlib.resources import files

    raw = yaml.safe_load(files("dativo_ingest").joinpath("prices.yaml").read_text())["prices"]
    assert raw
    for key, entry in raw.items():
        assert set(entry) == {"unit", "currency", "effective", "source", "regions"}, key
        assert isinstance(entry["unit"], str) and entry["unit"], key
        assert entry["currency"] == "USD", key
        assert isinstance(entry["effective"], dt.date), key
        assert re.match(r"^https://(aws\.amazon\.com|cloud\.google\.com)/", entry["source"]), key
        assert entry["regions"] and all(isinstance(v, (int, float)) and v > 0 for v in entry["regions"].values()), key


def test_the_shipped_prices_cover_every_compute_type_in_the_tested_regions():
    prices = shipped_prices()
    for region in ("us-east-1", "eu-west-1"):
        for key in ("aws.fargate.vcpu_hour", "aws.fargate.memory_gb_hour", "aws.fargate.ephemeral_gb_hour",
                    "aws.lambda.gb_second", "aws.lambda.request", "aws.lambda.ephemeral_gb_second",
                    "aws.ebs.gp3_gb_month", *(f"aws.ec2.{name}" for name, _, _ in compute.EC2_TYPES)):
            assert region in prices[key].regions, (key, region)
    for region in ("us-central1", "europe-west4"):
        for key in ("gcp.cloud_run.vcpu_second", "gcp.cloud_run.memory_gib_second", "gcp.pd.balanced_gb_month",
                    "gcp.gce.e2.vcpu_hour", "gcp.gce.e2.memory_gb_hour"):
            assert region in prices[key].regions, (key, region)
    for key in ("gcp.gce.e2.vcpu_hour", "gcp.gce.e2.memory_gb_hour", "gcp.gce.e2_custom.vcpu_hour",
                "gcp.gce.e2_custom.memory_gb_hour", "gcp.gke_autopilot.vcpu_hour", "gcp.gke_autopilot.memory_gb_hour"):
        assert "us-central1" in prices[key].regions, key


# --- prices: overrides --------------------------------------------------------------------------------

OVERRIDES = """
prices:
  aws.fargate.vcpu_hour:
    source: contract ACME-2026
    effective: 2026-01-01
    regions: {us-east-1: 0.03, ap-southeast-2: 0.05}
  aws.ec2.c7i.large:
    regions: {us-east-1: 0.0893}
"""


def test_overrides_replace_and_extend_prices_per_region(project):
    write_tree(project.root, {"dativo-tf.yaml": (project.root / "dativo-tf.yaml").read_text() + OVERRIDES})
    table = price_table(ProjectSettings.load(project.root / "dativo-tf.yaml"))
    vcpu = table["aws.fargate.vcpu_hour"]
    assert vcpu.regions == {**shipped_prices()["aws.fargate.vcpu_hour"].regions, "us-east-1": 0.03, "ap-southeast-2": 0.05}
    assert (vcpu.unit, vcpu.source, vcpu.effective) == ("vCPU-hour", "contract ACME-2026", "2026-01-01")
    assert table["aws.fargate.memory_gb_hour"] == shipped_prices()["aws.fargate.memory_gb_hour"]
    assert (table["aws.ec2.c7i.large"].unit, table["aws.ec2.c7i.large"].source) == ("instance-hour", "dativo-tf.yaml prices")


def test_an_overridden_price_is_used_and_a_new_instance_type_gets_a_price(project):
    e = estimate_of(project, """
        cloud_provider: aws
        runtime_environment:
          compute_type: ec2_instance
          instance_type: c7i.large
          network: {subnet_ids: [subnet-1]}
    """, extra="finops: {expected_runtime_minutes: 60}\n", settings_extra=OVERRIDES)
    assert e.per_run_usd == pytest.approx(0.0893)
    assert e.always_on_usd == pytest.approx(30 * P("aws.ebs.gp3_gb_month", "us-east-1"))


@pytest.mark.parametrize("override, message", [
    ("  aws.fargate.vcpu_hours: {regions: {us-east-1: 0.03}}\n", "prices.aws.fargate.vcpu_hours: unknown price key"),
    ("  aws.fargate.vcpu_hour: {unit: vCPU-second, regions: {us-east-1: 0.03}}\n",
     "prices.aws.fargate.vcpu_hour: unit 'vCPU-second' does not match the price's unit; allowed: 'vCPU-hour'"),
    ("  aws.ec2.m6i.large: {currency: EUR, regions: {us-east-1: 0.09}}\n", "prices.aws.ec2.m6i.large.currency"),
    ("  aws.ec2.m6i.large: {regions: {us-east-1: -1}}\n", "prices.aws.ec2.m6i.large.regions.us-east-1"),
    ("  aws.ec2.m6i.large: {region: {us-east-1: 1}}\n", "prices.aws.ec2.m6i.large.region: unknown key"),
])
def test_a_bad_override_names_the_settings_file_line_and_key(project, override, message):
    write_tree(project.root, {"dativo-tf.yaml": (project.root / "dativo-tf.yaml").read_text() + "prices:\n" + override})
    with pytest.raises(InputError) as info:
        price_table(ProjectSettings.load(project.root / "dativo-tf.yaml"))
    assert re.search(r"dativo-tf\.yaml:\d+: error: " + re.escape(message), str(info.value)), str(info.value)


# --- unknown region -----------------------------------------------------------------------------------


def test_a_region_without_a_price_is_unknown_with_a_warning_never_a_number(project):
    e = estimate_of(project, """
        cloud_provider: aws
        region: ap-southeast-2
        runtime_environment: {compute_type: lambda, memory_mb: 1024, timeout_seconds: 60}
    """)
    assert (e.per_run_usd, e.monthly_usd, format_usd(e.monthly_usd)) == (None, None, "unknown")
    assert e.warnings == ["no price for aws.lambda.gb_second, aws.lambda.request in region ap-southeast-2: cost "
                          "unknown; add it under prices: in dativo-tf.yaml"]


def test_the_cost_command_shows_unknown_cells_and_warns_on_stderr(project, monkeypatch):
    project.job("far", "cloud_provider: aws\nregion: ap-southeast-2\n"
                       "runtime_environment: {compute_type: lambda, memory_mb: 1024, timeout_seconds: 60}\n")
    result = run(["cost"], project.root, monkeypatch)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "acme/prod/far" in line)
    assert row.split()[-3:] == ["unknown", "$0.00", "unknown"]
    assert "jobs/far.yaml: warning: no price for aws.lambda.gb_second" in result.stderr
    assert "warning" not in result.stdout


# --- the cost command: formats, roll-ups, budgets -----------------------------------------------------


def _example_estimates():
    project = ProjectSettings.load(EXAMPLES / "dativo-tf.yaml")
    from dativo_ingest.discovery import find_jobs

    jobs = [JobConfig.from_yaml(p, project_root=project.root) for p in find_jobs(project)]
    return [estimate(j, project) for j in jobs if j.infrastructure is not None]


def test_json_lists_every_job_and_rolls_them_up_by_cost_center(examples_copy, monkeypatch):
    result = run(["cost", "--format", "json"], examples_copy, monkeypatch)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    estimates = _example_estimates()
    assert {j["workspace"] for j in data["jobs"]} == {e.workspace for e in estimates}
    centers = {e.cost_center for e in estimates}
    assert [g["key"] for g in data["groups"]] == sorted(centers)
    for group in data["groups"]:
        members = [j for j in data["jobs"] if j["cost_center"] == group["key"]]
        assert group["monthly_usd"] == pytest.approx(sum(j["monthly_usd"] for j in members if j["monthly_usd"] is not None))
        assert group["unknown_jobs"] == sum(1 for j in members if j["monthly_usd"] is None)
    assert data["total_monthly_usd"] == pytest.approx(sum(g["monthly_usd"] for g in data["groups"]))
    ecs = next(j for j in data["jobs"] if j["workspace"] == "acme/production/orders_ecs")
    assert ecs["monthly_usd"] == pytest.approx(ecs["runs_per_month"] * ecs["per_run_usd"] + ecs["always_on_usd"])


def test_paths_limit_the_estimate_to_those_jobs(examples_copy, monkeypatch):
    result = run(["cost", "jobs/acme/orders_ecs.yaml", "--format", "json"], examples_copy, monkeypatch)
    assert result.exit_code == 0, result.output
    assert [j["workspace"] for j in json.loads(result.stdout)["jobs"]] == ["acme/production/orders_ecs"]


def test_by_job_and_by_tag_roll_ups(examples_copy, monkeypatch):
    by_job = json.loads(run(["cost", "--format", "json", "--by", "job"], examples_copy, monkeypatch).stdout)
    assert [g["jobs"] for g in by_job["groups"]] == [[g["key"]] for g in by_job["groups"]]
    by_env = json.loads(run(["cost", "--format", "json", "--by", "environment"], examples_copy, monkeypatch).stdout)
    assert {g["key"] for g in by_env["groups"]} == {"production", "staging"}
    assert by_env["total_monthly_usd"] == pytest.approx(by_job["total_monthly_usd"])


def test_table_and_markdown_show_each_job_a_subtotal_per_cost_center_and_the_total(examples_copy, monkeypatch):
    estimates = _example_estimates()
    table = run(["cost"], examples_copy, monkeypatch)
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["COST", "CENTER", "JOB"]
    for e in estimates:
        row = next(line for line in lines if f" {e.workspace} " in line)
        assert row.startswith(e.cost_center) and row.rstrip().endswith(format_usd(e.monthly_usd, e.upper_bound))
    for group in roll_up(estimates, budgets=ProjectSettings.load(EXAMPLES / "dativo-tf.yaml").base.budgets):
        subtotal = next(line for line in lines if line.startswith(group.key) and " subtotal " in line)
        if group.budget_usd is not None:
            assert subtotal.endswith(format_usd(group.budget_usd))
    groups = roll_up(estimates, budgets=ProjectSettings.load(EXAMPLES / "dativo-tf.yaml").base.budgets)
    subtotals = [line for line in lines if " subtotal " in line]
    assert [line.split()[0] for line in subtotals] == [g.key for g in groups]
    assert next(line for line in lines if line.startswith("TOTAL"))
    markdown = run(["cost", "--format", "markdown"], examples_copy, monkeypatch).stdout
    assert markdown.startswith("| COST CENTER | JOB | COMPUTE | REGION | RUNS/MONTH | PER RUN | ALWAYS ON | MONTHLY "
                               "| BUDGET |\n|---|---|---|---|---:|---:|---:|---:|---:|\n")
    assert sum(1 for line in markdown.splitlines() if line.startswith("| ")) == 1 + len(estimates) + len(groups) + 1


def test_budgets_check_exits_1_when_a_cost_center_is_over(examples_copy, monkeypatch):
    settings = examples_copy / "dativo-tf.yaml"
    text = settings.read_text()
    assert run(["cost", "--check"], examples_copy, monkeypatch).exit_code == 0
    settings.write_text(text.replace("WEB-100: 150", "WEB-100: 1"))
    over = run(["cost", "--check"], examples_copy, monkeypatch)
    assert over.exit_code == 1
    assert re.search(r"over budget: CostCenter WEB-100: [\d,.]+ USD/month estimated, budget 1\.00", over.stderr)
    subtotal = next(line for line in over.stdout.splitlines() if line.startswith("WEB-100") and " subtotal " in line)
    assert subtotal.endswith("$1.00 OVER")
    assert run(["cost"], examples_copy, monkeypatch).exit_code == 0  # only --check fails


@pytest.mark.parametrize("bad, message", [
    ("budgets: {WEB-100: -5}\n", "budgets.WEB-100"),
    ("budgets: [WEB-100]\n", "budgets"),
])
def test_bad_budgets_exit_2(examples_copy, monkeypatch, bad, message):
    settings = examples_copy / "dativo-tf.yaml"
    settings.write_text(re.sub(r"budgets:\n(  .*\n)+", "", settings.read_text()) + bad)
    result = run(["cost"], examples_copy, monkeypatch)
    assert result.exit_code == 2 and message in result.stderr and result.stdout == ""


def test_budgets_per_environment_are_refused(examples_copy, monkeypatch):
    settings = examples_copy / "dativo-tf.yaml"
    settings.write_text(settings.read_text().replace("  production:\n", "  production:\n    budgets: {WEB-100: 1}\n"))
    result = run(["cost"], examples_copy, monkeypatch)
    assert result.exit_code == 2
    assert re.search(r"dativo-tf\.yaml:\d+: error: environments\.production\.budgets: budgets apply to the whole project",
                     result.stderr), result.stderr


def test_an_invalid_job_exits_2_and_prints_no_estimate(examples_copy, monkeypatch):
    job = examples_copy / "jobs/acme/orders_ecs.yaml"
    job.write_text(job.read_text().replace("  project: order-analytics\n",
                                           "  project: order-analytics\n  expected_runtime_minutes: 600\n"))
    result = run(["cost"], examples_copy, monkeypatch)
    assert result.exit_code == 2 and result.stdout == ""
    assert "jobs/acme/orders_ecs.yaml:" in result.stderr and "finops.expected_runtime_minutes" in result.stderr


def test_a_job_without_cost_center_rolls_up_under_none(project):
    e = estimate_of(project, "cloud_provider: aws\nruntime_environment: {compute_type: lambda, memory_mb: 128}\n")
    e.tags.pop("CostCenter")
    assert [g.key for g in roll_up([e])] == ["(none)"]


# --- the estimate elsewhere: tags --explain, Dagster ----------------------------------------------------


def test_tags_explain_prints_the_estimate_after_the_table(examples_copy, monkeypatch):
    result = run(["tags", "jobs/acme/orders_ecs.yaml", "--explain"], examples_copy, monkeypatch)
    assert result.exit_code == 0, result.output
    project = ProjectSettings.load(examples_copy / "dativo-tf.yaml")
    expected = estimate(JobConfig.from_yaml(examples_copy / "jobs/acme/orders_ecs.yaml", project.root), project)
    assert result.stdout.splitlines()[-1] == f"Estimated cost: {expected.summary()}"


def test_the_dagster_asset_carries_the_monthly_estimate():
    import dagster as dg

    from dativo_ingest.dagster_assets import build_definitions

    defs = build_definitions(EXAMPLES / "dativo-tf.yaml")
    metadata = {spec.key.to_user_string(): spec.metadata for a in defs.assets for spec in a.specs}
    for e in _example_estimates():
        meta = metadata[e.workspace]
        assert meta["estimated_cost"] == e.summary()
        if e.monthly_usd is None:
            assert "estimated_monthly_cost_usd" not in meta
        else:
            assert meta["estimated_monthly_cost_usd"] == dg.MetadataValue.float(round(e.monthly_usd, 2))


@pytest.mark.parametrize("value, upper, text", [
    (1234.5, False, "$1,234.50"), (0.004, False, "$0.0040"), (0, False, "$0.00"), (12, True, "≤ $12.00"),
    (None, False, "unknown"),
])
def test_format_usd(value, upper, text):
    assert format_usd(value, upper) == text


def test_the_readme_shows_what_cost_prints_on_the_examples_and_every_shipped_price(examples_copy, monkeypatch):
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Cost\n"):]
    shown = section[section.index("```text\n") + len("```text\n"):section.index("\n```\n")]
    assert shown + "\n" == run(["cost"], examples_copy, monkeypatch).stdout
    for key, price in shipped_prices().items():
        row = next(line for line in section.splitlines() if line.startswith(f"| `{key}` |"))
        plain = [format(Decimal(repr(value)), "f") for value in price.regions.values()]
        assert price.source in row and all(f" {value} " in row for value in plain), row
