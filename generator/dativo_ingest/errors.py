"""One error root. Every error a user can cause names the file, the line (where known) and the key."""

from __future__ import annotations

import re
from pathlib import Path

# `scheme://user:password@host`: the password part, which no message may show.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@]*):[^\s/]*@")


def redact(text: str) -> str:
    """`postgres://admin:pw@db` -> `postgres://admin:***@db`, wherever a URL with a password appears."""
    return _URL_PASSWORD.sub(r"\1:***@", text)


class DativoTfError(Exception):
    """Root of every error dativo-tf raises on purpose. Printed as `path:line: error: key: message`, as the
    report prints the errors it collects.
    Credentials in URLs are redacted from every message (see `redact`)."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None, key: str | None = None):
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.key = key

    def __str__(self) -> str:
        where = self.path or "<input>"
        if self.line:
            where += f":{self.line}"
        return redact(f"{where}: error: {self.key}: {self.message}" if self.key else f"{where}: error: {self.message}")


class InputError(DativoTfError, ValueError):
    """A job, asset or settings file is malformed or breaks a rule (exit code 2)."""


class CloudLimitError(InputError):
    """A value the target cloud would reject at apply time."""


class ForbiddenPathError(InputError, PermissionError):
    """A path that would land outside the output folder, or a file the generator did not write."""


class TerraformError(DativoTfError, RuntimeError):
    """A Terraform command failed (Dagster integration)."""


class InputErrors(InputError):
    """Several input errors, collected so one bad job never hides the next."""

    def __init__(self, errors: list[DativoTfError]):
        super().__init__(f"{len(errors)} error(s)")
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)
