"""The render cache, so a no-op run does not render. It is local to the machine, never committed.

It lives in the user's cache folder (`$DATIVO_TF_CACHE_DIR`, else `$XDG_CACHE_HOME/dativo-tf`, else
`~/.cache/dativo-tf`), one file per (output folder, settings file). A job is reused, not rendered, when the
cache was written by this exact generator (version and a digest of its code and templates), and the job's
inputs (job, asset and settings files; a local module in module mode) and every file of its workspace,
ownership record included, still hash to what the cache says. Jobs whose paths use `${VAR}` are always
rendered: nothing derived from an environment value is ever recorded. The cache only ever skips work: the
bytes on disk decide drift. A file is not read again while its size, modification and change times and
inode match the signature recorded when it was last read, as git's index does (see `_settled`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from dativo_ingest import __version__
from dativo_ingest.errors import DativoTfError, InputError
from dativo_ingest.records import RECORD, read_regular_stat


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def relative(path: Path, root: Path) -> str:
    """`path` relative to `root` with forward slashes; absolute when it lies outside."""
    return _relative_resolved(path.resolve(), root)


def _relative_resolved(resolved: Path, root: Path) -> str:
    """`resolved.relative_to(root)` (both resolved) with forward slashes, by their text: no Path is built."""
    return "." if resolved.as_posix() == root.as_posix() else job_key(resolved, root)


def job_key(path: Path, root: Path) -> str:
    """How records name a job `find_jobs` returned (already resolved): relative to the root."""
    text, prefix = path.as_posix(), root.as_posix().rstrip("/") + "/"
    return text[len(prefix):] if text.startswith(prefix) else text


@lru_cache(maxsize=1)
def generator_digest() -> str:
    """One sha256 over this generator's version, code and templates: a change to any of them re-renders.

    Reading and hashing every file costs ~20 ms on each run, so the digest is remembered in the cache folder
    under the files' sizes, modification and change times and inodes (as git's index does), except while a
    file is younger than a few seconds: an edit within one timestamp tick could keep its size and times."""
    package = Path(__file__).resolve().parent
    templates = Path(str(files("dativo_ingest.templates")))
    signature = hashlib.sha256(__version__.encode() + b"\0")
    newest = 0
    regular = []
    for root in (package, templates):
        for path in sorted(root.rglob("*")):
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            info = path.stat()
            if stat.S_ISREG(info.st_mode):
                regular.append((root, path))
                newest = max(newest, info.st_mtime_ns, info.st_ctime_ns)
                signature.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_ctime_ns}\0"
                                 f"{info.st_ino}\n".encode())
    memo = cache_base() / f"generator-{signature.hexdigest()[:32]}"
    settled = time.time_ns() - newest > 5_000_000_000
    if settled:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            known = memo.read_text()
            if len(known) == 64 and all(c in "0123456789abcdef" for c in known):
                return known
    digest = hashlib.sha256(__version__.encode() + b"\0")
    for root, path in regular:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    value = digest.hexdigest()
    if settled:
        _write_atomic(memo, value.encode())
    return value


def cache_base() -> Path:
    """This user's dativo-tf cache folder: `$DATIVO_TF_CACHE_DIR`, else `$XDG_CACHE_HOME/dativo-tf`, else
    `~/.cache/dativo-tf`."""
    base = os.environ.get("DATIVO_TF_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "dativo-tf")
    return Path(base)


def cache_file(output_dir: Path, settings_path: Path | None) -> Path:
    key = f"{output_dir.resolve()}\0{settings_path.resolve() if settings_path else ''}"
    return cache_base() / f"{sha256(key.encode())[:24]}.json"


@dataclass(frozen=True)
class CachedJob:
    job: str  # relative to the project root
    directory: str | None  # the workspace folder; None when the job has no infrastructure block
    entry: dict = field(hash=False)

    @property
    def warnings(self) -> list[DativoTfError]:
        return [InputError(w["message"], path=w.get("path"), line=w.get("line"), key=w.get("key"))
                for w in self.entry.get("warnings", [])]

    @property
    def files(self) -> dict[str, str]:
        return self.entry.get("files", {})


def load(output_dir: Path, settings_path: Path | None) -> tuple[dict, dict]:
    """(the cached jobs, the file signatures), or ({}, {}) when there is no usable cache (missing,
    unreadable, another generator)."""
    try:
        data = json.loads(cache_file(output_dir, settings_path).read_bytes())
    except (OSError, ValueError):
        return {}, {}
    if not isinstance(data, dict) or data.get("generator") != generator_digest() or not isinstance(data.get("jobs"), dict):
        return {}, {}
    signatures = data.get("signatures")
    return data["jobs"], signatures if isinstance(signatures, dict) else {}


def save(output_dir: Path, settings_path: Path | None, jobs: dict, signatures: dict | None = None) -> None:
    """Write the cache atomically; a cache that cannot be written is only a slower next run."""
    data = json.dumps({"generator": generator_digest(), "jobs": jobs, "signatures": signatures or {}},
                      sort_keys=True)
    _write_atomic(cache_file(output_dir, settings_path), data.encode())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "w") as handle:
            handle.write(data.decode())
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def entry(job_inputs: dict[str, str], directory: str | None, files: dict[str, str], warnings: list) -> dict:
    out: dict = {"directory": directory, "inputs": job_inputs, "files": files}
    if warnings:
        out["warnings"] = [
            {k: v for k, v in (("path", w.path), ("line", w.line), ("key", w.key), ("message", w.message)) if v}
            for w in warnings
        ]
    return out


_RECORD_SUFFIX = "/" + RECORD
# An input named `<folder>/*.tf` is a local module as a whole, checked by `modules.digest` (see render.Workspace)
TF_FILES = "/*.tf"


# A file's sha256 is remembered under its (size, modification time, change time, inode), as git's index does,
# once its change time is older than the moment it was read by more than the file system's timestamp
# granularity: any later write gives it a newer change time (which, unlike the modification time, no user can
# set back), so an unchanged signature means unchanged bytes. A file changed more recently is read again.
# A change time with a sub-second part comes from a file system with fine timestamps, which the kernel's clock
# moves every few milliseconds; one on a whole second may come from a file system counting in (two) seconds.
SETTLED_NS = 2_000_000_000
FINE_SETTLED_NS = 100_000_000


def _settled(ctime_ns: int, now_ns: int) -> bool:
    return ctime_ns < now_ns - (SETTLED_NS if ctime_ns % 1_000_000_000 == 0 else FINE_SETTLED_NS)


class Digests:
    """sha256 of files, each read once per run (assets and the settings file are shared by many jobs), or
    taken from `signatures` when the file's status still matches. Symlinks and non-regular files hash to
    None, so they never count as fresh."""

    def __init__(self, signatures: dict | None = None) -> None:
        self._known: dict[str, str | None] = {}
        self._resolved: dict[Path, Path] = {}
        self._signatures = signatures or {}
        self._started = time.time_ns()
        self.records: dict[str, bytes] = {}  # the ownership records read, by path: `records.scan` reuses them
        self.signatures: dict[str, list] = {}  # [size, mtime_ns, ctime_ns, inode, sha256] of settled files seen

    def inputs(self, paths: list[Path], root: Path, resolved: tuple[Path, ...] = (),
               read: dict[Path, tuple[str | None, os.stat_result | None, bool]] | None = None) -> dict[str, str | None]:
        """A job's input files as the cache names them (relative to the root) with their sha256. Paths in
        `resolved` are resolved already (or, as a module's `<folder>/*.tf`, named as written); the others (the
        shared asset and settings) are resolved once. `read`: (sha256, status, whether a symlink) of files as
        rendering read them (`yamlsource.read_text`), or a module's digest as `modules.read` took it."""
        for path, (digest, info, link) in (read or {}).items():
            self._seen(path.as_posix(), None if link else digest, None if link else info)
        out: dict[str, str | None] = {}
        for path in paths:
            real = path if path in resolved else self._resolved.get(path)
            if real is None:
                real = self._resolved[path] = path.resolve()
            out[_relative_resolved(real, root)] = self(real.as_posix())
        return out

    def __call__(self, path: str) -> str | None:
        if path not in self._known and path.endswith(TF_FILES):
            from dativo_ingest import modules

            self._known[path] = modules.digest(path[:-len(TF_FILES)])
        if path not in self._known:
            digest = self._unchanged(path)
            if digest is None:
                try:
                    found = read_regular_stat(path, path)
                except InputError:  # a symlink, folder, FIFO or unreadable file: never fresh
                    found = None
                if found is not None:
                    data, info = found
                    self._seen(path, sha256(data), info)
                    if path.endswith(_RECORD_SUFFIX):
                        self.records[path] = data
                    return self._known[path]
            self._known[path] = digest
        return self._known[path]

    def _seen(self, path: str, digest: str | None, info: os.stat_result | None) -> None:
        """The file at `path` read with this sha256 and status (None: a symlink or not a regular file)."""
        self._known[path] = digest
        if digest is not None and info is not None and _settled(info.st_ctime_ns, self._started):
            self.signatures[path] = [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, digest]

    def _unchanged(self, path: str) -> str | None:
        known = self._signatures.get(path)
        if not (isinstance(known, list) and len(known) == 5 and isinstance(known[4], str)):
            return None
        try:
            info = os.lstat(path)
        except OSError:
            return None
        if stat.S_ISREG(info.st_mode) and [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino] == known[:4]:
            self.signatures[path] = known
            return known[4]
        return None


