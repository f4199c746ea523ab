"""The offline cost estimate of a job: what one run costs, how often it runs, and what it costs a month.

    monthly = runs per month x cost per run + always-on cost per month

Cost per run, by compute type, for the job's region and its duration (see `duration` below):
  ecs_task      Fargate Linux/x86: vCPU-hours + GB-hours of memory + GB-hours of ephemeral storage above the
                20 GB every task gets. Billed per second, one minute minimum.
  lambda        GB-seconds of memory + one request + GB-seconds of ephemeral storage above 512 MB.
  ec2_instance  instance-hours of the instance type (per second, one minute minimum).
                Always on: the gp3 root volume, GB-month (billed while the instance is stopped).
  cloud_run     Cloud Run jobs: vCPU-seconds + GiB-seconds of memory.
  gce_instance  vCPU-hours + GB-hours of an E2 machine type (predefined or custom rates); any other
                machine type: the instance-hour price `gcp.gce.machine.<type>` (one minute minimum).
                Always on: the pd-balanced boot disk, GB-month.
  gke_pod       GKE Autopilot general-purpose Pod requests: vCPU-hours + GB-hours. On a Standard cluster
                the nodes are billed whether or not the pod runs; the Autopilot price is then the pod's
                share. Ephemeral storage requests are not priced.
Not modelled: data transfer, logs, the scheduler's own fees, free tiers, discounts (set negotiated prices
under `prices:` in dativo-tf.yaml instead), and the time a VM takes to boot.

Duration: `finops.expected_runtime_minutes` (the job's, else its asset's); else `timeout_seconds`, and the
estimate is then an upper bound. A job with neither has an unknown cost.

Runs per month: the cron schedule evaluated in its IANA time zone over the 400-year Gregorian cycle
(2001-01-01 to 2400-12-31: 146097 days, exactly 4800 months, after which the calendar repeats), divided
by 4800. Daylight saving time follows the zone's rules in zoneinfo (today's rules, extended): a local time
that does not exist (skipped when clocks go forward) does not run, and a local time that happens twice
(clocks go back) runs once, as EventBridge Scheduler documents. An unscheduled job counts one run: the
figure is "per manual run".

Prices: dativo_ingest/prices.yaml (shipped package data, outside templates/ so that a price change does
not invalidate the render cache; each entry with unit, currency, date and source), overridden or
extended by `prices:` in dativo-tf.yaml. A price missing for the job's region makes its cost unknown, with
a warning; it is never guessed.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dativo_ingest import compute, cron
from dativo_ingest.config import AssetDefinition, JobConfig
from dativo_ingest.errors import CloudLimitError, InputError
from dativo_ingest.project import ProjectSettings
from dativo_ingest.tags import merge_tags

CURRENCY = "USD"
GROUPS = {"cost_center": "CostCenter", "project": "Project", "tenant": "TenantId", "environment": "Environment"}
# the 400-year Gregorian cycle the runs are counted over
CYCLE_START, CYCLE_DAYS, CYCLE_MONTHS = dt.date(2001, 1, 1), 146097, 4800
FARGATE_FREE_EPHEMERAL_GB, LAMBDA_FREE_EPHEMERAL_MB, MINIMUM_SECONDS = 20, 512, 60
# prices users may add under keys not shipped: one instance-hour price per EC2 / Compute Engine type
_OPEN_KEYS = re.compile(r"^(aws\.ec2|gcp\.gce\.machine)\.[a-z0-9][a-z0-9.-]*\Z")
_E2_PREDEFINED = re.compile(r"^e2-(standard|highmem|highcpu)-(\d+)\Z")
_E2_CUSTOM = re.compile(r"^(?:e2-)?custom-(\d+)-(\d+)\Z")
_E2_GB_PER_VCPU = {"standard": 4, "highmem": 8, "highcpu": 1}


def format_usd(value: float | None, upper_bound: bool = False) -> str:
    """`$1,234.56`; `unknown` for None; `≤ $12.00` for an upper bound; sub-cent amounts keep 4 decimals."""
    if value is None:
        return "unknown"
    text = f"${value:,.4f}" if 0 < value < 0.01 else f"${value:,.2f}"
    return f"≤ {text}" if upper_bound else text


# --- prices -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    key: str
    unit: str
    currency: str
    effective: str
    source: str
    regions: dict[str, float]


@lru_cache(maxsize=1)
def shipped_prices() -> dict[str, Price]:
    """The price file shipped in the package (dativo_ingest/prices.yaml)."""
    import yaml

    data = yaml.safe_load(files("dativo_ingest").joinpath("prices.yaml").read_text(encoding="utf-8"))
    return {
        key: Price(key, e["unit"], e["currency"], str(e["effective"]), e["source"],
                   {region: float(value) for region, value in e["regions"].items()})
        for key, e in data["prices"].items()
    }


def price_table(project: ProjectSettings, environment: str | None = None) -> dict[str, Price]:
    """The shipped prices with the project's `prices:` merged in (per region; the override's unit must
    match). New keys are allowed for EC2 instance types and Compute Engine machine types only."""
    overrides = project.for_environment(environment).prices
    table = dict(shipped_prices())
    for key, override in overrides.items():
        def error(message: str) -> InputError:
            from dativo_ingest.yamlsource import line_of

            return InputError(message, path=project.display_path, line=line_of(project.text, ["prices", key]),
                              key=f"prices.{key}")

        base = table.get(key)
        if base is None and not _OPEN_KEYS.match(key):
            raise error("unknown price key; allowed: the keys of the shipped prices.yaml ("
                        + ", ".join(sorted(k for k in table if not k.startswith("aws.ec2.")))
                        + "), aws.ec2.<instance type>, gcp.gce.machine.<machine type>")
        unit = base.unit if base else "instance-hour"
        if override.unit is not None and override.unit != unit:
            raise error(f"unit {override.unit!r} does not match the price's unit; allowed: {unit!r}")
        table[key] = Price(
            key, unit, override.currency,
            str(override.effective) if override.effective else (base.effective if base else "unknown"),
            override.source or f"{project.display_path} prices",
            {**(base.regions if base else {}), **override.regions},
        )
    return table


def budgets(project: ProjectSettings) -> dict[str, float]:
    """`budgets:` of dativo-tf.yaml: USD per month per cost center, for the whole project (top level only)."""
    from dativo_ingest.yamlsource import line_of

    for env, section in project.base.environments.items():
        if "budgets" in section:
            raise InputError("budgets apply to the whole project; set them at the top level, not per environment",
                             path=project.display_path, line=line_of(project.text, ["environments", env, "budgets"]),
                             key=f"environments.{env}.budgets")
    return dict(project.base.budgets)


# --- runs per month -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _calendar() -> tuple[tuple[int, int, int], ...]:
    """(month, day of month, day of week with 0 = Sunday) of every day of the cycle."""
    day, one, out = CYCLE_START, dt.timedelta(days=1), []
    for _ in range(CYCLE_DAYS):
        out.append((day.month, day.day, day.isoweekday() % 7))
        day += one
    return tuple(out)


@lru_cache(maxsize=64)
def _dst_days(zone: str) -> frozenset[int]:
    """Day indexes in the cycle around which the zone's UTC offset changes (checked at each local noon)."""
    tz = ZoneInfo(zone)
    days: set[int] = set()
    previous = None
    for index in range(CYCLE_DAYS + 1):
        day = CYCLE_START + dt.timedelta(days=index)
        offset = dt.datetime(day.year, day.month, day.day, 12, tzinfo=tz).utcoffset()
        if previous is not None and offset != previous:
            days.update((index - 1, index))
        previous = offset
    return frozenset(days)


