"""Turn pydantic validation errors into InputErrors that name the file, the line and the key."""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

from pydantic import BaseModel, ValidationError

from dativo_ingest.errors import InputError, InputErrors
from dativo_ingest.yamlsource import line_of

M = TypeVar("M", bound=BaseModel)


def key_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found:
                return found
    return None


def allowed_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The keys the model accepts at `loc` (a path of field names), for 'did you mean' hints."""
    for part in loc:
        field = model.model_fields.get(str(part))
        inner = _model_in(field.annotation) if field else None
        if inner is None:
            return []
        model = inner
    return sorted(f.alias or name for name, f in model.model_fields.items())


def validate(model: type[M], data: Any, *, path: Path | str, text: str, prefix: Sequence[str | int] = ()) -> M:
    """Validate `data` against `model`, raising every problem as one InputErrors."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
            full = [*prefix, *loc]
            key = key_path(full)
            if err["type"] == "extra_forbidden":
                allowed = allowed_keys(model, loc[:-1])
                near = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                message = f"unknown key{hint} Allowed keys: {', '.join(allowed)}"
            elif err["type"] == "missing":
                message = "required key is missing"
            elif err["type"] == "value_error":  # our own validators' messages, without pydantic's prefix
                message = f"{err['ctx']['error']} (got {err.get('input')!r})"
            else:
                message = f"{err['msg']} (got {err.get('input')!r})"
            errors.append(InputError(message, path=path, line=line_of(text, full), key=key))
        raise InputErrors(errors) from None


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def check_near_misses(data: dict, guarded: Sequence[str], *, path: Path | str, text: str,
                      prefix: Sequence[str | int] = ()) -> None:
    """Unknown top-level keys are kept (the schema is Dativo's), but a key within edit distance 2 of a key we
    read is a typo that would silently drop what it holds (`infrastucture:`, `complience:`): an error."""
    errors = []
    for key in data:
        if not isinstance(key, str) or key in guarded:
            continue
        for wanted in guarded:
            # (lengths more than 2 apart are more than 2 edits apart)
            if wanted not in data and abs(len(key) - len(wanted)) <= 2 and edit_distance(key.lower(), wanted) <= 2:
                errors.append(InputError(
                    f"unknown key; did you mean {wanted!r}? (a misspelt {wanted!r} block would be ignored)",
                    path=path, line=line_of(text, [*prefix, key]), key=key_path([*prefix, key]),
                ))
    if errors:
        raise InputErrors(errors)
