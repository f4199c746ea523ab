"""The `dativo-tf` entry point. `--version` and `--help` are answered here, without importing click or the
commands, so they cost little more than starting the interpreter; everything else goes to `cli.main`, and the
process ends as soon as its output is out (see `_end`)."""

from __future__ import annotations

import sys

from dativo_ingest import __version__

VERSION_LINE = f"dativo-tf, version {__version__}"  # what click's version_option prints

# What `cli.main --help` prints when click wraps at its widest, 80 columns (tests/test_cli.py compares them).
HELP = """\
Usage: dativo-tf [OPTIONS] COMMAND [ARGS]...

  Generate Terraform workspaces from Dativo job configs.

Options:
  --version      Show the version and exit.
  -v, --verbose  Show tracebacks for errors.
  -q, --quiet    Only errors on stderr.
  -h, --help     Show this message and exit.

Commands:
  changes   What the current inputs change against the generated tree at...
  cost      Estimate each job's monthly cost from shipped list prices...
  generate  Write one Terraform workspace per job (only files whose bytes...
  init      Scaffold a new infrastructure repository from the bundled...
  new-job   Add one job file to this repo, every infrastructure field...
  prune     Remove retired workspaces' generated files (never state,...
  schema    Print the JSON Schema of a job, settings or asset file (for...
  tags      Print the job's merged tags (JSON), or a table with each...
  validate  Check every job and asset and report all errors (exit 2 on any).
  vars      Print the job's Terraform variables (the seed's...
"""


def main() -> int | None:
    if sys.argv[1:] == ["--version"]:
        sys.stdout.write(VERSION_LINE + "\n")
        return 0
    # click names the program after argv[0] (`python -m dativo_ingest` differs) and wraps to the terminal
    if sys.argv[1:] in (["--help"], ["-h"]) and sys.argv[0].rpartition("/")[2] == "dativo-tf" and _columns() >= 80:
        sys.stdout.write(HELP)
        return 0
    import gc

    # Start-up imports, reading the cache and the plan make long-lived objects and no garbage: collecting them
    # is wasted (~25 ms before a 1,000-job render starts, ~12 ms of a no-op check). Rendering, which leaves
    # garbage, collects again (see `pipeline.collecting`).
    gc.disable()
    import os

    # No pydantic plugin installed beside dativo-tf wraps its models: the output depends on the inputs alone, and
    # start-up skips scanning every installed package's metadata for plugins. (The Python API leaves them be.)
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from dativo_ingest.cli import main as cli

    try:
        return cli()
    except SystemExit as done:
        code = done.code
    if code is None or isinstance(code, int):
        _end(code or 0)
    raise SystemExit(code)


def _end(code: int) -> None:
    """End the process once its output is out, skipping the interpreter's teardown: freeing a run's objects one
    by one takes ~0.1 s at 1,000 jobs and helps no one. Each command has closed its files, stopped its child
    processes and removed its temporary folders by now; only the standard streams may hold buffered output."""
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: the process started with that stream closed
                stream.flush()
    except (OSError, ValueError):  # a closed pipe, say: the interpreter's own exit reports it
        raise SystemExit(code) from None
    import os

    os._exit(code)


def _columns() -> int:
    """The terminal width click wraps help at, as shutil.get_terminal_size finds it (without importing shutil)."""
    import os

    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80