def split(job_paths: list[Path], project_root: Path, output_dir: Path, jobs: dict,
          digest: Digests | None = None) -> tuple[list[CachedJob], list[Path]]:
    """(jobs the cache shows up to date, jobs to render)."""
    digest = digest or Digests()
    cached: list[CachedJob] = []
    to_render: list[Path] = []
    root, out = project_root.as_posix(), output_dir.as_posix()
    for path in job_paths:
        job = job_key(path, project_root)
        entry_ = jobs.get(job)
        if not isinstance(entry_, dict) or not isinstance(entry_.get("inputs"), dict) or job not in entry_["inputs"]:
            to_render.append(path)
            continue
        directory = entry_.get("directory")
        files = entry_.get("files") or {}
        outputs = {f"{out}/{directory}/{name}": sha for name, sha in files.items()} if directory else {}
        fresh = (
            all(digest(name if name.startswith("/") else f"{root}/{name}") == sha
                for name, sha in entry_["inputs"].items())
            and (directory is None or (RECORD in files and len(files) > 1))
            and all(digest(target) == sha for target, sha in outputs.items())
        )
        if fresh:
            cached.append(CachedJob(job, directory, entry_))
        else:
            to_render.append(path)
    return cached, to_render


def signatures(jobs: dict, digest: Digests, project_root: Path, output_dir: Path) -> dict:
    """The signatures `digest` saw of the files the cached `jobs` name (inputs and outputs)."""
    root, out = project_root.as_posix(), output_dir.as_posix()
    named = set()
    for entry_ in jobs.values():
        inputs, files, directory = entry_.get("inputs"), entry_.get("files"), entry_.get("directory")
        if isinstance(inputs, dict):
            named.update(name if name.startswith("/") else f"{root}/{name}" for name in inputs)
        if isinstance(directory, str) and isinstance(files, dict):
            named.update(f"{out}/{directory}/{name}" for name in files)
    return {path: sig for path, sig in digest.signatures.items() if path in named}


def build(workspaces: list, cached: list[CachedJob], skipped: list[Path], project_root: Path,
          record_shas: dict[str, str], skipped_shas: dict[Path, dict] | None = None) -> dict:
    """The cache after a successful writing run: every job rendered or reused, except jobs using `${VAR}`.
    `record_shas`: the sha256 of each written workspace's ownership record. `skipped_shas`: the skipped jobs'
    sha256 as rendering read them."""
    digest = Digests()
    jobs: dict = {c.job: c.entry for c in cached}
    for path in skipped:
        shas = (skipped_shas or {}).get(path) or digest.inputs([path], project_root)
        jobs[job_key(path, project_root)] = entry(shas, None, {}, [])
    for ws in workspaces:
        if ws.env or ws.directory not in record_shas:
            continue
        files = dict(ws.file_shas) if ws.file_shas is not None else {n: sha256(d) for n, d in ws.files.items()}
        files[RECORD] = record_shas[ws.directory]
        # hashed as rendering read them, else now
        shas = ws.input_shas if ws.input_shas is not None else digest.inputs(list(map(Path, ws.inputs)), project_root)
        jobs[ws.job] = entry(shas, ws.directory, files, ws.warnings)
    return jobs