def _exists(index: int, hour: int, minute: int, tz: ZoneInfo) -> bool:
    day = CYCLE_START + dt.timedelta(days=index)
    local = dt.datetime(day.year, day.month, day.day, hour, minute)
    there_and_back = local.replace(tzinfo=tz).astimezone(dt.timezone.utc).astimezone(tz).replace(tzinfo=None)
    return there_and_back == local


@lru_cache(maxsize=256)
def runs_per_month(expression: str, zone: str = "UTC") -> float:
    """Average runs per month of a cron schedule in an IANA time zone (method: see the module docstring)."""
    (minutes, hours, doms, months, dows), dom_restricted, dow_restricted = cron.expand(expression)
    either = dom_restricted and dow_restricted  # standard cron: then a day matches either field
    days = [index for index, (month, dom, dow) in enumerate(_calendar()) if month in months
            and ((dom in doms or dow in dows) if either else (dom in doms and dow in dows))]
    per_day = len(minutes) * len(hours)
    total = per_day * len(days)
    if zone not in ("UTC", "Etc/UTC"):
        tz = ZoneInfo(zone)
        for index in _dst_days(zone).intersection(days):
            total -= sum(not _exists(index, h, m, tz) for h in hours for m in minutes)
    return total / CYCLE_MONTHS


