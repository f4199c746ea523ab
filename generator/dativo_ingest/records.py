"""Ownership records: how dativo-tf knows which files are its own, safely.

Each workspace folder holds `.dativo-tf.json`: the job it belongs to, the settings file it was generated
with, its status (`active`, or `retired` once its job is gone) and the sha256 of every file dativo-tf
wrote there. One record per workspace, so two branches that touch different jobs never touch the same
record and merge without conflicts. A record holds nothing that depends on how or where dativo-tf was
installed (no version, no template digest, no input hashes: those live in the local render cache).

Records and the journal can be edited by hand, so everything read from them is validated: only the file
names dativo-tf itself produces, only folders three levels below the output root, no control characters.
Files are read without following symlinks, and only when they are regular files.
"""

from __future__ import annotations

import hashlib
import json
from json.encoder import encode_basestring  # type: ignore[attr-defined]
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dativo_ingest.errors import ForbiddenPathError, InputError
from dativo_ingest.reading import read_opened

RECORD = ".dativo-tf.json"
JOURNAL = ".dativo-tf-journal.json"
TEMP_PREFIX = ".dativo-tf-tmp-"
STAGE_PREFIX = ".dativo-tf-stage-"  # a run's stage (see writer), at the output root
STAGE_MARKER = ".dativo-tf-stage"  # the first file in every stage: a folder without it is not one
LEGACY_MANIFEST = ".dativo-tf-manifest.json"  # dativo-tf 0.1: one manifest for the whole output folder
# Every file name dativo-tf writes into a workspace; nothing else is ever written, replaced or deleted.
GENERATED_NAMES = frozenset({
    "versions.tf", "providers.tf", "backend.tf", "variables.tf", "main.tf", "outputs.tf",
    "terraform.tfvars", "terraform.tfvars.json",
})
# Kept when a workspace is retired: they configure the backend and providers its state needs.
RETIRED_KEEPS = ("backend.tf", "providers.tf", "terraform.tfvars", "terraform.tfvars.json", "variables.tf", "versions.tf")
# Never deleted, whatever a record says.
PROTECTED = re.compile(r"^(terraform\.tfstate.*|\.terraform|\.terraform\.lock\.hcl)\Z")
STATUSES = ("active", "retired")
_SHA = re.compile(r"^[0-9a-f]{64}\Z")
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass
class Record:
    job: str  # the job file, relative to the project root
    settings: str | None  # the settings file, relative to the output folder (None: built-in defaults)
    status: str
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256

    def dumps(self) -> bytes:
        """`json.dumps(..., indent=2, sort_keys=True, ensure_ascii=False)` of the record and a newline, written
        out directly: the standard encoder runs in Python when it indents, and each new workspace needs one."""
        q = encode_basestring
        lines = [f"    {q(name)}: {q(digest)}" for name, digest in sorted(self.files.items())]
        files = "{\n" + ",\n".join(lines) + "\n  }" if lines else "{}"
        settings = "null" if self.settings is None else q(self.settings)
        return (f'{{\n  "dativo_tf_record": 1,\n  "files": {files},\n  "job": {q(self.job)},\n'
                f'  "settings": {settings},\n  "status": {q(self.status)}\n}}\n').encode("utf-8")


def valid_directory(directory: str) -> bool:
    """tenant/environment/job, each a safe folder name."""
    parts = directory.split("/")
    return len(parts) == 3 and all(_PART.match(p) and p not in (".", "..") for p in parts)


def parse_record(raw: bytes, where: str) -> Record:
    def bad(why: str) -> InputError:
        return InputError(f"not an ownership record dativo-tf writes ({why}); restore it from version control, "
                          "or delete it to treat the folder's files as foreign", path=where)

    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad("invalid JSON") from None
    if not isinstance(data, dict) or data.get("dativo_tf_record") != 1:
        raise bad("missing \"dativo_tf_record\": 1")
    job, settings, status, files = data.get("job"), data.get("settings"), data.get("status"), data.get("files")
    why = _problem(job, settings, status, files)
    if why:
        raise bad(why)
    return Record(job, settings, status, dict(files))


