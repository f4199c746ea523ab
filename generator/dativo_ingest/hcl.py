"""HCL native syntax: encode Python values, and lay text out exactly as `terraform fmt` does.

Templates write HCL freely; `format_hcl` then applies hclwrite's two layout rules:
  * indentation: two spaces per open bracket carried over from earlier lines;
  * alignment: in a run of consecutive lines that each hold a whole `name = value` attribute, the `=`
    signs line up one space after the longest name. A blank line, a block header, a closing brace or an
    attribute whose value opens a multi-line bracket ends the run.
Heredocs are left untouched, as terraform fmt does.

Rendering collects string literals apart (`literals`): the text laid out is then the same for every job of one
shape, so its layout is worked out once per process and each job's strings are put back into it.
"""

from __future__ import annotations

import json
import math
import os
import re
from functools import lru_cache
from typing import Any

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_KEYWORDS = {"true", "false", "null", "for", "in", "if", "else", "endif", "endfor"}
_OPEN, _CLOSE = "{[(", "}])"
_SCALAR_LIST_WIDTH = 60


_NEEDS_ESCAPE = re.compile(r'[\\"\x00-\x1f\x7f-\x9f\u2028\u2029]')
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match) -> str:
    ch = match.group()
    return _ESCAPES.get(ch) or f"\\u{ord(ch):04x}"


_PLAIN_TEXT = re.compile(r'[^\\"\x00-\x1f\x7f-\x9f\u2028\u2029${}%]*\Z')  # nothing to escape (most strings)


def escape(text: str) -> str:
    """The body of an HCL quoted string: escapes plus `${` -> `$${` and `%{` -> `%%{` (no templating)."""
    if _PLAIN_TEXT.match(text):
        return text
    return _escape(text)


@lru_cache(maxsize=4096)  # the start-up scripts' lines and other constant text recur in every job
def _escape(text: str) -> str:
    return _NEEDS_ESCAPE.sub(_escape_char, text).replace("${", "$${").replace("%{", "%%{")


def string(text: str) -> str:
    """A quoted HCL string. Within `literals()` the quoted text is a placeholder and the escaped text is kept."""
    if _kept is None:
        return f'"{escape(text)}"'
    _kept.append(escape(text))
    return f'"{_MARK}{len(_kept) - 1}{_END}"'


# Placeholders stand where a string's text will go. The nonce keeps text that did not come from `string` (a
# comment, a raw name) from ever being read as one: it changes with every process.
_MARK, _END = f"\ue000{os.urandom(6).hex()}:", "\ue001"
_PLACEHOLDER = re.compile(re.escape(_MARK) + r"(\d+)" + _END)
_kept: list[str] | None = None


def _put_back(text: str, kept: list[str] | None) -> str:
    """`text` with the strings `kept` in place of their placeholders."""
    if not kept or _MARK not in text:
        return text
    return _PLACEHOLDER.sub(lambda m: kept[int(m[1])], text)


def literals() -> _Literals:
    """Collect the text of every string `string` encodes in this block, in a list, placeholders in their place;
    `format_hcl(text, that list)` lays the text out and puts them back. Once escaped, a string holds no bare
    quote, newline or interpolation: the layout reads it as one token, whatever it says, wherever it stands.
    Only as a name before an aligned `=` does its width count (format_hcl then lays out the text with it in)."""
    return _Literals()


class _Literals:
    """The block `literals` opens: a class, not a generator, as it is entered for every file of every job (a
    generator's end is an exception)."""

    def __enter__(self) -> list[str]:
        global _kept
        self.previous, _kept = _kept, []
        return _kept

    def __exit__(self, *exc: object) -> None:
        global _kept
        _kept = self.previous


def key(name: str, quoted: bool = False) -> str:
    """An object key: bare when it is a plain identifier (unless `quoted`), quoted otherwise."""
    # never a placeholder (see `literals`): a key's width counts in the layout
    return name if not quoted and _IDENT.match(name) and name not in _KEYWORDS else f'"{escape(name)}"'


