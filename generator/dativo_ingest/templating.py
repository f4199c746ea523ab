"""The one Jinja environment, and work done aside in a forked process while this one goes on.

Compiling the workspace templates takes ~0.15 s, so their compiled code is cached in this user's cache folder
(see `HandedOver`): a run loads it in a few milliseconds. A large render needs every template before its workers
start, and reads every job: such a run forks a child (`compile_aside`) that loads the templates (or compiles them,
when nothing is cached) while this process goes on reading the settings and importing the models, and hands the
code back over a pipe, through Jinja's bytecode-cache hook. With the code sent, the child
goes on reading and parsing the jobs to render, in order, until this process asks for the code: the jobs it got
through are not read again (see `yamlsource.load_mapping`), the workers parse the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import marshal
import os
import select
import signal
import stat
import struct
import sys
from collections.abc import Iterator, Sequence
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import jinja2

from dativo_ingest import __version__, hcl, yamlsource
from dativo_ingest.reading import read_opened

WORKSPACE_DIRS = ("workspace", "aws", "gcp", "module")  # the template folders a workspace renders from


class HandedOver(jinja2.FileSystemBytecodeCache):
    """The templates' compiled code: as a forked child of this process compiled it ({bucket key: (source checksum,
    code)}), else as an earlier run cached it in `directory`, else compiled here (and cached there for the next run).

    `directory` is in this user's dativo-tf cache folder, beside the render cache (see `cache.cache_base`): outside
    the installed package, so uninstalling or upgrading leaves nothing of it behind. The code there runs as this
    user, so it is read only while the folder is this user's own, a real folder no one else may write to; else the
    code stays in memory, as with no folder at all. Code is used only for the very source it was compiled from
    (Jinja checks a checksum) and only by what compiled it (`compiled_by`, part of the key: see `_compiled_by`).
    Only this process writes there: a child stopped while writing would leave a temporary file behind."""

    def __init__(self, directory: str | None, compiled_by: str) -> None:
        super().__init__(directory or "")
        self.compiled_by = compiled_by
        self.persist = True  # False in the forked child
        self.code: dict[str, tuple[str, object]] = {}
        self.pending: tuple[int, int] | None = None  # (child pid, read end of its pipe) until received
        self.parsed: int | None = None  # the in-memory file the child writes parsed jobs to, when there is one

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        return super().get_cache_key(f"{name}\0{self.compiled_by}", filename)

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if self.pending is not None:
            self._receive()
        checksum, code = self.code.get(bucket.key, (None, None))
        if checksum == bucket.checksum:
            bucket.code = code
            return
        if not self._trusted():
            return
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)  # (not through a link; a FIFO never blocks)
        try:
            fd = os.open(self._get_cache_filename(bucket), flags)
        except OSError:
            return
        data, _ = read_opened(fd)
        try:
            if data is not None:
                bucket.bytecode_from_string(data)
        except Exception:  # damaged: compiled again
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.code[bucket.key] = (bucket.checksum, bucket.code)
        if self.persist:
            self._write(bucket)

    def _write(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            if self.directory:
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
            if self._trusted():
                super().dump_bytecode(bucket)  # (written whole, then renamed into place)
        except OSError:  # a folder this user cannot write: the code stays in memory
            pass

    def _trusted(self) -> bool:
        """`directory` is a real folder of this user's that no one else may write to."""
        getuid = getattr(os, "getuid", None)
        try:
            info = os.lstat(self.directory) if self.directory and getuid else None
        except OSError:
            return False
        return (info is not None and stat.S_ISDIR(info.st_mode) and info.st_uid == getuid()
                and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))

    def _receive(self) -> None:
        """The code, waited for (a child that does not send it in time is stopped), then the jobs the child
        parsed meanwhile, without waiting for more."""
        assert self.pending is not None
        pid, fd = self.pending
        parsed_fd, self.pending, self.parsed = self.parsed, None, None
        sent = bytearray()
        waiting = select.poll()  # (not select(): it cannot wait on a descriptor numbered 1024 or more)
        waiting.register(fd, select.POLLIN)
        jobs = b""
        try:
            while not _has_code(sent) and waiting.poll(_PATIENCE_SECONDS * 1000) and (chunk := os.read(fd, 1 << 20)):
                sent += chunk
            while parsed_fd is None and _has_code(sent) and waiting.poll(0) and (chunk := os.read(fd, 1 << 20)):
                sent += chunk  # no in-memory file: the jobs came down the pipe, as many as it holds
        finally:  # (interrupted too: nothing may stay open for later workers to inherit)
            _stop(pid, fd)  # the child is gone: what it wrote stays as it is
            if parsed_fd is not None:
                jobs = _read_and_close(parsed_fd)
        if parsed_fd is not None and _has_code(sent):  # the pipe held the code frame alone: the jobs follow it
            sent += jobs
        parsed = []
        for kind, payload in _frames(sent):
            try:
                if kind == b"c":
                    received = marshal.loads(payload)
                    self.code.update(received)
                    for key, (checksum, code) in received.items():  # what the child compiled, for the next run
                        bucket = jinja2.bccache.Bucket(None, key, checksum)  # type: ignore[arg-type]
                        bucket.code = code
                        self._write(bucket)
                else:  # (path, the pickled job): unpickled where the job renders
                    name, _, pickled = bytes(payload).partition(b"\0")
                    parsed.append((os.fsdecode(name), pickled))
            except (EOFError, ValueError, TypeError):  # the templates compile here
                break
        yamlsource.parsed_ahead(parsed)


