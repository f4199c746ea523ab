"""The published hooks, run for real through `pre-commit try-repo` against a git repo holding the examples."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT

PRE_COMMIT = Path(sys.executable).with_name("pre-commit")


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.mark.skipif(not PRE_COMMIT.exists() or not shutil.which("git"), reason="pre-commit and git are test dependencies")
def test_hooks_through_pre_commit_try_repo(tmp_path):
    repo = tmp_path / "infra"
    shutil.copytree(EXAMPLES, repo, ignore=shutil.ignore_patterns("workspaces", ".terraform"))
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}

    def hook(hook_id):
        return subprocess.run([str(PRE_COMMIT), "try-repo", str(ROOT), hook_id, "--all-files"], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=600)

    check = hook("dativo-tf-check")
    assert check.returncode == 1, check.stdout + check.stderr  # nothing generated yet: out of date
    assert not (repo / "workspaces").exists()
    generate = hook("dativo-tf-generate")
    assert generate.returncode == 1, generate.stdout  # files changed: pre-commit fails the commit
    assert (repo / "workspaces/acme/production/orders_ecs/main.tf").is_file()
    git("add", "-A", cwd=repo)
    again = hook("dativo-tf-generate")
    assert again.returncode == 0, again.stdout + again.stderr
    assert hook("dativo-tf-check").returncode == 0
