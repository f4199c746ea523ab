"""`dativo-tf cost` output: the estimates rolled up, as a text table, Markdown or JSON."""

from __future__ import annotations

from dativo_ingest import hcl
from dativo_ingest.cost import CURRENCY, Estimate, Group, format_usd

GROUP_TITLES = {"cost_center": "COST CENTER", "project": "PROJECT", "tenant": "TENANT", "environment": "ENVIRONMENT"}
COLUMNS = ("JOB", "COMPUTE", "REGION", "RUNS/MONTH", "PER RUN", "ALWAYS ON", "MONTHLY")
RIGHT = {"RUNS/MONTH", "PER RUN", "ALWAYS ON", "MONTHLY", "BUDGET"}
UPPER_BOUND_NOTE = "≤: upper bound (a run lasts timeout_seconds; set finops.expected_runtime_minutes)"


def _runs(e: Estimate) -> str:
    return f"{e.runs_per_month:,.2f}" if e.scheduled else "1 (per manual run)"


def _total(groups: list[Group]) -> tuple[float, bool, int]:
    return (sum(g.monthly_usd for g in groups), any(g.upper_bound for g in groups), sum(g.unknown for g in groups))


def _group_total(monthly: float, upper: bool, unknown: int) -> str:
    text = format_usd(monthly, upper)
    return f"{text} + {unknown} unknown" if unknown else text


def _budget(group: Group) -> str:
    if group.budget_usd is None:
        return ""
    return format_usd(group.budget_usd) + (" OVER" if group.over_budget else "")


def rows(groups: list[Group], by: str) -> list[tuple[str, ...]]:
    """Header, one row per job, a subtotal per group (unless per job) and the total. A BUDGET column when a
    group has a budget."""
    grouped = by != "job"
    budgets = any(g.budget_usd is not None for g in groups)
    out: list[tuple[str, ...]] = [((GROUP_TITLES[by],) if grouped else ()) + COLUMNS + (("BUDGET",) if budgets else ())]
    for group in groups:
        for e in group.estimates:
            cells = (e.workspace, e.compute_type, e.region, _runs(e), format_usd(e.per_run_usd, e.upper_bound),
                     format_usd(e.always_on_usd), format_usd(e.monthly_usd, e.upper_bound))
            out.append(((group.key,) if grouped else ()) + cells + (("",) if budgets else ()))
        if grouped:
            total = _group_total(group.monthly_usd, group.upper_bound, group.unknown)
            out.append((group.key, "subtotal", "", "", "", "", "", total) + ((_budget(group),) if budgets else ()))
    monthly, upper, unknown = _total(groups)
    out.append((("TOTAL",) if grouped else ()) + ("" if grouped else "TOTAL", "", "", "", "", "",
                                                      _group_total(monthly, upper, unknown))
               + (("",) if budgets else ()))
    return out


def render(groups: list[Group], estimates: list[Estimate], by: str, fmt: str) -> str:
    if fmt == "json":
        monthly, upper, unknown = _total(groups)
        return hcl.dumps_json({
            "currency": CURRENCY, "by": by, "total_monthly_usd": monthly, "upper_bound": upper,
            "unknown_jobs": unknown, "groups": [g.as_dict() for g in groups],
            "jobs": [e.as_dict() for g in groups for e in g.estimates],
        })
    table = rows(groups, by)
    header = table[0]
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---:" if h in RIGHT else "---" for h in header) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table[1:]]
        return "\n".join(lines) + f"\n\nEstimated monthly cost in {CURRENCY}. {UPPER_BOUND_NOTE}.\n"
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(widths[i]) if header[i] in RIGHT else cell.ljust(widths[i])
                       for i, cell in enumerate(row)).rstrip() for row in table]
    return "\n".join(lines) + f"\n\n{UPPER_BOUND_NOTE}\n"
