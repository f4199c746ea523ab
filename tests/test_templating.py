"""The workspace templates compiled in a forked child (`templating.compile_aside`) are the templates compiled here."""

from __future__ import annotations

import os
import time

import pytest

from dativo_ingest import templating
from dativo_ingest.pipeline import render_all
from dativo_ingest.project import ProjectSettings


@pytest.fixture
def env(monkeypatch):
    """A new environment whose `compile` records each template this process compiles (a child's are its own)."""
    templating.environment.cache_clear()
    env = templating.environment()
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
    env.cache.clear()
    env.get_template("workspace/backend.tf.j2")
    assert env.compiled_here == ["workspace/backend.tf.j2"]


def test_a_run_that_ends_before_rendering_stops_the_child(env, examples_copy, monkeypatch):
    project = ProjectSettings.load(examples_copy / "dativo-tf.yaml")
    forked = []
    real = templating.compile_aside

    def compile_aside():
        real()
        forked.append(env.bytecode_cache.pending[0])

    def invalid():
        raise ValueError("the settings are invalid")

    monkeypatch.setattr(templating, "compile_aside", compile_aside)
    monkeypatch.setattr(project, "validate", invalid)
    with pytest.raises(ValueError):
        render_all(project, workers=2)
    assert len(forked) == 1 and _gone(forked[0])
    assert env.bytecode_cache.pending is None and env.compiled_here == []
