"""One error root. Every error a user can cause names the file, the line (where known) and the key."""

from __future__ import annotations

import re
from pathlib import Path

# `scheme://user:password@host`: the password part, which no message may show.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@]*):[^\s/]*@")


def redact(text: str) -> str:
    """`postgres://admin:pw@db` -> `postgres://admin:***@db`, wherever a URL with a password appears."""
    return _URL_PASSWORD.sub(r"\1:***@", text)


def format_message(severity: str, message: str, path: str | None = None, line: int | None = None,
                   key: str | None = None) -> str:
    """The one message format, for errors and warnings alike: `path:line: severity: key: message`.
    The line is left out when there is none (a missing file), the path and key when there are none."""
    where = f"{path}:{line}: " if path and line else f"{path}: " if path else ""
    return f"{where}{severity}: {key}: {message}" if key else f"{where}{severity}: {message}"


class DativoTfError(Exception):
    """Root of every error dativo-tf raises on purpose. Printed as `path:line: error: key: message`.
    Credentials in URLs are redacted from every message (see `redact`).

    `code` names the cause of a warning (e.g. `module_version`); a job silences it with
    `infrastructure.silence: [code]`."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None, key: str | None = None,
                 code: str | None = None):
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.key = key
        self.code = code

    def format(self, severity: str = "error") -> str:
        return redact(format_message(severity, self.message, self.path, self.line, self.key))

    def __str__(self) -> str:
        return self.format()


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


# Warnings a job can silence with `infrastructure.silence: [code]`, each with what causes it.
WARNINGS = {
    "module_version": "terraform.module_version is set for a local or remote-URL module, which Terraform does not version",
    "local_backend": "no state bucket is configured, so the workspace keeps its state in a local file",
    "region": "the region is not in dativo-tf's list of the cloud's regions (a new region, or a typo)",
    "runtime": "a runtime_environment setting that the compute type ignores",
    "lambda_image": "a lambda job runs aws.image, which must implement the Lambda Runtime API (set aws.lambda_image)",
    "module_secrets": "infrastructure.secrets is set in module mode, where the module must read the secrets itself",
}


def warning(err: DativoTfError, code: str) -> DativoTfError:
    """Mark `err` as a warning with cause `code` (a key of WARNINGS), named at the end of its message."""
    assert code in WARNINGS, code
    err.code = code
    err.message = f"{err.message} [{code}]"
    return err
