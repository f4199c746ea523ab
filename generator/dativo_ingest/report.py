"""Results of a run and the exit code, computed in one place: 0 clean, 1 drift, 2 input error."""

from __future__ import annotations

import enum
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

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
    _printed: set[str] = field(default_factory=set, repr=False)

    def status(self, message: str) -> None:
        if not self.quiet:
            click.echo(message, err=True)

    def _once(self, line: str) -> bool:
        """True the first time a message is seen in this run: a cause shared by many jobs (an asset, the
        settings file) is reported once."""
        if line in self._printed:
            return False
        self._printed.add(line)
        return True

    def warning(self, err: DativoTfError) -> None:
        line = err.format("warning")
        if self._once(line) and not self.quiet:
            click.echo(line, err=True)

    def error(self, err: DativoTfError) -> None:
        line = err.format("error")
        if self._once(line):
            self.errors.append(err)
            click.echo(line, err=True)

    def kept(self, path: str) -> None:
        """A file dativo-tf once wrote but no longer produces, edited by hand: never deleted."""
        self.status(f"kept {path} (edited by hand; dativo-tf no longer generates it, delete it yourself)")

    def retired(self, directory: str, job: str) -> None:
        self.drift = True
        verb = "retired" if self.mode is WriteBack.YES else "would retire"
        self.status(f"{verb} {directory}: its job {job} is gone. `terraform apply` there destroys its resources; "
                    "then `dativo-tf prune`")

    def change(self, action: str, path: str, hand_edited: bool = False) -> None:
        """One file decision. Writing, it is status (stderr); with --check the list of changes is the data
        asked for (stdout); with --diff the diff is the data, so the list is status."""
        past = {"create": "created", "update": "updated", "remove": "removed", "repair": "repaired"}[action]
        note = " (edited by hand since it was generated)" if hand_edited else ""
        self.drift = True
        if self.mode is WriteBack.YES:
            self.status(f"{past} {path}{note}")
        elif self.mode is WriteBack.CHECK:
            click.echo(f"would {action} {path}{note}")
        else:
            self.status(f"would {action} {path}{note}")

    def progress(self, label: str, total: int | None = None) -> "Progress":
        """A progress line on stderr for a long step (see Progress); silent with --quiet."""
        return Progress(label, total, stream=None if self.quiet else sys.stderr)

    @property
    def return_code(self) -> int:
        if self.errors:
            return 2
        if self.drift and (self.mode is not WriteBack.YES or self.fail_on_change):
            return 1
        return 0


class Progress:
    """`label: done/total, N s` on one stderr line, redrawn, for steps that run longer than `delay` seconds,
    only when stderr is a terminal (never in logs or pipes). Use as a context manager; call `advance()` per
    item when the caller can count, else it shows the elapsed time. A background thread redraws the line
    every `interval`; the line is cleared at the end."""

    def __init__(self, label: str, total: int | None = None, *, stream: TextIO | None = None, delay: float = 2.0,
                 interval: float = 0.5, clock: Callable[[], float] = time.monotonic):
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None and _is_terminal(stream) else None
        self.delay = delay
        self.interval = interval
        self.clock = clock
        self.start = clock()
        self.shown = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def advance(self, count: int = 1) -> None:
        self.done += count

    def tick(self) -> None:
        """Draw the line if the step has run longer than `delay`."""
        elapsed = self.clock() - self.start
        if self.stream is None or elapsed < self.delay:
            return
        count = f" {self.done}/{self.total}" if self.total is not None else ""
        self.stream.write(f"\r{self.label}:{count} {int(elapsed)} s\x1b[K")
        self.stream.flush()
        self.shown = True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def __enter__(self) -> "Progress":
        if self.stream is not None:
            self._thread = threading.Thread(target=self._run, name="dativo-tf-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.shown and self.stream is not None:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
