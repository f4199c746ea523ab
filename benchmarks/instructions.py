"""Instructions per rendered job, counted by valgrind's callgrind: a figure the machine's load cannot move.

Builds a repo of N jobs as bench.py does (the examples cycled), then counts the instructions of `dativo-tf
generate -j 1 --full --check` over all of them and over one job of each kind; (all - kinds) / (N - kinds) is
one job's rendering, without the start-up, imports, template compiling and first layouts that each kind of
job costs once per run (the second count shows those).

Run: `.venv/bin/python benchmarks/instructions.py [N]` (default 100; needs `valgrind`; ~1 minute).
BENCH_CLI measures another build, as in bench.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import CLI, build_repo, compile_package  # noqa: E402


def instructions(repo: Path, paths: list[str]) -> int:
    """Instructions callgrind counts for one run (the render workers are not started: -j 1)."""
    cache = repo / ".cache"
    shutil.rmtree(cache, ignore_errors=True)
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *CLI, "-q", "generate", "-j", "1",
         "--full", "--check", "--out", str(repo / "out"), *paths],
        cwd=repo, capture_output=True, text=True, env={**os.environ, "DATIVO_TF_CACHE_DIR": str(cache)})
    found = re.search(r"Collected : (\d+)", result.stderr)
    if not found:
        raise SystemExit(f"callgrind gave no count:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def main(n: int) -> None:
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed")
    compile_package()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        build_repo(repo, n)
        kinds: dict[str, str] = {}  # the examples' job name -> its first copy (jobs are named <name>_<i>.yaml)
        for path in sorted((repo / "jobs").rglob("*.yaml"), key=lambda p: int(p.stem.rpartition("_")[2])):
            kinds.setdefault(path.stem.rpartition("_")[0], str(path.relative_to(repo)))
        every, first = instructions(repo, ["jobs"]), instructions(repo, list(kinds.values()))
    print(f"{n} jobs: {every / 1e6:,.0f} M instructions; one of each of the {len(kinds)} kinds: {first / 1e6:,.0f} M")
    print(f"per job: {(every - first) / (n - len(kinds)) / 1e6:.2f} M instructions")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