# A frame on the pipe: its kind (b"c": the compiled code, first; b"j": one parsed job) and its length.
_FRAME = struct.Struct("<cQ")
_PIPE_BYTES = 1 << 20  # room for the code (~130 KB), or without an in-memory file a few hundred parsed jobs


def _frames(data: bytes | bytearray) -> Iterator[tuple[bytes, memoryview]]:
    """The whole frames in `data`: the one the child was writing when stopped is cut short, and dropped."""
    view, offset = memoryview(data), 0
    while offset + _FRAME.size <= len(view):
        kind, length = _FRAME.unpack_from(view, offset)
        end = offset + _FRAME.size + length
        if end > len(view):
            return
        yield kind, view[offset + _FRAME.size:end]
        offset = end


def _has_code(data: bytearray) -> bool:
    return len(data) >= _FRAME.size and len(data) >= _FRAME.size + _FRAME.unpack_from(data)[1]


def _send(fd: int, kind: bytes, payload: bytes) -> None:
    view = memoryview(_FRAME.pack(kind, len(payload)) + payload)
    while view:
        view = view[os.write(fd, view):]


_PATIENCE_SECONDS = 30


def _read_and_close(fd: int) -> bytes:
    try:
        chunks, offset = [], 0
        while chunk := os.pread(fd, 1 << 22, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _stop(pid: int, fd: int) -> None:
    os.close(fd)
    try:
        os.kill(pid, signal.SIGKILL)  # a no-op for a child that exited; it stays ours to reap until waited for
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):  # reaped already (an application that ignores SIGCHLD)
        pass


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Environment(jinja2.Environment):
    def getattr(self, obj: object, attribute: str) -> object:
        """`obj.attribute` as Jinja reads it, with a plain dict's item looked up first when dict has no such
        attribute: Jinja tries the attribute first, and the AttributeError costs about a microsecond, some twenty
        times per job. The same result either way."""
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                pass
        return super().getattr(obj, attribute)


OPTIONS = {"undefined": jinja2.StrictUndefined, "keep_trailing_newline": True, "trim_blocks": True,
           "lstrip_blocks": True, "autoescape": False}
FILTERS = {"hcl": hcl.value, "hcl_string": hcl.string, "hcl_key": hcl.key, "hcl_attributes": hcl.attributes}


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one Jinja environment over the package's templates: see `new_environment`."""
    from dativo_ingest.cache import cache_base

    return new_environment(str(files("dativo_ingest.templates")), str(cache_base() / "templates"))


def new_environment(templates: str, compiled: str) -> jinja2.Environment:
    """A Jinja environment over the `templates` folder: strict, deterministic, with the HCL filters, and the
    templates' compiled code cached in the `compiled` folder (see `HandedOver`)."""
    compiled_by = _compiled_by()
    env = _Environment(
        loader=jinja2.FileSystemLoader(templates),
        auto_reload=False,  # the templates are the package's own: no need to look for changes on every use
        bytecode_cache=HandedOver(compiled if compiled_by else None, compiled_by or ""),
        **OPTIONS,
    )
    env.filters.update(FILTERS)
    return env