def _problem(job: Any, settings: Any, status: Any, files: Any) -> str | None:
    """Why these are not the fields of a record dativo-tf writes, or None."""
    if not isinstance(job, str) or not job or _CONTROL.search(job) or job.startswith("/") or ".." in job.split("/"):
        return "\"job\" must be a relative path without control characters"
    if settings is not None and (not isinstance(settings, str) or _CONTROL.search(settings)):
        return "\"settings\" must be a path or null"
    if status not in STATUSES:
        return f"\"status\" must be one of {', '.join(STATUSES)}"
    if not isinstance(files, dict):
        return "\"files\" must be a mapping of file name to sha256"
    for name, digest in files.items():
        if name not in GENERATED_NAMES:
            return f"{name!r} is not a file dativo-tf generates ({', '.join(sorted(GENERATED_NAMES))})"
        if not isinstance(digest, str) or not _SHA.match(digest):
            return f"the sha256 of {name!r} is not 64 hex digits"
    return None


def known_record(job: str, settings: str | None, files: dict[str, str], sha: str) -> tuple[bytes, Record] | None:
    """(bytes, record) of the active record of `job` with these files, when those bytes hash to `sha`: a record
    on disk known to hash to `sha` (an up-to-date job's, see `cache.split`) then holds exactly them, and need
    not be read or parsed again. None when they do not, or would not be a valid record."""
    if _problem(job, settings, "active", files):
        return None
    record = Record(job, settings, "active", dict(sorted(files.items())))
    raw = record.dumps()
    return (raw, record) if hashlib.sha256(raw).hexdigest() == sha else None


# --- reading without following symlinks ---------------------------------------------------------------


def read_regular(path: str | Path, shown: str) -> bytes | None:
    """The bytes of a regular file, None when nothing is there. A symlink, folder, FIFO or device standing
    at `path` is an error: dativo-tf never reads, hashes or diffs through one."""
    found = read_regular_stat(path, shown)
    return None if found is None else found[0]


def read_regular_stat(path: str | Path, shown: str) -> tuple[bytes, os.stat_result] | None:
    """`read_regular`, with the file's status as it was opened."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if os.path.islink(path):
            raise ForbiddenPathError("is a symlink where dativo-tf keeps a generated file; dativo-tf never "
                                     "follows symlinks in the output folder: remove it", path=shown) from None
        raise InputError(f"cannot read: {exc.strerror}", path=shown) from None
    data, info = read_opened(fd)
    if data is None:
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ForbiddenPathError(f"is {kind} where dativo-tf keeps a generated file; move it away", path=shown)
    return data, info


def check_folder(path: Path, shown: str) -> bool:
    """True when `path` is a real folder, False when absent; a symlink or a file there is an error."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode):
        raise ForbiddenPathError("is a symlink in the output folder; dativo-tf never writes or deletes through "
                                 "symlinks: replace it with a real folder", path=shown)
    if not stat.S_ISDIR(info.st_mode):
        raise ForbiddenPathError("is not a folder, but dativo-tf needs a workspace folder there", path=shown)
    return True


def folders_on_the_way(root: Path, directory: str, prefix: str):
    """(path, as shown to users) of every folder from the output root down to `directory`."""
    current, shown = root, prefix.rstrip("/")
    for part in directory.split("/"):
        current, shown = current / part, (f"{shown}/{part}" if shown else part)
        yield current, shown


def check_folders(root: Path, directory: str, prefix: str, known: dict[str, bool] | None = None) -> bool:
    """Every folder from the output root down to `directory` is a real folder (or absent). True if it exists.
    `known`: what `check_folder` found for the folders above `directory` earlier under the same lock; filled in
    here (a thousand workspaces share a dozen tenant and environment folders)."""
    parts, base = directory.split("/"), prefix.rstrip("/")
    for depth in range(1, len(parts) + 1):
        folder = "/".join(parts[:depth])
        above = known is not None and depth < len(parts)
        exists = known.get(folder) if above else None
        if exists is None:
            exists = check_folder(root / folder, f"{base}/{folder}" if base else folder)
            if above:
                known[folder] = exists
        if not exists:
            return False
    return True


