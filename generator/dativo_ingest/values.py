"""Input values that reach generated files: text that reaches a script, command, cron expression or comment
must hold no control characters, and every value written for Terraform must be one Terraform can read."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Sequence

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from dativo_ingest.errors import InputError, InputErrors
from dativo_ingest.paths import NO_CONTROL, control_char
from dativo_ingest.validation import key_path
from dativo_ingest.yamlsource import line_of

INT64 = (-(2**63), 2**63 - 1)
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def substitute(template: str, names: dict[str, str]) -> str:
    """`{tenant_id}`-style placeholders replaced by plain text: only the given names, no format specs or
    attributes (`str.format` would render `{tenant_id.__class__}` or pad to any width). KeyError: the bad one."""
    def sub(match: re.Match) -> str:
        if match.group(1) not in names:
            raise KeyError(match.group())
        return names[match.group(1)]

    return _PLACEHOLDER.sub(sub, template)


def placeholders(*names: str) -> AfterValidator:
    """A settings string that may use only these `{name}` placeholders."""
    allowed = ", ".join(f"{{{name}}}" for name in names)

    def check(value: str) -> str:
        try:
            substitute(value, dict.fromkeys(names, ""))
        except KeyError as exc:
            raise PydanticCustomError("placeholder", f"unknown placeholder {exc.args[0]}; allowed placeholders: "
                                      f"{allowed}") from None
        return value

    return AfterValidator(check)


def _no_control(value: str) -> str:
    char = control_char(value)
    if char:
        raise PydanticCustomError("control_character", f"contains the control character {char}; allowed: {NO_CONTROL}")
    return value


# A string that reaches a shell script, container command, cron expression or header comment.
NoControl = AfterValidator(_no_control)
ScriptSafe = Annotated[str, NoControl]


def unreadable(value: Any) -> str | None:
    """Why Terraform cannot read `value` (JSON-like: null, bool, number, string, list, map), or None."""
    if value is None or isinstance(value, (bool, str)):
        return None
    if isinstance(value, int):
        return None if INT64[0] <= value <= INT64[1] else "an integer outside the signed 64-bit range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} (not a finite number)"
    if isinstance(value, (list, dict)):
        return None
    kinds = {bytes: "binary data (!!binary)", set: "a set (!!set)"}
    for kind, what in kinds.items():
        if isinstance(value, kind):
            return what
    return f"a {type(value).__name__} (a date or another YAML type)"


ALLOWED = ("allowed: strings, booleans, finite numbers (integers within signed 64-bit), null, "
           "lists and mappings with string keys (quote dates and timestamps)")


def terraform_problems(value: Any, loc: Sequence[str | int]) -> list[tuple[tuple[str | int, ...], str]]:
    """(key path, problem) for every part of `value` Terraform cannot read, walking lists and mappings."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [(tuple(loc), value)]
    while stack:
        where, item = stack.pop()
        problem = unreadable(item)
        if problem:
            problems.append((where, f"{problem} cannot be passed to Terraform; {ALLOWED}"))
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    problems.append((where, f"key {key!r} is not a string; {ALLOWED}"))
                else:
                    stack.append(((*where, key), child))
        elif isinstance(item, list):
            stack.extend(((*where, i), child) for i, child in enumerate(item))
    return sorted(problems, key=lambda p: [str(x) for x in p[0]])


def check_terraform_values(data: dict, locs: Sequence[Sequence[str]], *, path: Any, text: str,
                           prefix: Sequence[str | int] = ()) -> None:
    """Raise every problem of the values at `locs` (key paths into the raw YAML `data`) as InputErrors."""
    errors = []
    for loc in locs:
        value: Any = data
        for part in loc:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            continue
        for where, problem in terraform_problems(value, loc):
            full = (*prefix, *where)
            errors.append(InputError(problem, path=path, line=line_of(text, full), key=key_path(full)))
    if errors:
        raise InputErrors(errors)