# The code that decides what a template compiles to, beside Jinja itself: the environment's setup here, and the
# filters (the compiler bakes in how each is called, and the result of one applied to a constant).
COMPILER_SOURCES = (Path(__file__), Path(hcl.__file__))


def _compiled_by() -> str | None:
    """What compiled a template's code, for its cache key: Jinja's version, this interpreter's bytecode, and a
    sha256 of `COMPILER_SOURCES` with the options and filters' names; None when those sources cannot be read."""
    code = hashlib.sha256(__version__.encode())
    try:
        for path in COMPILER_SOURCES:
            code.update(b"\0" + path.read_bytes())
    except OSError:
        return None
    return (f"jinja2 {jinja2.__version__} {sys.implementation.cache_tag} {importlib.util.MAGIC_NUMBER.hex()} "
            f"{code.hexdigest()} {sorted(OPTIONS.items())} {sorted(FILTERS)}")


def workspace_templates(env: jinja2.Environment) -> list[str]:
    return env.list_templates(filter_func=lambda n: n.endswith(".j2") and n.split("/")[0] in WORKSPACE_DIRS)


def compile_aside(jobs: Sequence[Path] = ()) -> None:
    """Compile every workspace template in a forked child, then read and parse `jobs` there, in order;
    `environment()` takes the code, and the jobs parsed so far, when first asked for a template. Call it only
    where fork is available. A process running other threads compiles them itself: a fork copies the locks
    those threads hold, and the child could wait for one forever."""
    from dativo_ingest.writer import release_inherited_locks  # imported here: the child imports nothing

    env = environment()
    cache = env.bytecode_cache
    assert isinstance(cache, HandedOver)
    threading = sys.modules.get("threading")
    if cache.pending is not None or cache.code or (threading is not None and threading.active_count() > 1):
        return
    read, write = os.pipe()
    parsed = None
    if jobs:
        import fcntl  # (fork, and so this child, exists only where fcntl does)

        with contextlib.suppress(AttributeError, OSError):  # Linux: the pipe takes the jobs elsewhere
            parsed = os.memfd_create("dativo-tf-parsed-jobs", os.MFD_CLOEXEC)
            if parsed <= 2:  # standard streams closed: above them, or the child points it at /dev/null
                parsed, low = fcntl.fcntl(parsed, fcntl.F_DUPFD_CLOEXEC, 3), parsed
                os.close(low)
        with contextlib.suppress(AttributeError, OSError):  # Linux: the code does not wait for this process
            fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:  # no process to spare: the templates compile here
        for fd in (read, write) if parsed is None else (read, write, parsed):
            os.close(fd)
        return
    if pid:
        os.close(write)
        cache.pending, cache.parsed = (pid, read), parsed
        return
    status = 1
    try:  # the child: compile, send, parse and send, and exit without running any of the parent's exit handlers
        os.close(read)
        quiet = os.open(os.devnull, os.O_RDWR)
        # nothing to say; and holding the parent's output open would keep a reader waiting (the pipe itself is
        # one of them when the parent runs with its standard streams closed)
        for fd in {0, 1, 2} - {write}:
            os.dup2(quiet, fd)
        release_inherited_locks()  # a child outliving a killed parent must not keep the output folder locked
        cache.persist = False  # the parent writes the code this child sends
        for name in workspace_templates(env):
            env.get_template(name)
        _send(write, b"c", marshal.dumps(cache.code))
        status = 0
        for path in jobs:  # until the parent takes the code (and stops this child), dies, or the jobs run out
            if os.getppid() != parent:
                break
            job = yamlsource.parse_ahead(path)
            if job is not None:
                _send(write if parsed is None else parsed, b"j", os.fsencode(job[0]) + b"\0" + job[1])
    finally:
        os._exit(status)


def discard_aside() -> None:
    """Stop a child `compile_aside` started whose code was never asked for (the run ended before rendering), and
    forget the jobs it parsed: they were read for this run only."""
    cache = environment().bytecode_cache
    if isinstance(cache, HandedOver) and cache.pending is not None:
        pending, parsed, cache.pending, cache.parsed = cache.pending, cache.parsed, None, None
        _stop(*pending)
        if parsed is not None:
            os.close(parsed)
    yamlsource.parsed_ahead([])