# --- the estimate -------------------------------------------------------------------------------------


@dataclass
class Line:
    """One priced quantity: per run, or per month when always on."""

    item: str
    quantity: float
    unit: str
    price_key: str
    unit_price: float | None  # None: no price for the region
    always_on: bool = False

    @property
    def usd(self) -> float | None:
        return None if self.unit_price is None else self.quantity * self.unit_price

    def as_dict(self) -> dict[str, Any]:
        return {"item": self.item, "quantity": self.quantity, "unit": self.unit, "price_key": self.price_key,
                "unit_price_usd": self.unit_price, "usd": self.usd,
                "per": "month" if self.always_on else "run"}


@dataclass
class Estimate:
    job: str  # the job file, relative to the project root
    workspace: str  # tenant/environment/job
    cloud: str
    compute_type: str
    region: str
    runs_per_month: float
    scheduled: bool  # False: runs_per_month is 1, "per manual run"
    schedule: str  # the cron expression and time zone, or "per manual run"
    duration_seconds: float | None
    upper_bound: bool  # the duration is timeout_seconds, not the expected runtime
    lines: list[Line]
    tags: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    @property
    def per_run_usd(self) -> float | None:
        return _sum([line.usd for line in self.lines if not line.always_on]) if self.duration_seconds else None

    @property
    def always_on_usd(self) -> float | None:
        return _sum([line.usd for line in self.lines if line.always_on])

    @property
    def monthly_usd(self) -> float | None:
        per_run, always_on = self.per_run_usd, self.always_on_usd
        if per_run is None or always_on is None:
            return None
        return self.runs_per_month * per_run + always_on

    @property
    def known(self) -> bool:
        return self.monthly_usd is not None

    @property
    def cost_center(self) -> str | None:
        return self.tags.get("CostCenter")

    @property
    def project(self) -> str | None:
        return self.tags.get("Project")

    @property
    def environment(self) -> str | None:
        return self.tags.get("Environment")

    @property
    def tenant(self) -> str | None:
        return self.tags.get("TenantId")

    def group(self, by: str) -> str:
        """The roll-up key: a tag value (GROUPS), or the job itself for `job`."""
        if by == "job":
            return self.workspace
        return self.tags.get(GROUPS[by]) or "(none)"

    def summary(self) -> str:
        """One line: `≤ $12.34/month (30 runs/month x $0.41 per run + $0.00 always on)`."""
        runs = f"{self.runs_per_month:,.2f} runs/month" if self.scheduled else "per manual run"
        basis = "; upper bound: timeout_seconds" if self.upper_bound else ""
        return (f"{format_usd(self.monthly_usd, self.upper_bound)}/month ({runs} x "
                f"{format_usd(self.per_run_usd, self.upper_bound)} per run + {format_usd(self.always_on_usd)} "
                f"always on{basis})")

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job, "workspace": self.workspace, "cloud": self.cloud, "compute_type": self.compute_type,
            "region": self.region, "schedule": self.schedule, "scheduled": self.scheduled,
            "runs_per_month": self.runs_per_month, "duration_seconds": self.duration_seconds,
            "upper_bound": self.upper_bound, "per_run_usd": self.per_run_usd, "always_on_usd": self.always_on_usd,
            "monthly_usd": self.monthly_usd, "currency": CURRENCY, "cost_center": self.cost_center,
            "project": self.project, "environment": self.environment, "tenant": self.tenant, "tags": self.tags,
            "lines": [line.as_dict() for line in self.lines], "warnings": self.warnings,
        }


