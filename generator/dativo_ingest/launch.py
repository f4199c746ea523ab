"""The `dativo-tf` entry point. `--version` is answered here, without importing click or the commands, so it
costs little more than starting the interpreter; everything else goes to `cli.main`."""

from __future__ import annotations

import sys

from dativo_ingest import __version__

VERSION_LINE = f"dativo-tf, version {__version__}"  # what click's version_option prints


def main() -> int | None:
    if sys.argv[1:] == ["--version"]:
        sys.stdout.write(VERSION_LINE + "\n")
        return 0
    from dativo_ingest.cli import main as cli

    return cli()