def is_identifier(name: str) -> bool:
    return bool(_IDENT.match(name)) and name not in _KEYWORDS


def _scalar(value: Any) -> str | None:
    if type(value) is str:  # the common case first
        return string(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no HCL representation")
        return repr(value) if value != int(value) or abs(value) >= 1e16 else str(int(value))
    if isinstance(value, str):
        return string(value)
    return None


def value(obj: Any) -> str:
    """A Python value as an HCL expression (multi-line for non-empty maps; `format_hcl` indents it)."""
    scalar = _scalar(obj)
    if scalar is not None:
        return scalar
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        lines = [f"{key(str(k))} = {value(v)}" for k, v in obj.items()]
        return "{\n" + "\n".join(lines) + "\n}"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[]"
        items = [value(v) for v in obj]
        one_line = "[" + ", ".join(items) + "]"
        # measured with the strings' own text, not their placeholders (see `literals`)
        if all(v is None or isinstance(v, (bool, int, float, str)) for v in obj) and len(
                _put_back(one_line, _kept)) <= _SCALAR_LIST_WIDTH:
            return one_line
        return "[\n" + "".join(f"{item},\n" for item in items) + "]"
    raise TypeError(f"cannot encode {type(obj).__name__} as HCL")


_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*\Z")


def attributes(mapping: dict[str, Any]) -> str:
    """A body of `name = value` lines, in the mapping's order. Attribute names cannot be quoted in HCL."""
    for name in mapping:
        if not _ATTRIBUTE_NAME.match(str(name)):
            raise ValueError(f"{name!r} is not a valid HCL attribute name")
    return "\n".join(f"{k} = {value(v)}" for k, v in mapping.items())


def laid_attributes(mapping: dict[str, Any], header: str | None = None) -> str:
    """`format_hcl(attributes(mapping))`, after a `header` of comment lines and a blank line when given, written
    laid out directly: while the values are encoded the alignment is known, so nothing is laid out twice."""
    for name in mapping:
        if not _ATTRIBUTE_NAME.match(str(name)):
            raise ValueError(f"{name!r} is not a valid HCL attribute name")
    lines = header.split("\n") if header is not None else []
    if lines and not (_comment_header(lines) and all(line == line.rstrip() for line in lines)):  # layout changes it
        with literals() as kept:
            text = attributes(mapping)
        return format_hcl(f"{header}\n\n{text}", kept)
    out = lines + [""] if lines and mapping else lines
    _laid_body(((f"{name}", item) for name, item in mapping.items()), "", out, quote=False)
    return "\n".join(out) + "\n"


def _one_line(obj: Any) -> str | None:
    """`value(obj)` when it is one line, else None (a non-empty map, a long or nested list)."""
    if isinstance(obj, str):
        return f'"{escape(obj)}"'
    if isinstance(obj, dict):
        return None if obj else "{}"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[]"
        if all(v is None or isinstance(v, (bool, int, float, str)) for v in obj):
            one_line = "[" + ", ".join([_one_line(v) for v in obj]) + "]"  # type: ignore[misc]
            if len(one_line) <= _SCALAR_LIST_WIDTH:
                return one_line
        return None
    scalar = _scalar(obj)  # (null, a bool or a number: never a placeholder)
    if scalar is None:
        raise TypeError(f"cannot encode {type(obj).__name__} as HCL")
    return scalar


# key -> (as written, its width): the same keys recur in every job's maps
_LEADS: dict[str, tuple[str, int]] = {}


def _lead(name: str) -> tuple[str, int]:
    """A map key as `value` writes it, and its width as the layout measures it."""
    known = _LEADS.get(name)
    if known is None:
        lead = key(name)
        known = (lead, _lead_columns(lead))
        if len(_LEADS) < 4096:
            _LEADS[name] = known
    return known


def _laid_body(items: Any, pad: str, out: list[str], quote: bool = True) -> None:
    """`name = value` lines at indent `pad`: runs of one-line ones aligned, multi-line ones opening a nesting."""
    run: list[tuple[str, int, str]] = []
    for name, item in items:
        lead, width = _lead(str(name)) if quote else (name, len(name))
        one = _one_line(item)
        if one is not None:
            run.append((lead, width, one))
            continue
        _flush_run(run, pad, out)
        out.append(f"{pad}{lead} = {'{' if isinstance(item, dict) else '['}")
        _laid_nested(item, pad, out)
    _flush_run(run, pad, out)


def _laid_nested(obj: Any, pad: str, out: list[str], end: str = "") -> None:
    """The lines inside a multi-line map or list whose opening line is written, then its closing line."""
    inner = pad + "  "
    if isinstance(obj, dict):
        items = tuple(obj.items())
        if all(type(v) is str for _, v in items):  # tags and labels: the same maps recur across jobs
            lines = _laid_flat.get((inner, items))
            if lines is None:
                lines = []
                _laid_body(items, inner, lines)
                if len(_laid_flat) >= 1024:
                    _laid_flat.clear()
                _laid_flat[inner, items] = lines
            out.extend(lines)
        else:
            _laid_body(items, inner, out)
        out.append(f"{pad}}}{end}")
        return
    for item in obj:
        one = _one_line(item)
        if one is not None:
            out.append(f"{inner}{one},")
        else:
            out.append(inner + ("{" if isinstance(item, dict) else "["))
            _laid_nested(item, inner, out, ",")
    out.append(f"{pad}]{end}")


# (indent, a map of strings' items) -> its lines, laid out
_laid_flat: dict[tuple[str, tuple[tuple[Any, str], ...]], list[str]] = {}


def _flush_run(run: list[tuple[str, int, str]], pad: str, out: list[str]) -> None:
    if run:
        width = max(used for _, used, _ in run) + 1
        out.extend([f"{pad}{lead}{' ' * (width - used)}= {text}" for lead, used, text in run])
        run.clear()


# --- layout ---------------------------------------------------------------------------------------


# The only characters that matter to the layout, inside a quoted string and outside one.
_STRING_TOKEN = re.compile(r'\\|"|\$\$\{|%%\{|\$\{|%\{')
_CODE_TOKEN = re.compile(r'"|#|//|<<|[{}\[\]()]|=')
_HEREDOC = re.compile(r"<<-?([A-Za-z_][A-Za-z0-9_]*)\s*$")


def _scan(line: str, state: list[str]) -> tuple[int, int | None, bool, str | None]:
    """Scan one line: (net bracket change, column of the first `=`, whether that `=` starts a whole
    one-line attribute, heredoc marker opened).

    `state` carries what is open across lines: 'q' inside a quoted string, '{' inside a template
    interpolation (which behaves like a bracket, as in hclwrite).
    """
    net, eq_col, eq_net, i, n = 0, None, 0, 0, len(line)
    heredoc = None
    while i < n:
        if state and state[-1] == "q":
            match = _STRING_TOKEN.search(line, i)
            if match is None:
                break
            token, i = match.group(), match.end()
            if token == "\\":
                i += 1  # skip the escaped character
            elif token == '"':
                state.pop()
            elif token in ("${", "%{"):
                state.append("{")
                net += 1
            continue
        match = _CODE_TOKEN.search(line, i)
        if match is None:
            break
        token, start = match.group(), match.start()
        i = start + 1
        if token == '"':
            state.append("q")
        elif token in ("#", "//"):
            break
        elif token == "<<":
            marker = _HEREDOC.match(line, start)
            if marker:
                heredoc = marker.group(1)
                break
        elif token in _OPEN:
            if token == "{":
                state.append("b")
            net += 1
        elif token in _CLOSE:
            if token == "}" and state and state[-1] in "{b":
                state.pop()
            net -= 1
        elif eq_col is None and start > 0:  # "=", but not part of == != <= >= =>
            prev, nxt = line[start - 1], line[start + 1] if start + 1 < n else ""
            if prev not in "=!<>" and nxt not in "=>":
                eq_col, eq_net = start, net
    aligned = eq_col is not None and net - eq_net == 0  # else the value opens a multi-line expression
    return net, eq_col, aligned, heredoc


# _scan results by (line, state before it), with the state after it: the same lines recur in every
# workspace, so each distinct one is scanned once per process (bounded: past the limit lines are scanned).
_SCANNED: dict[tuple[str, tuple[str, ...]], tuple[tuple[int, int | None, bool, str | None], tuple[str, ...]]] = {}
_SCANNED_MAX = 10_000  # recurring lines come in with the first jobs; ~4 MB per process at most


def _scan_line(line: str, state: list[str]) -> tuple[int, int | None, bool, str | None]:
    key = (line, tuple(state))
    hit = _SCANNED.get(key)
    if hit is None:
        result = _scan(line, state)
        if len(_SCANNED) < _SCANNED_MAX:
            _SCANNED[key] = (result, tuple(state))
        return result
    state[:] = hit[1]
    return hit[0]


def _columns(text: str) -> int:
    """Width as hclwrite measures it: extended grapheme clusters (Unicode UAX #29)."""
    if text.isascii():
        return len(text)
    import regex  # only for non-ASCII keys

    return len(regex.findall(r"\X", text))


def _lead_columns(lead: str) -> int:
    """hclwrite counts each token on its own: a quoted key's quotes apart from its text."""
    if len(lead) >= 2 and lead[0] == lead[-1] == '"':
        return 2 + _columns(lead[1:-1])
    return _columns(lead)


def format_hcl(text: str, kept: list[str] | None = None) -> str:
    """Lay out HCL text as `terraform fmt` would (see module docstring). Drops blank lines that directly
    follow an opening line or precede a closing one, collapses runs of blank lines, ends with one newline.

    Text that opens with `#` comment lines and a blank line (every generated file's header) is laid out as
    that header, then the rest: the rest is often the same across many jobs, so it is laid out once.
    `kept`: the strings `literals()` collected while `text` was rendered, put back once it is laid out."""
    laid = _format_kept(text, kept)
    if kept and _MARK in laid:  # only a template that cut or measured a placeholder leaves one behind
        raise AssertionError(f"a string placeholder was not put back: {laid[laid.index(_MARK) - 40:][:120]!r}")
    return laid


def _comment_header(lines: list[str]) -> bool:
    """Lines that are all `#` comments, the last not ending in a bracket: laid out apart from what follows them
    (a comment ending in a bracket counts as an opener for the blank-line rule)."""
    return all(line[:1] == "#" for line in lines) and lines[-1].strip()[-1:] not in _OPEN


def _format_kept(text: str, kept: list[str] | None) -> str:
    head, blank, body = text.partition("\n\n")
    header = head.split("\n")
    if blank and _comment_header(header):
        rest, named, parts = _format_memo(body)
        # a comment closes nothing and aligns nothing: the layout after it is the rest's own, unless the rest
        # is empty or starts with a closing bracket (the blank line before it would be dropped)
        if rest.strip() and rest[0] not in _CLOSE and not (kept and named):
            # comment lines without trailing spaces lay out as themselves
            head = head + "\n" if all(line == line.rstrip() for line in header) else _format(head)
            return head + "\n" + (_fill(parts, kept) if kept and parts else rest)
    if kept:
        laid, named = _layout(text)
        if not named:
            return _put_back(laid, kept)
        text = _put_back(text, kept)  # a string's width counts: lay the text out with the strings in
    return _format(text)


@lru_cache(maxsize=256)
def _format_memo(text: str) -> tuple[str, bool, tuple[str, ...]]:
    """(`_layout(text)`, the laid-out text split around its placeholders)."""
    laid, named = _layout(text)
    return laid, named, tuple(_PLACEHOLDER.split(laid)) if _MARK in laid else ()


def _fill(parts: tuple[str, ...], kept: list[str]) -> str:
    """Text split around placeholders (odd items are their numbers), with the strings `kept` put back."""
    filled = list(parts)
    for i in range(1, len(filled), 2):
        filled[i] = kept[int(filled[i])]
    return "".join(filled)


def _format(text: str) -> str:
    return _layout(text)[0]


def _layout(text: str) -> tuple[str, bool]:
    """(the laid-out text, whether a placeholder is in the name of an aligned attribute: its width counts)."""
    named = False
    lines: list[list] = []  # [indent, lead, value or None, verbatim]; value None: not an attribute line
    indents: list[int] = []
    state: list[str] = []
    heredoc: str | None = None
    for original in text.split("\n"):
        stripped = original.strip()
        if heredoc is not None:
            lines.append([0, original.rstrip(), None, True])
            if stripped == heredoc:
                heredoc = None
            continue
        if not stripped:
            lines.append([0, "", None, False])
            continue
        was_in_string = "q" in state or "{" in state
        net, eq_col, aligned, heredoc = _scan_line(stripped, state)
        if net < 0:
            closed = -net
            while closed > 0 and indents:
                if closed >= indents[-1]:
                    closed -= indents.pop()
                else:
                    indents[-1] -= closed
                    closed = 0
        indent = 2 * len(indents)
        if net > 0:
            indents.append(net)
        if eq_col is not None and not was_in_string:
            lead, rest = stripped[:eq_col].rstrip(), stripped[eq_col + 1 :].lstrip()
            if aligned:
                lines.append([indent, lead, rest, False])
                named = named or "\ue000" in lead
            else:  # `name = {` : one space either side, no alignment
                lines.append([indent, f"{lead} = {rest}", None, False])
        else:
            lines.append([indent, stripped, None, False])

    # drop blank lines after an opener / before a closer / repeated
    following: list[list | None] = [None] * len(lines)  # the next non-blank line after each line
    upcoming = None
    for i in range(len(lines) - 1, -1, -1):
        following[i] = upcoming
        if lines[i][1] != "" or lines[i][3]:
            upcoming = lines[i]
    kept: list[list] = []
    for i, line in enumerate(lines):
        if line[1] == "" and not line[3]:
            prev = kept[-1] if kept else None
            nxt = following[i]
            if prev is None or prev[1] == "" or nxt is None:
                continue
            if prev[2] is None and not prev[3] and prev[1][-1:] in ("{", "[", "("):
                continue
            if nxt[2] is None and not nxt[3] and nxt[1][:1] in ("}", "]", ")"):
                continue
        kept.append(line)

    out: list[str] = []
    run: list[list] = []

    def flush() -> None:
        if not run:
            return
        # a quoted or non-ASCII name is measured as hclwrite does; a plain ASCII name is its length
        widths = [ln[0] + (len(ln[1]) if ln[1].isascii() and ln[1][:1] != '"' else _lead_columns(ln[1])) for ln in run]
        width = max(widths)
        for ln, used in zip(run, widths):
            out.append(" " * ln[0] + ln[1] + " " * (width - used + 1) + "= " + ln[2])
        run.clear()

    for line in kept:
        if line[3]:  # inside a heredoc: verbatim
            flush()
            out.append(line[1])
            continue
        if line[2] is not None:
            run.append(line)
            continue
        flush()
        out.append(" " * line[0] + line[1] if line[1] else "")
    flush()
    return "\n".join(out).rstrip("\n") + "\n", named


def dumps_json(obj: Any) -> str:
    """JSON the way we write it everywhere: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
