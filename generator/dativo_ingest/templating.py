"""The one Jinja environment, and compiling its workspace templates in a forked process while this one goes on.

Compiling the workspace templates takes ~0.13 s, and a large render needs all of them before its workers start.
Such a run forks a child to compile them (`compile_aside`) while this process goes on reading the settings and
importing the models. The child hands the compiled code back over a pipe, through Jinja's bytecode-cache hook:
the code never touches disk, and nothing but this run's own child can supply it.
"""

from __future__ import annotations

import marshal
import os
import select
import signal
import sys
from functools import lru_cache
from importlib.resources import files

import jinja2

from dativo_ingest import hcl

WORKSPACE_DIRS = ("workspace", "aws", "gcp", "module")  # the template folders a workspace renders from


class HandedOver(jinja2.BytecodeCache):
    """Code compiled by a forked child of this process: {bucket key: (source checksum, code)}. A template whose
    source differs from what the child compiled is compiled here, as without it."""

    def __init__(self) -> None:
        self.code: dict[str, tuple[str, object]] = {}
        self.pending: tuple[int, int] | None = None  # (child pid, read end of its pipe) until received

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if self.pending is not None:
            self._receive()
        checksum, code = self.code.get(bucket.key, (None, None))
        if checksum == bucket.checksum:
            bucket.code = code

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.code[bucket.key] = (bucket.checksum, bucket.code)

    def _receive(self) -> None:
        assert self.pending is not None
        pid, fd = self.pending
        self.pending = None
        chunks = []
        waiting = select.poll()  # (not select(): it cannot wait on a descriptor numbered 1024 or more)
        waiting.register(fd, select.POLLIN)
        try:  # a child that does not answer in time is stopped
            while waiting.poll(_PATIENCE_SECONDS * 1000) and (chunk := os.read(fd, 1 << 20)):
                chunks.append(chunk)
        finally:
            _stop(pid, fd)
        try:
            self.code.update(marshal.loads(b"".join(chunks)))
        except (EOFError, ValueError, TypeError):  # the child failed: the templates are compiled here
            pass


_PATIENCE_SECONDS = 30


def _stop(pid: int, fd: int) -> None:
    os.close(fd)
    try:
        os.kill(pid, signal.SIGKILL)  # a no-op for a child that exited; it stays ours to reap until waited for
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):  # reaped already (an application that ignores SIGCHLD)
        pass


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one Jinja environment: strict, deterministic, with the HCL filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(files("dativo_ingest.templates"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        auto_reload=False,  # the templates are the package's own: no need to look for changes on every use
        bytecode_cache=HandedOver(),
    )
    env.filters.update(hcl=hcl.value, hcl_string=hcl.string, hcl_key=hcl.key, hcl_attributes=hcl.attributes)
    return env


def workspace_templates(env: jinja2.Environment) -> list[str]:
    return env.list_templates(filter_func=lambda n: n.endswith(".j2") and n.split("/")[0] in WORKSPACE_DIRS)


def compile_aside() -> None:
    """Compile every workspace template in a forked child; `environment()` takes the code when first asked for
    a template. Call it only where fork is available. A process running other threads compiles them itself:
    a fork copies the locks those threads hold, and the child could wait for one forever."""
    from dativo_ingest.writer import release_inherited_locks  # imported here: the child imports nothing

    env = environment()
    cache = env.bytecode_cache
    assert isinstance(cache, HandedOver)
    threading = sys.modules.get("threading")
    if cache.pending is not None or cache.code or (threading is not None and threading.active_count() > 1):
        return
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # no process to spare: the templates compile here
        os.close(read)
        os.close(write)
        return
    if pid:
        os.close(write)
        cache.pending = (pid, read)
        return
    status = 1
    try:  # the child: compile, send, and exit without running any of the parent's exit handlers
        os.close(read)
        quiet = os.open(os.devnull, os.O_RDWR)
        # nothing to say; and holding the parent's output open would keep a reader waiting (the pipe itself is
        # one of them when the parent runs with its standard streams closed)
        for fd in {0, 1, 2} - {write}:
            os.dup2(quiet, fd)
        release_inherited_locks()  # a child outliving a killed parent must not keep the output folder locked
        for name in workspace_templates(env):
            env.get_template(name)
        view = memoryview(marshal.dumps(cache.code))
        while view:
            view = view[os.write(write, view):]
        status = 0
    finally:
        os._exit(status)


def discard_aside() -> None:
    """Stop a child `compile_aside` started whose code was never asked for (the run ended before rendering)."""
    cache = environment().bytecode_cache
    if isinstance(cache, HandedOver) and cache.pending is not None:
        pending, cache.pending = cache.pending, None
        _stop(*pending)
