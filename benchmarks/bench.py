"""Benchmark: synthetic repos of N jobs; prints medians of cold start, full generate, no-op generate and
no-op --check. Run: `make bench` (or `.venv/bin/python benchmarks/bench.py 100 1000`)."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "dativo_ingest"]
RUNS = 3


def build_repo(root: Path, n: int) -> None:
    examples = ROOT / "examples"
    shutil.copy(examples / "dativo-tf.yaml", root / "dativo-tf.yaml")
    for folder in ("assets", "tests", "modules"):
        shutil.copytree(examples / folder, root / folder)
    templates = sorted((examples / "jobs").rglob("*.yaml"))
    for i in range(n):
        source = templates[i % len(templates)]
        target = root / "jobs" / f"tenant{i % 10}" / f"{source.stem}_{i}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text().replace("tenant_id: acme", f"tenant_id: tenant{i % 10}"))


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return elapsed


def main(sizes: list[int]) -> None:
    cold = [timed(CLI + ["--version"], ROOT) for _ in range(5)]
    print(f"cold start (--version): median {statistics.median(cold) * 1000:.0f} ms")
    for n in sizes:
        full, noop, check = [], [], []
        for _ in range(RUNS):
            with tempfile.TemporaryDirectory() as tmp:
                repo = Path(tmp)
                build_repo(repo, n)
                full.append(timed(CLI + ["-q", "generate"], repo))
                noop.append(timed(CLI + ["-q", "generate"], repo))
                check.append(timed(CLI + ["-q", "generate", "--check"], repo))
        row = ", ".join(f"{name} {statistics.median(v):.2f} s (min {min(v):.2f}, max {max(v):.2f})"
                        for name, v in (("full", full), ("no-op", noop), ("no-op --check", check)))
        print(f"N={n}: {row}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 1000])