def _sum(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(values)  # type: ignore[misc]


_FROM_JOB: Any = object()


def estimate(job: JobConfig, project: ProjectSettings, asset: AssetDefinition | None = _FROM_JOB,
             prices: dict[str, Price] | None = None) -> Estimate:
    """The monthly cost estimate of one job with an infrastructure block. Pure: no network, no writes.
    `prices`: a price table (default: `price_table(project, job.environment)`)."""
    from dativo_ingest.render import workspace_dir

    infra = job.infrastructure
    if infra is None:
        raise job.error("the job has no infrastructure block, so nothing to estimate")
    settings = project.for_environment(job.environment)
    if asset is _FROM_JOB:
        asset = job._resolve_asset()
    prices = price_table(project, job.environment) if prices is None else prices
    runtime = compute.resolve(job)
    cloud = infra.cloud_provider
    region = infra.region or (settings.aws.region if cloud == "aws" else settings.gcp.region)
    tags = {k: t.value for k, t in merge_tags(job, asset, settings.tags.defaults).items()}

    if infra.schedule:
        zone = infra.schedule.timezone
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise job.error(f"unknown IANA time zone {zone!r} (like Europe/Berlin or UTC)",
                            "infrastructure", "schedule", "timezone") from None
        try:
            runs = runs_per_month(infra.schedule.cron, zone)
        except cron.CronError as exc:
            raise job.error(str(exc), "infrastructure", "schedule", cls=CloudLimitError) from None
        schedule = f"{infra.schedule.cron} ({zone})"
    else:
        runs, schedule = 1.0, "per manual run"

    warnings: list[str] = []
    expected, where = _expected_minutes(job, asset)
    if expected is not None:
        duration: float | None = expected * 60
        upper_bound = False
        if runtime.timeout_seconds is not None and duration > runtime.timeout_seconds:
            raise job.error(
                f"{expected:g} minutes{where[1]} is longer than timeout_seconds {runtime.timeout_seconds} "
                f"({runtime.timeout_seconds / 60:g} minutes), which stops the run; allowed: at most the timeout",
                *where[0])
    elif runtime.timeout_seconds is not None:
        duration, upper_bound = float(runtime.timeout_seconds), True
    else:
        duration, upper_bound = None, False
        warnings.append("no finops.expected_runtime_minutes and no timeout_seconds: the duration of a run, "
                        "and so its cost, is unknown")

    lines = LINES[runtime.compute_type](runtime, duration or 0.0)
    estimate = Estimate(
        job=job.relative_path, workspace=workspace_dir(job).as_posix(), cloud=cloud,
        compute_type=runtime.compute_type, region=region, runs_per_month=runs, scheduled=infra.schedule is not None,
        schedule=schedule, duration_seconds=duration, upper_bound=upper_bound, lines=[], tags=tags,
        warnings=warnings,
    )
    missing = []
    for item, quantity, unit, key, always_on in lines:
        entry = prices.get(key)
        value = entry.regions.get(region) if entry else None
        if value is None:
            missing.append(key)
        estimate.lines.append(Line(item, quantity, unit, key, value, always_on))
    if missing:
        warnings.append(f"no price for {', '.join(dict.fromkeys(missing))} in region {region}: cost unknown; "
                        "add it under prices: in dativo-tf.yaml")
    return estimate


def _expected_minutes(job: JobConfig, asset: AssetDefinition | None) -> tuple[float | None, tuple[tuple, str]]:
    """The expected runtime (the job's, else its asset's) and where an error about it points."""
    if job.finops is not None and job.finops.expected_runtime_minutes is not None:
        return job.finops.expected_runtime_minutes, (("finops", "expected_runtime_minutes"), "")
    if asset is not None and asset.finops is not None and asset.finops.expected_runtime_minutes is not None:
        return asset.finops.expected_runtime_minutes, (
            ("infrastructure", "runtime_environment", "timeout_seconds"),
            f" (finops.expected_runtime_minutes of the asset {asset.path.name})")
    return None, ((), "")


# (item, quantity, unit, price key, always on) per compute type, for a run of `seconds`
Quantity = tuple[str, float, str, str, bool]


def _billed(seconds: float) -> float:
    return max(seconds, MINIMUM_SECONDS) if seconds else 0.0


def _ecs_task(rt: compute.Runtime, seconds: float) -> list[Quantity]:
    hours = _billed(seconds) / 3600
    out = [("vCPU", rt.cpu_units / 1024 * hours, "vCPU-hour", "aws.fargate.vcpu_hour", False),
           ("memory", rt.memory_mb / 1024 * hours, "GB-hour", "aws.fargate.memory_gb_hour", False)]
    extra = (rt.derived.get("ephemeral_gib") or 0) - FARGATE_FREE_EPHEMERAL_GB
    if extra > 0:
        out.append(("ephemeral storage", extra * hours, "GB-hour", "aws.fargate.ephemeral_gb_hour", False))
    return out


def _lambda(rt: compute.Runtime, seconds: float) -> list[Quantity]:
    out = [("memory", rt.memory_mb / 1024 * seconds, "GB-second", "aws.lambda.gb_second", False),
           ("request", 1.0, "request", "aws.lambda.request", False)]
    extra = (rt.derived.get("ephemeral_mb") or 0) - LAMBDA_FREE_EPHEMERAL_MB
    if extra > 0:
        out.append(("ephemeral storage", extra / 1024 * seconds, "GB-second", "aws.lambda.ephemeral_gb_second", False))
    return out


def _ec2_instance(rt: compute.Runtime, seconds: float) -> list[Quantity]:
    instance = rt.derived["instance_type"]
    return [(f"instance {instance}", _billed(seconds) / 3600, "instance-hour", f"aws.ec2.{instance}", False),
            ("gp3 root volume", float(rt.derived["root_volume_gib"]), "GB-month", "aws.ebs.gp3_gb_month", True)]


def _cloud_run(rt: compute.Runtime, seconds: float) -> list[Quantity]:
    return [("vCPU", rt.cpu_units / 1000 * seconds, "vCPU-second", "gcp.cloud_run.vcpu_second", False),
            ("memory", rt.memory_mb / 1024 * seconds, "GiB-second", "gcp.cloud_run.memory_gib_second", False)]


def _gce_instance(rt: compute.Runtime, seconds: float) -> list[Quantity]:
    machine = rt.derived["machine_type"]
    hours = _billed(seconds) / 3600
    disk = ("pd-balanced boot disk", float(rt.derived["disk_gb"]), "GB-month", "gcp.pd.balanced_gb_month", True)
    predefined, custom = _E2_PREDEFINED.match(machine), _E2_CUSTOM.match(machine)
    if predefined or custom:
        if predefined:
            vcpus, memory_gb, family = int(predefined.group(2)), int(predefined.group(2)) * _E2_GB_PER_VCPU[
                predefined.group(1)], "e2"
        else:
            vcpus, memory_gb, family = int(custom.group(1)), int(custom.group(2)) / 1024, "e2_custom"
        return [(f"{machine} vCPU", vcpus * hours, "vCPU-hour", f"gcp.gce.{family}.vcpu_hour", False),
                (f"{machine} memory", memory_gb * hours, "GB-hour", f"gcp.gce.{family}.memory_gb_hour", False), disk]
    return [(f"machine {machine}", hours, "instance-hour", f"gcp.gce.machine.{machine}", False), disk]


def _gke_pod(rt: compute.Runtime, seconds: float) -> list[Quantity]:
    hours = seconds / 3600
    return [("vCPU", rt.cpu_units / 1000 * hours, "vCPU-hour", "gcp.gke_autopilot.vcpu_hour", False),
            ("memory", rt.memory_mb / 1024 * hours, "GB-hour", "gcp.gke_autopilot.memory_gb_hour", False)]


LINES = {"ecs_task": _ecs_task, "lambda": _lambda, "ec2_instance": _ec2_instance,
         "cloud_run": _cloud_run, "gce_instance": _gce_instance, "gke_pod": _gke_pod}


# --- roll-up ------------------------------------------------------------------------------------------


@dataclass
class Group:
    key: str
    estimates: list[Estimate]
    budget_usd: float | None = None

    @property
    def monthly_usd(self) -> float:
        """The sum of the known estimates (see `unknown`)."""
        return sum(e.monthly_usd for e in self.estimates if e.monthly_usd is not None)

    @property
    def unknown(self) -> int:
        return sum(1 for e in self.estimates if not e.known)

    @property
    def upper_bound(self) -> bool:
        return any(e.upper_bound for e in self.estimates)

    @property
    def over_budget(self) -> bool:
        return self.budget_usd is not None and self.monthly_usd > self.budget_usd

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "monthly_usd": self.monthly_usd, "upper_bound": self.upper_bound,
                "unknown_jobs": self.unknown, "jobs": [e.workspace for e in self.estimates],
                "budget_usd": self.budget_usd, "over_budget": self.over_budget}


def roll_up(estimates: list[Estimate], by: str = "cost_center", budgets: dict[str, float] | None = None) -> list[Group]:
    """Estimates grouped by a tag (GROUPS) or per job, sorted by key; budgets apply to cost centers."""
    groups: dict[str, list[Estimate]] = {}
    for e in estimates:
        groups.setdefault(e.group(by), []).append(e)
    budgets = budgets if by == "cost_center" else {}
    return [Group(key, sorted(members, key=lambda e: e.workspace), (budgets or {}).get(key))
            for key, members in sorted(groups.items())]
