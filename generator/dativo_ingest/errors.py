"""One error root. Every error a user can cause names the file, the line (where known) and the key."""

from __future__ import annotations

from pathlib import Path


class DativoTfError(Exception):
    """Root of every error dativo-tf raises on purpose. Printed as `path:line: key: message`."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None, key: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.key = key

    def __str__(self) -> str:
        where = self.path or "<input>"
        if self.line:
            where += f":{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


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