def scan(root: Path, prefix: str, known: dict[str, bytes | tuple[bytes, Record]] | None = None,
         ) -> dict[str, tuple[Record, bytes]]:
    """Every workspace record under the output root: {tenant/env/job: (record, raw bytes)}.
    Symlinked folders are errors, not followed. `known`: records already read in this run, under the same
    lock, by their path (`root/tenant/env/job/.dativo-tf.json`): their bytes, or (bytes, record) when the
    record is known too (`known_record`)."""
    known = known or {}
    found: dict[str, tuple[Record, bytes]] = {}

    def folders(path: Path, shown: str) -> list[tuple[str, Path, str]]:
        out = []
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError):
            return out
        for entry in entries:
            if entry.name.startswith(".") or not _PART.match(entry.name):
                continue
            if entry.is_symlink():
                if entry.is_dir():  # a symlinked folder where workspaces live
                    raise ForbiddenPathError("is a symlink in the output folder; dativo-tf never follows "
                                             "symlinks there: replace it with a real folder",
                                             path=f"{shown}{entry.name}")
                continue
            if entry.is_dir(follow_symlinks=False):
                out.append((entry.name, Path(entry.path), f"{shown}{entry.name}/"))
        return out

    for tenant, tpath, tshown in folders(root, prefix):
        for env, epath, eshown in folders(tpath, tshown):
            for job, jpath, jshown in folders(epath, eshown):
                raw = known.get(f"{jpath}/{RECORD}")
                if type(raw) is tuple:
                    found[f"{tenant}/{env}/{job}"] = (raw[1], raw[0])
                    continue
                if raw is None:
                    raw = read_regular(jpath / RECORD, jshown + RECORD)
                if raw is not None:
                    found[f"{tenant}/{env}/{job}"] = (parse_record(raw, jshown + RECORD), raw)
    return found


# --- the journal: what an interrupted run was doing ---------------------------------------------------


def load_journal(root: Path, prefix: str) -> dict[str, list[str | None]]:
    """{relative path: [old sha256 or None, new sha256 or None]} of a run that did not finish, or {}."""
    raw = read_regular(root / JOURNAL, prefix + JOURNAL)
    if raw is None:
        return {}
    where = prefix + JOURNAL

    def bad() -> InputError:
        return InputError("not a journal dativo-tf writes; delete it (it only exists while a run writes)", path=where)

    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad() from None
    entries = data.get("changes") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise bad()
    for path, shas in entries.items():
        directory, _, name = path.rpartition("/")
        if (not valid_directory(directory) or name not in GENERATED_NAMES | {RECORD} or not isinstance(shas, list)
                or len(shas) != 2 or not all(s is None or (isinstance(s, str) and _SHA.match(s)) for s in shas)):
            raise bad()
    return entries


def dump_journal(entries: dict[str, list[str | None]]) -> bytes:
    return (json.dumps({"changes": dict(sorted(entries.items()))}, indent=2, sort_keys=True) + "\n").encode()


def load_legacy_manifest(root: Path, prefix: str, settings: str) -> dict[str, Record]:
    """The workspaces of a dativo-tf 0.1 manifest, as records (validated like them); {} when absent."""
    where = prefix + LEGACY_MANIFEST
    raw = read_regular(root / LEGACY_MANIFEST, where)
    if raw is None:
        return {}
    try:
        out = {}
        for directory, entry in json.loads(raw)["workspaces"].items():
            record = parse_record(json.dumps({"dativo_tf_record": 1, "job": entry["job"], "settings": settings,
                                              "status": "active", "files": entry["files"]}).encode(), where)
            if valid_directory(directory):
                out[directory] = record
        return out
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputError("not a manifest dativo-tf 0.1 wrote; delete it", path=where) from None
