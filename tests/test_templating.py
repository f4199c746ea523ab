"""The workspace templates compiled in a forked child (`templating.compile_aside`) are the templates compiled here."""

from __future__ import annotations

import gc
import hashlib
import os
import pickle
import resource
import shutil
import subprocess
import sys
import threading
import time
from importlib.resources import files

import jinja2
import pytest

from dativo_ingest import templating, yamlsource
from dativo_ingest.pipeline import render_all
from dativo_ingest.project import ProjectSettings


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A new environment whose `compile` records each template this process compiles (a child's are its own), with
    no compiled code cached beside the templates (see `compiled_env` for that)."""
    templating.environment.cache_clear()
    env = templating.environment()
    env.bytecode_cache.directory = str(tmp_path / "compiled")
    compiled: list[str] = []
    real = env.compile

    def compile(source, name=None, filename=None, *args, **kwargs):
        compiled.append(name)
        return real(source, name, filename, *args, **kwargs)

    monkeypatch.setattr(env, "compile", compile)
    env.compiled_here = compiled
    yield env
    templating.discard_aside()
    templating.environment.cache_clear()


def _gone(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_templates_compiled_in_a_child_are_the_templates_compiled_here(env):
    names = templating.workspace_templates(env)
    assert len(names) >= 10 and "workspace/variables.tf.j2" in names
    templating.compile_aside()
    pid, _ = env.bytecode_cache.pending
    for name in names:
        env.get_template(name)
    assert env.compiled_here == []  # every one came from the child
    assert env.bytecode_cache.pending is None and _gone(pid)
    for name in names:
        source, filename, _ = env.loader.get_source(env, name)
        key = env.bytecode_cache.get_cache_key(name, filename)
        checksum, code = env.bytecode_cache.code[key]
        assert checksum == env.bytecode_cache.get_source_checksum(source)
        assert code == env.compile(source, name, filename)


def _recording(env: jinja2.Environment) -> jinja2.Environment:
    """`env`, recording in `env.compiled_here` each template it compiles."""
    env.compiled_here = compiled = []
    real = env.compile

    def compile(source, name=None, filename=None, *args, **kwargs):
        compiled.append(name)
        return real(source, name, filename, *args, **kwargs)

    env.compile = compile
    return env


@pytest.fixture
def compiled_env(tmp_path):
    """(a new environment over a copy of the templates, caching their compiled code in a folder of its own, that
    folder): call it again for the next run's environment."""
    templates = tmp_path / "templates"
    shutil.copytree(str(files("dativo_ingest.templates")), templates, ignore=shutil.ignore_patterns("__pycache__"))
    folder = templates / "__pycache__"
    return lambda: _recording(templating.new_environment(str(templates), str(folder))), templates, folder


def test_compiled_templates_are_cached_in_the_users_cache_folder_not_in_the_package(monkeypatch, tmp_path):
    """Outside the installed package: uninstalling or upgrading leaves nothing of it behind."""
    monkeypatch.setenv("DATIVO_TF_CACHE_DIR", str(tmp_path / "cache"))
    templating.environment.cache_clear()
    try:
        env = templating.environment()
        assert env.loader.searchpath == [str(files("dativo_ingest.templates"))]
        assert env.bytecode_cache.directory == str(tmp_path / "cache/templates")
        env.get_template("workspace/versions.tf.j2")
        folder = tmp_path / "cache/templates"
        assert len(list(folder.iterdir())) == 1 and folder.stat().st_mode & 0o777 == 0o700
    finally:
        templating.environment.cache_clear()


def test_templates_compiled_by_one_run_are_loaded_by_the_next_without_compiling(compiled_env):
    new, _, folder = compiled_env
    first = new()
    names = templating.workspace_templates(first)
    compiled = {name: first.get_template(name).root_render_func.__code__ for name in names}
    assert sorted(first.compiled_here) == sorted(names) and len(list(folder.iterdir())) == len(names)
    second = new()
    loaded = {name: second.get_template(name).root_render_func.__code__ for name in names}
    assert second.compiled_here == [] and loaded == compiled


def test_a_template_edited_after_it_was_compiled_is_compiled_again(compiled_env):
    new, templates, _ = compiled_env
    source = templates / "workspace/probe.tf.j2"
    source.write_text("first {{ x }}\n")
    assert new().get_template("workspace/probe.tf.j2").render(x=1) == "first 1\n"
    source.write_text("other {{ x }}\n")  # the same size
    env = new()
    assert env.get_template("workspace/probe.tf.j2").render(x=1) == "other 1\n"
    assert env.compiled_here == ["workspace/probe.tf.j2"]


@pytest.mark.parametrize("damage", ["truncated", "a bad checksum record", "bad code", "empty", "a folder"])
def test_compiled_code_that_cannot_be_read_is_compiled_again(compiled_env, damage):
    new, _, folder = compiled_env
    expected = new().get_template("workspace/versions.tf.j2").root_render_func.__code__
    (cached,) = folder.iterdir()
    data = cached.read_bytes()
    cached.unlink()
    if damage == "a folder":
        cached.mkdir()
    else:
        magic = len(jinja2.bccache.bc_magic)
        checksum = magic + len(pickle.dumps(pickle.loads(data[magic:]), 2))  # (the code follows the checksum)
        cached.write_bytes({"truncated": data[:len(data) // 2], "a bad checksum record": data[:magic] + b"\xff" * 200,
                            "bad code": data[:checksum] + b"\xff" * 200, "empty": b""}[damage])
    env = new()
    assert env.get_template("workspace/versions.tf.j2").root_render_func.__code__ == expected
    assert env.compiled_here == ["workspace/versions.tf.j2"]


@pytest.mark.parametrize("folder", ["writable by its group", "writable by anyone", "another user's", "a link"])
def test_code_in_a_folder_someone_else_can_write_is_not_run(compiled_env, folder):
    """The cached code runs as this user: a folder another user owns, or may write to, could hold theirs."""
    new, _, cached = compiled_env
    new().get_template("workspace/versions.tf.j2")
    if folder == "a link":
        cached.rename(cached.with_name("real"))
        cached.symlink_to(cached.with_name("real"))
    elif folder == "another user's":
        if os.getuid() != 0:
            pytest.skip("only root can give a folder away")
        os.chown(cached, 4242, -1)
    else:
        cached.chmod(0o770 if folder == "writable by its group" else 0o777)
    env = new()
    env.get_template("workspace/versions.tf.j2")
    env.get_template("workspace/backend.tf.j2")
    assert env.compiled_here == ["workspace/versions.tf.j2", "workspace/backend.tf.j2"]
    assert len(list(cached.iterdir())) == 1  # nothing written there either


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_where_compiled_code_should_be_does_not_block(compiled_env):
    new, templates, cached = compiled_env
    env = new()
    env.get_template("workspace/versions.tf.j2")
    (entry,) = cached.iterdir()
    entry.unlink()
    os.mkfifo(entry)
    env = new()
    env.get_template("workspace/versions.tf.j2")  # (a blocking open would hang the test)
    assert env.compiled_here == ["workspace/versions.tf.j2"]


def test_a_change_to_the_code_that_compiles_templates_compiles_them_again(compiled_env, monkeypatch, tmp_path):
    """The compiler bakes in how each filter is called, and the result of one applied to a constant: a change to
    `hcl` (or to how the environment is set up) must not meet code compiled before it."""
    new, _, _ = compiled_env
    sources = []
    for path in templating.COMPILER_SOURCES:
        sources.append(tmp_path / path.name)
        sources[-1].write_bytes(path.read_bytes())
    monkeypatch.setattr(templating, "COMPILER_SOURCES", tuple(sources))
    new().get_template("workspace/versions.tf.j2")
    again = new()
    again.get_template("workspace/versions.tf.j2")
    assert again.compiled_here == []
    sources[-1].write_bytes(sources[-1].read_bytes() + b"\n# a filter changed\n")
    changed = new()
    changed.get_template("workspace/versions.tf.j2")
    assert changed.compiled_here == ["workspace/versions.tf.j2"]


def test_only_the_parent_writes_the_code_its_child_compiled(env, monkeypatch):
    """A child is stopped whenever its parent is done with it: had it been writing, a temporary file would stay."""
    writers = env.bytecode_cache.directory + ".writers"
    real = jinja2.FileSystemBytecodeCache.dump_bytecode

    def dump(self, bucket):
        with open(writers, "a") as log:
            log.write(f"{os.getpid()}\n")
        real(self, bucket)

    monkeypatch.setattr(jinja2.FileSystemBytecodeCache, "dump_bytecode", dump)  # the forked child inherits it
    templating.compile_aside()
    env.get_template("workspace/versions.tf.j2")
    written = open(writers).read().split()
    assert set(written) == {str(os.getpid())}
    assert len(written) == len(os.listdir(env.bytecode_cache.directory)) == len(templating.workspace_templates(env))


def test_a_cache_folder_that_cannot_be_written_leaves_the_code_compiled_in_memory(tmp_path):
    """A system-wide install this user cannot write to compiles on each run, as with no cache at all."""
    blocked = tmp_path / "a file"
    blocked.write_text("")
    templates = str(files("dativo_ingest.templates"))
    for folder in (blocked / "compiled", blocked):
        env = _recording(templating.new_environment(templates, str(folder)))
        env.get_template("workspace/versions.tf.j2")
        env.get_template("workspace/versions.tf.j2")
        assert env.compiled_here == ["workspace/versions.tf.j2"] and blocked.read_text() == ""


def test_code_compiled_by_another_jinja_or_another_setup_is_not_used(compiled_env, monkeypatch):
    """The cached code is keyed by Jinja's version and the environment's options, not only by the template's source:
    an upgrade or a changed option compiles again."""
    new, _, _ = compiled_env
    new().get_template("workspace/versions.tf.j2")
    monkeypatch.setattr(jinja2, "__version__", "99.0")
    upgraded = new()
    upgraded.get_template("workspace/versions.tf.j2")
    assert upgraded.compiled_here == ["workspace/versions.tf.j2"]
    monkeypatch.undo()
    monkeypatch.setattr(templating, "OPTIONS", {**templating.OPTIONS, "trim_blocks": False})
    changed = new()
    changed.get_template("workspace/versions.tf.j2")
    assert changed.compiled_here == ["workspace/versions.tf.j2"]


def test_a_child_that_fails_leaves_the_templates_to_be_compiled_here(env, monkeypatch):
    def broken(_env):
        raise RuntimeError("the child fails")

    monkeypatch.setattr(templating, "workspace_templates", broken)  # the forked child inherits it
    templating.compile_aside()
    pid, _ = env.bytecode_cache.pending
    env.get_template("workspace/versions.tf.j2")
    assert env.compiled_here == ["workspace/versions.tf.j2"] and _gone(pid)


def test_a_child_that_hangs_is_stopped_and_the_templates_are_compiled_here(env, monkeypatch):
    def hang(_env):  # as a child forked while another thread held a lock would
        time.sleep(60)

    monkeypatch.setattr(templating, "workspace_templates", hang)
    monkeypatch.setattr(templating, "_PATIENCE_SECONDS", 0.2)
    templating.compile_aside()
    pid, _ = env.bytecode_cache.pending
    started = time.monotonic()
    env.get_template("workspace/versions.tf.j2")
    assert time.monotonic() - started < 30  # not the child's 60 seconds
    assert env.compiled_here == ["workspace/versions.tf.j2"] and _gone(pid)


def test_a_template_that_differs_from_what_the_child_compiled_is_compiled_here(env):
    templating.compile_aside()
    env.get_template("workspace/backend.tf.j2")
    assert env.compiled_here == []
    cache = env.bytecode_cache
    for key, (checksum, code) in list(cache.code.items()):
        cache.code[key] = ("another source", code)
    shutil.rmtree(cache.directory)  # (where the child also cached what it compiled)
    env.cache.clear()
    env.get_template("workspace/backend.tf.j2")
    assert env.compiled_here == ["workspace/backend.tf.j2"]


def test_a_run_that_ends_before_rendering_stops_the_child(env, examples_copy, monkeypatch):
    project = ProjectSettings.load(examples_copy / "dativo-tf.yaml")
    forked = []
    real = templating.compile_aside

    def compile_aside(jobs=()):
        real(jobs)
        forked.append(env.bytecode_cache.pending[0])

    def invalid():
        raise ValueError("the settings are invalid")

    monkeypatch.setattr(templating, "compile_aside", compile_aside)
    monkeypatch.setattr(project, "validate", invalid)
    with pytest.raises(ValueError):
        render_all(project, workers=2)
    assert len(forked) == 1 and _gone(forked[0])
    assert env.bytecode_cache.pending is None and env.compiled_here == []


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else -1


def test_a_process_with_other_threads_compiles_its_templates_itself(env):
    """A fork copies locks another thread may hold (the child would wait for them forever): an application
    that calls the API from a threaded host gets no child."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        templating.compile_aside()
        assert env.bytecode_cache.pending is None
        env.get_template("workspace/versions.tf.j2")
        assert env.compiled_here == ["workspace/versions.tf.j2"]
    finally:
        stop.set()
        other.join()


def test_a_fork_that_fails_leaves_no_descriptor_open_and_the_templates_are_compiled_here(env, monkeypatch):
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    before = _open_descriptors()
    monkeypatch.setattr(templating.os, "fork", no_fork)
    templating.compile_aside()
    assert env.bytecode_cache.pending is None and _open_descriptors() == before
    env.get_template("workspace/versions.tf.j2")
    assert env.compiled_here == ["workspace/versions.tf.j2"]


def test_a_pipe_numbered_above_1024_is_read_like_any_other(env):
    """select() cannot wait on descriptor 1024 or above: a long-running host may hold that many."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this machine allows only {hard} open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = []
    try:
        while not held or held[-1] < 1030:
            held.append(os.open(os.devnull, os.O_RDONLY))
        templating.compile_aside()
        assert env.bytecode_cache.pending[1] > 1024
        env.get_template("workspace/versions.tf.j2")
        assert env.compiled_here == []
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_an_application_that_froze_its_objects_keeps_them_frozen(env, examples_copy):
    project = ProjectSettings.load(examples_copy / "dativo-tf.yaml")
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        render_all(project, workers=2)
        assert gc.get_freeze_count() >= frozen > 0
    finally:
        gc.unfreeze()


def test_a_parent_run_with_its_standard_streams_closed_still_gets_the_compiled_code(tmp_path):
    """With descriptors 0-2 closed the pipe takes their numbers: the child must not point it at /dev/null."""
    report = tmp_path / "report.txt"
    script = (
        "import sys\nfrom dativo_ingest import templating\n"
        f"env = templating.environment()\nenv.bytecode_cache.directory = {str(tmp_path / 'compiled')!r}\n"
        "templating.compile_aside()\npipe = env.bytecode_cache.pending[1]\n"
        "env.get_template('workspace/versions.tf.j2')\n"
        f"open({str(report)!r}, 'w').write(f'{{pipe}} {{len(env.bytecode_cache.code)}}')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, preexec_fn=lambda: (os.close(1), os.close(2)))
    pipe, handed_over = map(int, report.read_text().split())
    assert pipe <= 2 and handed_over == len(templating.workspace_templates(templating.environment()))


def _wait_for_exit(pid: int) -> None:
    """Until the child has exited (a zombie we have not reaped), so that everything it sent is in the pipe."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                return
        time.sleep(0.01)
    raise AssertionError("the child did not finish")


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="waits for the child through /proc")


@needs_proc
@pytest.mark.parametrize("in_memory_file", [True, False], ids=["in an in-memory file", "down the pipe"])
def test_jobs_parsed_in_the_child_are_the_jobs_as_read_and_parsed_here(env, examples_copy, monkeypatch,
                                                                       in_memory_file):
    if not in_memory_file:
        monkeypatch.delattr(os, "memfd_create", raising=False)
    elif not hasattr(os, "memfd_create"):
        pytest.skip("no in-memory files here")
    jobs = sorted((examples_copy / "jobs").rglob("*.yaml"))
    (examples_copy / "jobs/acme/broken.yaml").write_text("tenant_id: [acme\n")  # the child skips what fails
    jobs.insert(1, examples_copy / "jobs/acme/broken.yaml")
    before = _open_descriptors()
    templating.compile_aside(jobs)
    pid, _ = env.bytecode_cache.pending
    assert (env.bytecode_cache.parsed is not None) == in_memory_file
    _wait_for_exit(pid)
    env.get_template("workspace/versions.tf.j2")
    assert env.compiled_here == [] and _gone(pid) and _open_descriptors() == before
    ahead = dict(yamlsource._parsed_ahead)
    assert sorted(ahead) == sorted(str(p) for p in jobs if p.name != "broken.yaml")
    for path in jobs:
        if path.name == "broken.yaml":
            continue
        seen: list = []
        text = yamlsource.read_text(path, seen)
        # filed as the child pickled it: the process that renders the job unpickles it (a worker, beside another)
        assert isinstance(ahead[str(path)], bytes)
        data, ahead_text, read = pickle.loads(ahead[str(path)])
        assert (data, ahead_text, read[0], read[2]) == (yamlsource.parse(text, path), text, seen[0][0], seen[0][2])
        assert (read[1].st_ino, read[1].st_ctime_ns) == (seen[0][1].st_ino, seen[0][1].st_ctime_ns)
        # taken once: the next load reads the file
        assert yamlsource.load_mapping(path, taken := []) == (data, text) and taken == [read]
        assert str(path) not in yamlsource._parsed_ahead
    templating.discard_aside()
    assert yamlsource._parsed_ahead == {}


@needs_proc
def test_a_job_rendered_from_what_the_child_read_records_the_sha256_of_those_bytes(env, examples_copy, monkeypatch):
    """The child reads a job before the workers start: a job edited in between renders as the child read it,
    and the render cache records the sha256 of the bytes rendered, so the next run sees the edit."""
    project = ProjectSettings.load(examples_copy / "dativo-tf.yaml")
    job = examples_copy / "jobs/acme/orders_ecs.yaml"
    before = job.read_bytes()
    real_receive = templating.HandedOver._receive

    def receive_after_an_edit(self):
        _wait_for_exit(self.pending[0])
        job.write_bytes(before.replace(b"memory_mb: 4096", b"memory_mb: 2048"))
        real_receive(self)

    monkeypatch.setattr(templating.HandedOver, "_receive", receive_after_an_edit)
    rendered = render_all(project, workers=2)
    ws = next(w for w in rendered.workspaces if w.job == "jobs/acme/orders_ecs.yaml")
    assert ws.input_shas["jobs/acme/orders_ecs.yaml"] == hashlib.sha256(before).hexdigest()
    assert ws.staged is None and b"4096" in ws.files["terraform.tfvars"]
    assert yamlsource._parsed_ahead == {}


def test_a_parsed_job_that_cannot_be_unpickled_is_read_again(examples_copy):
    job = examples_copy / "jobs/acme/orders_ecs.yaml"
    yamlsource.parsed_ahead([(str(job), b"\x80\x05damaged")])
    assert yamlsource.load_mapping(job) == yamlsource.load_mapping(job)
    assert yamlsource.load_mapping(job)[1] == job.read_text() and yamlsource._parsed_ahead == {}


def test_a_frame_the_child_was_cut_off_in_is_dropped():
    whole = [(b"c", b"code"), (b"j", b"x" * 100), (b"j", b"y")]
    data = b"".join(templating._FRAME.pack(kind, len(payload)) + payload for kind, payload in whole)
    assert [(k, bytes(p)) for k, p in templating._frames(data)] == whole
    for cut in range(len(data)):
        got = [(k, bytes(p)) for k, p in templating._frames(data[:cut])]
        assert whole[:len(got)] == got and (len(got) == len(whole)) == (cut == len(data))


def test_a_receive_that_is_interrupted_leaves_no_descriptor_open(env, examples_copy, monkeypatch):
    """Ctrl-C (or an application's timeout) while waiting for the code: the in-memory file of parsed jobs is
    closed too, or the next run's workers would inherit it."""
    jobs = sorted((examples_copy / "jobs").rglob("*.yaml"))
    before = _open_descriptors()

    class Interrupted:
        def register(self, *args):
            pass

        def poll(self, *args):
            raise KeyboardInterrupt

    templating.compile_aside(jobs)
    pid, _ = env.bytecode_cache.pending
    monkeypatch.setattr(templating.select, "poll", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        env.get_template("workspace/versions.tf.j2")
    assert _open_descriptors() == before and _gone(pid)
    assert env.bytecode_cache.pending is None and env.bytecode_cache.parsed is None


@needs_proc
def test_a_child_whose_parent_was_killed_stops_parsing(tmp_path, examples_copy):
    """A run killed (CI timeout, kill -9) leaves its child orphaned: it stops instead of parsing every job."""
    job = examples_copy / "jobs/acme/orders_ecs.yaml"
    pid_file = tmp_path / "child.pid"
    script = (
        "import os\nfrom dativo_ingest import templating\n"
        f"templating.compile_aside([{str(job)!r}] * 200_000)\n"
        "pid, fd = templating.environment().bytecode_cache.pending\n"
        f"open({str(pid_file)!r}, 'w').write(str(pid))\n"
        "import select\nwaiting = select.poll()\nwaiting.register(fd, select.POLLIN)\n"
        "waiting.poll(30_000)\n"  # the code is sent: the child is parsing now
        "os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=examples_copy)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 20
    while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
        with open(f"/proc/{child}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    assert time.monotonic() < deadline, "the orphaned child went on parsing"


@needs_proc
def test_a_parent_run_with_its_standard_streams_closed_still_gets_parsed_jobs(tmp_path, examples_copy):
    report = tmp_path / "report.txt"
    jobs = sorted(str(p) for p in (examples_copy / "jobs").rglob("*.yaml"))
    script = (
        "import os, time\nfrom dativo_ingest import templating, yamlsource\n"
        f"env = templating.environment()\ntemplating.compile_aside({jobs!r})\n"
        "pid = env.bytecode_cache.pending[0]\n"
        "while open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[0] != 'Z': time.sleep(0.01)\n"
        "env.get_template('workspace/versions.tf.j2')\n"
        f"open({str(report)!r}, 'w').write(str(len(yamlsource._parsed_ahead)))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60,
                   preexec_fn=lambda: (os.close(0), os.close(1), os.close(2)))
    assert int(report.read_text()) == len(jobs)


class _Items(dict):
    pass


class _Attrs:
    name = "attribute"

    def __getitem__(self, key):
        return f"item {key}"


@pytest.mark.parametrize("obj", [{"name": "v"}, {}, {"items": "shadow", "get": 1, "keys": None}, {1: "int key"},
                                 _Items(name="subclass"), _Attrs(), "text", ["a"], None])
@pytest.mark.parametrize("attribute", ["name", "items", "get", "keys", "__class__", "missing", "1"])
def test_attribute_lookup_is_jinjas_own(obj, attribute):
    """Our environment looks a plain dict's item up before trying the attribute dict does not have: what a
    template reads is what Jinja's own lookup gives, method names and missing keys included."""
    ours = templating.environment().getattr(obj, attribute)
    theirs = jinja2.Environment(undefined=jinja2.StrictUndefined).getattr(obj, attribute)
    if isinstance(theirs, jinja2.Undefined):
        assert isinstance(ours, jinja2.StrictUndefined) and ours._undefined_name == theirs._undefined_name
    else:
        assert ours == theirs
