"""Results of a run and the exit code, computed in one place: 0 clean, 1 drift, 2 input error."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import click

from dativo_ingest.errors import DativoTfError


class WriteBack(enum.Enum):
    YES = "yes"      # generate: write changed files
    CHECK = "check"  # --check: write nothing, list what would change
    DIFF = "diff"    # --diff: write nothing, print a unified diff


@dataclass
class Report:
    mode: WriteBack = WriteBack.YES
    quiet: bool = False
    fail_on_change: bool = False  # exit 1 after writing (pre-commit does not see newly created files)
    errors: list[DativoTfError] = field(default_factory=list)
    drift: bool = False

    def status(self, message: str) -> None:
        if not self.quiet:
            click.echo(message, err=True)

    def warning(self, err: DativoTfError) -> None:
        if not self.quiet:
            click.echo(f"{_where(err)}warning: {_message(err)}", err=True)

    def error(self, err: DativoTfError) -> None:
        self.errors.append(err)
        click.echo(f"{_where(err)}error: {_message(err)}", err=True)

    def kept(self, path: str) -> None:
        """A file dativo-tf once wrote but no longer produces, edited by hand: never deleted."""
        self.status(f"kept {path} (edited by hand; dativo-tf no longer generates it, delete it yourself)")

    def retired(self, directory: str, job: str) -> None:
        self.drift = True
        verb = "retired" if self.mode is WriteBack.YES else "would retire"
        self.status(f"{verb} {directory}: its job {job} is gone. `terraform apply` there destroys its resources; "
                    "then `dativo-tf prune`")

    def change(self, action: str, path: str, hand_edited: bool = False) -> None:
        """One file decision; 'would' in check and diff modes (they write nothing)."""
        past = {"create": "created", "update": "updated", "remove": "removed", "repair": "repaired"}[action]
        note = " (edited by hand since it was generated)" if hand_edited else ""
        if self.mode is WriteBack.YES:
            self.drift = True
            self.status(f"{past} {path}{note}")
        else:
            self.drift = True
            self.status(f"would {action} {path}{note}")

    @property
    def return_code(self) -> int:
        if self.errors:
            return 2
        if self.drift and (self.mode is not WriteBack.YES or self.fail_on_change):
            return 1
        return 0


def _where(err: DativoTfError) -> str:
    where = err.path or ""
    if where and err.line:
        where += f":{err.line}"
    return f"{where}: " if where else ""


def _message(err: DativoTfError) -> str:
    return f"{err.key}: {err.message}" if err.key else err.message
