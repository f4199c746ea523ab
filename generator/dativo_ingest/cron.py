"""Standard 5-field cron: validation, and conversion to AWS's 6-field `cron(...)` form.

AWS differs from standard cron in three ways: a sixth field (year), day-of-week counts 1-7 from Sunday
(standard: 0-7, 0 and 7 both Sunday), and exactly one of day-of-month / day-of-week must be `?`.
"""

from __future__ import annotations

import re

MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
FIELDS = [("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 7)]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_ITEM = re.compile(r"^(\*|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/([0-9]+))?\Z")


class CronError(ValueError):
    pass


def _number(token: str, field: int) -> int:
    name, low, high = FIELDS[field]
    names = MONTHS if field == 3 else DAYS if field == 4 else []
    if token.upper() in names:
        return names.index(token.upper()) + (1 if field == 3 else 0)
    if not token.isdigit():
        raise CronError(f"{token!r} is not a valid {name} value")
    number = int(token)
    if not low <= number <= high:
        raise CronError(f"{name} {number} is out of range {low}-{high}")
    return number


def parse(expression: str) -> list[str]:
    """Validate a standard cron expression; returns its five fields (macros expanded)."""
    expression = MACROS.get(expression.strip().lower(), expression.strip())
    fields = expression.split()
    if len(fields) != 5:
        raise CronError(
            f"{expression!r} has {len(fields)} fields; use standard 5-field cron "
            "'minute hour day-of-month month day-of-week' (e.g. '0 3 * * *') or @daily/@hourly/..."
        )
    for index, field in enumerate(fields):
        for item in field.split(","):
            match = _ITEM.match(item)
            if not match:
                raise CronError(f"{item!r} is not a valid {FIELDS[index][0]} item")
            base, step = match.groups()
            if step is not None and int(step) == 0:
                raise CronError(f"step 0 in {item!r}")
            if base != "*":
                bounds = [_number(part, index) for part in base.split("-")]
                if len(bounds) == 2 and bounds[0] > bounds[1]:
                    raise CronError(f"range {base!r} runs backwards")
    return fields


def _aws_day_of_week(field: str) -> str:
    def convert(token: str) -> str:
        return token if not token.isdigit() else str(int(token) % 7 + 1)

    items = []
    for item in field.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            items.append(item)
            continue
        parts = base.split("-")
        if len(parts) == 2 and parts[1] == "7" and parts[0].isdigit():
            if step:
                raise CronError(f"day-of-week {item!r}: a stepped range ending at 7 has no AWS equivalent")
            parts[1] = "6"  # 7 is Sunday: the range becomes `a-6` plus Sunday (AWS 1)
            items.append("-".join(convert(p) for p in parts) + ",1")
            continue
        items.append("-".join(convert(p) for p in parts) + (f"/{step}" if step else ""))
    return ",".join(items)


def to_aws(expression: str) -> str:
    """`0 3 * * *` -> `cron(0 3 * * ? *)`."""
    fields = parse(expression)
    # `*/n` is written `low/n` in AWS (0/15 rather than */15)
    fields = [",".join(f"{FIELDS[i][1] if i < 4 else 0}/{item[2:]}" if item.startswith("*/") else item
                       for item in field.split(",")) for i, field in enumerate(fields)]
    minute, hour, dom, month, dow = fields
    if dow == "*":
        dow = "?"
    elif dom == "*":
        dom, dow = "?", _aws_day_of_week(dow)
    else:
        raise CronError(
            "AWS cron cannot restrict both day-of-month and day-of-week; set one of them to '*'"
        )
    return f"cron({minute} {hour} {dom} {month} {dow} *)"


def expand(expression: str) -> tuple[list[set[int]], bool, bool]:
    """The values each field matches: ([minutes, hours, days-of-month, months, days-of-week (0 = Sunday)],
    day-of-month restricted, day-of-week restricted). When both day fields are restricted a day matches
    either one (standard cron)."""
    fields = parse(expression)
    out: list[set[int]] = []
    for index, field in enumerate(fields):
        _, low, high = FIELDS[index]
        values: set[int] = set()
        for item in field.split(","):
            base, _, step = item.partition("/")
            if base == "*":
                start, end = low, high
            else:
                bounds = [_number(part, index) for part in base.split("-")]
                start, end = bounds[0], bounds[-1] if len(bounds) == 2 else (high if step else bounds[0])
            values.update(range(start, end + 1, int(step) if step else 1))
        if index == 4:
            values = {v % 7 for v in values}
        out.append(values)
    return out, not fields[2].startswith("*"), not fields[4].startswith("*")
