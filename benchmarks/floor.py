"""The physical floors bench.py compares dativo-tf against: work no generator of these files can avoid.

Run as a new process, like dativo-tf, so interpreter start is part of every floor:

- `floor.py generate INPUTS BLOB DEST`: parse every input file (one path a line in INPUTS) with PyYAML's
  libyaml loader, spread over the CPUs in forked processes, then write the bytes in BLOB (a marshal of
  [(relative path, bytes)], the very files a full `generate` wrote, records included) under DEST.
- `floor.py check FILES`: read and sha256 every file named in FILES (every input and every output file).
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys


def _parse(paths: list[str]) -> int:
    import yaml

    for path in paths:
        with open(path, "rb") as fh:
            yaml.load(fh, Loader=yaml.CSafeLoader)
    return len(paths)


def generate(inputs: str, blob: str, dest: str) -> None:
    with open(inputs) as fh:
        paths = fh.read().split("\n")
    paths = [p for p in paths if p]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    chunks = [paths[i::cpus] for i in range(cpus)]
    pids = []
    for chunk in chunks[1:]:
        pid = os.fork()
        if pid == 0:
            _parse(chunk)
            os._exit(0)
        pids.append(pid)
    _parse(chunks[0])
    for pid in pids:
        os.waitpid(pid, 0)
    with open(blob, "rb") as fh:
        files = marshal.load(fh)
    made = set()
    for rel, data in files:
        folder = os.path.dirname(os.path.join(dest, rel))
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        with open(os.path.join(dest, rel), "wb") as out:
            out.write(data)


def check(listing: str) -> None:
    with open(listing) as fh:
        for path in fh.read().split("\n"):
            if path:
                with open(path, "rb") as f:
                    hashlib.sha256(f.read()).digest()


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(*sys.argv[2:5])
    else:
        check(sys.argv[2])
