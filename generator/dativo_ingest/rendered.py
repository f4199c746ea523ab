"""What rendering hands to the writer: small (no job model, files already encoded), so ten thousand of them
fit in memory and travel cheaply back from worker processes."""

from __future__ import annotations

from dataclasses import dataclass

from dativo_ingest.errors import DativoTfError


@dataclass
class Output:
    job: str  # the job file, relative to the project root
    directory: str  # relative to the output folder: tenant/environment/job
    files: dict[str, bytes]  # empty once staged: the bytes are in the stage (see `file_shas`)
    # the files it was rendered from (job, asset, settings) as absolute paths in text: a Path crosses back from a
    # worker as its parts and is rebuilt at ~7 µs, per input of every job, in the process waiting for the workers
    inputs: list[str]
    env: list[str]  # environment variables its paths use
    warnings: list[DativoTfError]
    input_shas: dict[str, str | None] | None = None  # the inputs' sha256 as rendering read them (for the cache)
    staged: str | None = None  # sha256 of its record when the worker staged the whole new folder (see writer)
    file_shas: dict[str, str] | None = None  # when staged: each file's sha256
    stage_error: tuple[str, str] | None = None  # (file name, why) when the disk refused the staged folder
