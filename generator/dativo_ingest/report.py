"""Results of a run and the exit code, computed in one place: 0 clean, 1 drift, 2 input error."""

from __future__ import annotations

import enum
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    _held: list[str] | None = field(default=None, repr=False)  # what `held` holds: text for one stream
    _held_err: bool = field(default=False, repr=False)  # that stream: stderr?
    _held_size: int = field(default=0, repr=False)

    @contextmanager
    def held(self) -> Iterator[None]:
        """What is said in this block is written in order, each run of lines for one stream in one piece (up
        to ~1 MB): a first run of 1,000 jobs says ~9,000 lines, and echoing each (written and flushed on its
        own) costs ~90 ms."""
        self._held = []
        try:
            yield
        finally:
            self._flush()
            self._held = None

    def _say(self, text: str, err: bool) -> None:
        if self._held is None:
            click.echo(text, err=err, nl=False)
            return
        if self._held and (err != self._held_err or self._held_size > _HELD_SIZE):
            self._flush()
        self._held.append(text)
        self._held_err = err
        self._held_size += len(text)

    def _flush(self) -> None:
        if self._held:
            click.echo("".join(self._held), err=self._held_err, nl=False)
            self._held.clear()
        self._held_size = 0

    def data(self, text: str) -> None:
        """Output asked for (stdout), as it is: a diff."""
        self._say(text, False)

    def status(self, message: str) -> None:
        if not self.quiet:
            self._say(f"{message}\n", True)

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
            self._say(f"{line}\n", True)

    def error(self, err: DativoTfError) -> None:
        line = err.format("error")
        if self._once(line):
            self.errors.append(err)
            self._say(f"{line}\n", True)

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
        self.drift = True
        if self.quiet and self.mode is not WriteBack.CHECK:
            return  # status, unsaid
        note = " (edited by hand since it was generated)" if hand_edited else ""
        if self.mode is WriteBack.YES:
            self.status(f"{_PAST[action]} {path}{note}")
        elif self.mode is WriteBack.CHECK:
            self._say(f"would {action} {path}{note}\n", False)
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


_HELD_SIZE = 1 << 20
_PAST = {"create": "created", "update": "updated", "remove": "removed", "repair": "repaired"}


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
