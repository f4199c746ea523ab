"""The CLI: every command and exit code, all-or-nothing writes, the manifest, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from dativo_ingest.cli import main
from tests.conftest import snapshot

RECORD = ".dativo-tf.json"


def run(args, cwd, monkeypatch):
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(main, args)


def test_generate_then_noop_then_check(examples_copy, monkeypatch):
    first = run(["generate"], examples_copy, monkeypatch)
    assert first.exit_code == 0, first.output
    assert "created workspaces/acme/production/orders_ecs/main.tf" in first.stderr
    assert "skipped jobs/acme/legacy_no_infra.yaml (no infrastructure block)" in first.stderr
    before = {p: os.stat(examples_copy / "workspaces" / p).st_mtime_ns for p in snapshot(examples_copy / "workspaces")}
    second = run(["generate"], examples_copy, monkeypatch)
    assert second.exit_code == 0 and "created" not in second.stderr and "updated" not in second.stderr
    after = {p: os.stat(examples_copy / "workspaces" / p).st_mtime_ns for p in before}
    assert before == after, "identical bytes must never be rewritten"
    check = run(["generate", "--check"], examples_copy, monkeypatch)
    assert check.exit_code == 0 and check.stdout == ""


def test_check_and_diff_report_a_change_and_write_nothing(examples_copy, monkeypatch):
    assert run(["generate"], examples_copy, monkeypatch).exit_code == 0
    job = examples_copy / "jobs/acme/orders_ecs.yaml"
    job.write_text(job.read_text().replace("memory_mb: 4096", "memory_mb: 8192"))
    tree = snapshot(examples_copy)
    check = run(["generate", "--check"], examples_copy, monkeypatch)
    assert check.exit_code == 1
    assert "would update workspaces/acme/production/orders_ecs/terraform.tfvars\n" in check.stdout  # data
    assert "would update" not in check.stderr
    diff = run(["generate", "--diff"], examples_copy, monkeypatch)
    assert diff.exit_code == 1
    assert "--- a/workspaces/acme/production/orders_ecs/terraform.tfvars\n" in diff.stdout
    assert "+++ b/workspaces/acme/production/orders_ecs/terraform.tfvars\n" in diff.stdout
    assert "-  memory_mb       = 4096\n+  memory_mb       = 8192\n" in diff.stdout
    assert "would update" not in diff.stdout  # status goes to stderr only
    assert snapshot(examples_copy) == tree


def test_any_error_writes_nothing_and_reports_every_bad_job(examples_copy, monkeypatch):
    (examples_copy / "jobs/acme/bad1.yaml").write_text("tenant_id: acme\nenvironment: p\ninfrastructure:\n  cloud_provider: aws\n  regoin: x\n")
    (examples_copy / "jobs/acme/bad2.yaml").write_text("tenant_id: acme\nenvironment: p\ninfrastructure: {cloud_provider: gcp, runtime_environment: {compute_type: lambda}}\n")
    tree = snapshot(examples_copy)
    result = run(["generate"], examples_copy, monkeypatch)
    assert result.exit_code == 2
    assert "jobs/acme/bad1.yaml:5: error: infrastructure.regoin: unknown key; did you mean 'region'?" in result.stderr
    assert "jobs/acme/bad2.yaml:3: error: infrastructure.runtime_environment.compute_type: 'lambda' is not a compute type for gcp" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(examples_copy) == tree


@pytest.mark.parametrize("name, content, message", [
    ("yaml", "tenant_id: acme\ninfrastructure: [\n", "invalid YAML"),
    ("asset", "tenant_id: acme\nenvironment: p\nasset_path: assets/missing.yaml\ninfrastructure: {cloud_provider: aws, runtime_environment: {compute_type: ecs_task}}\n", "asset file not found"),
    ("cloud", "tenant_id: acme\nenvironment: p\ninfrastructure: {cloud_provider: azure}\n", "'aws' or 'gcp'"),
    ("type", "tenant_id: acme\nenvironment: p\ninfrastructure: {cloud_provider: aws, runtime_environment: {compute_type: ecs_task, cpu_units: many}}\n", "valid integer"),
    ("limit", "tenant_id: acme\nenvironment: p\ninfrastructure: {cloud_provider: aws, runtime_environment: {compute_type: lambda, timeout_seconds: 3600}}\n", "over Lambda's maximum of 900 s"),
    ("escape", "tenant_id: '../../x'\nenvironment: p\ninfrastructure: {cloud_provider: aws, runtime_environment: {compute_type: ecs_task}}\n", "cannot be used as a folder name"),
    ("required_tag", "tenant_id: acme\nenvironment: p\ninfrastructure: {cloud_provider: aws, runtime_environment: {compute_type: ecs_task}, terraform: {resource_refs: {execution_role_arn: 'arn:aws:iam::123456789012:role/r'}}}\n", "required tag(s) missing: CostCenter, Owner"),
    ("envvar", "tenant_id: acme\nenvironment: p\nasset_path: ${DATIVO_NOPE}/a.yaml\ninfrastructure: {cloud_provider: aws}\n", "DATIVO_NOPE is not set"),
])
def test_each_input_error_exits_2_names_the_file_and_changes_nothing(examples_copy, monkeypatch, name, content, message):
    monkeypatch.delenv("DATIVO_NOPE", raising=False)
    assert run(["generate"], examples_copy, monkeypatch).exit_code == 0
    (examples_copy / f"jobs/acme/{name}.yaml").write_text(content)
    tree = snapshot(examples_copy)
    result = run(["generate"], examples_copy, monkeypatch)
    assert result.exit_code == 2, result.output
    assert f"jobs/acme/{name}.yaml" in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(examples_copy) == tree
    assert run(["validate"], examples_copy, monkeypatch).exit_code == 2


def test_a_workspace_whose_job_is_gone_is_retired_not_deleted(examples_copy, monkeypatch):
    assert run(["generate"], examples_copy, monkeypatch).exit_code == 0
    ws = examples_copy / "workspaces/acme/staging/orders_lambda"
    (ws / "extra_override.tf").write_text("# mine\n")
    (examples_copy / "jobs/acme/orders_lambda.yaml").unlink()
    result = run(["generate"], examples_copy, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "retired workspaces/acme/staging/orders_lambda: its job jobs/acme/orders_lambda.yaml is gone" in result.stderr
    assert "removed workspaces/acme/staging/orders_lambda/outputs.tf" in result.stderr
    assert sorted(p.name for p in ws.iterdir()) == [
        ".dativo-tf.json", "backend.tf", "extra_override.tf", "main.tf", "providers.tf", "terraform.tfvars",
        "variables.tf", "versions.tf"]
    assert "RETIRED" in (ws / "main.tf").read_text() and "resource" not in (ws / "main.tf").read_text().replace("resources", "")
    assert json.loads((ws / ".dativo-tf.json").read_text())["status"] == "retired"
    assert run(["generate", "--check"], examples_copy, monkeypatch).exit_code == 0


def test_hand_edits_are_reported(examples_copy, monkeypatch):
    assert run(["generate"], examples_copy, monkeypatch).exit_code == 0
    main_tf = examples_copy / "workspaces/acme/production/hr_ec2/main.tf"
    main_tf.write_text(main_tf.read_text() + "# tweak\n")
    check = run(["generate", "--check"], examples_copy, monkeypatch)
    assert check.exit_code == 1
    assert "would update workspaces/acme/production/hr_ec2/main.tf (edited by hand since it was generated)" in check.stdout


def test_never_overwrites_a_file_it_did_not_write(examples_copy, monkeypatch):
    target = examples_copy / "workspaces/acme/production/hr_ec2/main.tf"
    target.parent.mkdir(parents=True)
    target.write_text("# someone else's\n")
    result = run(["generate"], examples_copy, monkeypatch)
    assert result.exit_code == 2 and "was not generated by dativo-tf" in result.stderr
    assert target.read_text() == "# someone else's\n"


def test_byte_identical_across_cwd_and_hash_seed(examples_copy, tmp_path):
    outputs = []
    for seed, cwd in (("1", examples_copy), ("987", examples_copy / "jobs")):
        out = tmp_path / f"out{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run([sys.executable, "-m", "dativo_ingest", "generate", "--config",
                               str(examples_copy / "dativo-tf.yaml"), "--out", str(out)],
                              cwd=cwd, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        outputs.append(snapshot(out))
    assert outputs[0] == outputs[1]


def _records(repo: Path) -> list[str]:
    return sorted(p.parent.relative_to(repo / "workspaces").as_posix() for p in (repo / "workspaces").rglob(RECORD))


def test_paths_select_jobs(examples_copy, monkeypatch):
    result = run(["generate", "jobs/acme/orders_ecs.yaml"], examples_copy, monkeypatch)
    assert result.exit_code == 0
    assert _records(examples_copy) == ["acme/production/orders_ecs"]
    assert run(["generate", "jobs/production_tenant"], examples_copy, monkeypatch).exit_code == 0
    assert len(_records(examples_copy)) == 3  # kept + added


def test_vars_tags_validate_schema(examples_copy, monkeypatch):
    job = "jobs/acme/events_cloud_run.yaml"
    as_json = run(["vars", job], examples_copy, monkeypatch)
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["labels"]["cost_center"] == "web-100"
    as_hcl = run(["vars", job, "--format", "hcl"], examples_copy, monkeypatch)
    assert 'cloud_provider = "gcp"' in as_hcl.stdout
    tags = run(["tags", job], examples_copy, monkeypatch)
    assert json.loads(tags.stdout)["CostCenter"] == "WEB-100"
    explain = run(["tags", job, "--explain"], examples_copy, monkeypatch)
    line = next(ln for ln in explain.stdout.splitlines() if ln.startswith("CostCenter"))
    assert "cost_center=web-100" in line and "job finops.cost_center (jobs/acme/events_cloud_run.yaml)" in line
    valid = run(["validate"], examples_copy, monkeypatch)
    assert valid.exit_code == 0 and "10 job(s) checked: 9 valid, 1 without infrastructure, 0 error(s)" in valid.stderr
    schema = json.loads(run(["schema"], examples_copy, monkeypatch).stdout)
    assert "infrastructure" in schema["properties"]


def test_version_and_verbose(examples_copy, monkeypatch):
    assert "dativo-tf, version" in run(["--version"], examples_copy, monkeypatch).stdout
    (examples_copy / "jobs/acme/bad.yaml").write_text("tenant_id: acme\nenvironment: p\ninfrastructure: {cloud_provider: azure}\n")
    quiet = run(["vars", "jobs/acme/bad.yaml"], examples_copy, monkeypatch)
    assert quiet.exit_code == 2 and "Traceback" not in quiet.stderr
    loud = run(["--verbose", "vars", "jobs/acme/bad.yaml"], examples_copy, monkeypatch)
    assert loud.exit_code == 2 and "Traceback" in loud.stderr


def test_tfvars_json_format(examples_copy, monkeypatch):
    settings = examples_copy / "dativo-tf.yaml"
    settings.write_text(settings.read_text().replace("tfvars_format: hcl", "tfvars_format: json"))
    assert run(["generate"], examples_copy, monkeypatch).exit_code == 0
    ws = examples_copy / "workspaces/acme/production/orders_ecs"
    assert (ws / "terraform.tfvars.json").exists() and not (ws / "terraform.tfvars").exists()


def test_version_is_answered_without_loading_the_command_line():
    """`dativo-tf --version` prints what click's version option prints, without importing click (start-up time)."""
    import subprocess
    import sys

    probe = ("import sys; sys.argv = ['dativo-tf', '--version']; from dativo_ingest.launch import main; "
             "code = main(); print('click' in sys.modules, code)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    launched, loaded = done.stdout.splitlines()
    from click.testing import CliRunner

    from dativo_ingest.cli import main

    assert launched == CliRunner().invoke(main, ["--version"]).output.strip()
    assert loaded == "False 0"


@pytest.mark.parametrize("columns", ["200", "80", "79", "60"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_is_answered_without_loading_the_command_line_and_says_what_click_says(flag, columns, tmp_path):
    """`dativo-tf --help` at 80 columns or more prints launch.HELP without importing click; it must be what the
    command line prints (a changed command or docstring must change it too), and narrower terminals get
    click's own wrapping."""
    import subprocess
    import sys

    program = tmp_path / "dativo-tf"  # click names the program after argv[0]
    env = {**os.environ, "COLUMNS": columns}

    def run(entry: str) -> tuple[str, str]:
        # (os._exit raises here, so the probe lives on past the command's end to say what it loaded)
        probe = (f"import os, sys; os._exit = sys.exit; sys.argv = [{str(program)!r}, {flag!r}]; from {entry} import main; "
                 "import contextlib\ntry:\n    main()\nexcept SystemExit: pass\nprint('click' in sys.modules)")
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
        text, _, loaded = done.stdout.rstrip("\n").rpartition("\n")
        return text, loaded

    launched, loaded = run("dativo_ingest.launch")
    clicked, _ = run("dativo_ingest.cli")
    assert launched == clicked and "Commands:" in launched
    assert loaded == ("False" if int(columns) >= 80 else "True")


def test_a_run_ends_without_the_interpreters_teardown_and_with_all_its_output(examples_copy, monkeypatch):
    """`dativo-tf` ends its process as soon as its output is flushed (`launch.main`): tearing down a run's objects
    one by one took ~0.1 s at 1,000 jobs and helps no one. Exit handlers therefore do not run, and yet every
    byte of a long output arrives through a pipe, with the exit code and errors a normal exit gives."""
    probe = ("import atexit, sys; atexit.register(lambda: print('TORN DOWN', file=sys.stderr)); "
             "sys.argv = ['dativo-tf', *sys.argv[1:]]; from dativo_ingest.launch import main; sys.exit(main())")
    monkeypatch.chdir(examples_copy)
    for args, code in [(["generate", "--diff", "--out", "{out}"], 1),  # every file as a diff: a long output
                       (["generate", "--out", "{out}"], 0), (["vars", "jobs/acme/missing.yaml"], 2)]:
        done = subprocess.run([sys.executable, "-c", probe, *(a.format(out="ours") for a in args)],
                              capture_output=True, text=True)
        assert done.returncode == code, done.stderr
        assert "TORN DOWN" not in done.stderr
        expected = CliRunner().invoke(main, [a.format(out="theirs") for a in args])
        assert (done.stdout, done.stderr, done.returncode) == (
            expected.stdout.replace("theirs", "ours"), expected.stderr.replace("theirs", "ours"), expected.exit_code)
        assert done.stderr and (code != 1 or len(done.stdout) > 100_000)
    assert snapshot(examples_copy / "ours") == snapshot(examples_copy / "theirs")


@pytest.mark.parametrize("preset", [None, "other"])
def test_the_command_line_loads_no_pydantic_plugin_installed_beside_it(examples_copy, tmp_path, preset):
    """A pydantic plugin installed in the same environment (an observability package, say) would wrap every
    model's validation: the command line's output must not depend on it, and looking plugins up scans every
    installed package's metadata at start-up. A value the user set for PYDANTIC_DISABLE_PLUGINS is theirs."""
    site = tmp_path / "site"
    (site / "spy_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "spy_plugin-1.0.dist-info/METADATA").write_text("Metadata-Version: 2.1\nName: spy-plugin\nVersion: 1.0\n")
    (site / "spy_plugin-1.0.dist-info/entry_points.txt").write_text("[pydantic]\nspy = spy_plugin:plugin\n")
    marker = tmp_path / "loaded"
    (site / "spy_plugin.py").write_text(  # a plugin that does nothing but say it was loaded
        f"open({str(marker)!r}, 'a').write('loaded')\n"
        "class Plugin:\n    def new_schema_validator(self, *args, **kwargs):\n        return None, None, None\n"
        "plugin = Plugin()\n")
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    if preset is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = preset
    probe = "from pydantic.plugin._loader import get_plugins; print(len(list(get_plugins())))"
    assert subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "1"  # the spy is a plugin pydantic finds
    marker.unlink()
    done = subprocess.run([sys.executable, "-m", "dativo_ingest", "validate"], cwd=examples_copy, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert marker.exists() == (preset is not None)


@pytest.mark.parametrize("closed", [1, 2])
def test_a_run_with_a_closed_standard_stream_keeps_its_exit_code(closed, examples_copy):
    """A process started with stdout (or stderr) closed has sys.stdout (sys.stderr) None: the end of the run
    must not trip over it, and exits as a normal exit would."""
    for args, code in [(["generate"], 0), (["schema", "--bogus"], 2)]:
        done = subprocess.run([sys.executable, "-m", "dativo_ingest", *args], cwd=examples_copy,
                              capture_output=True, text=True, preexec_fn=lambda: os.close(closed))
        assert done.returncode == code, done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [["generate"], ["generate", "--check"]], ids=["generate", "check"])
def test_a_run_says_its_changes_in_order_in_one_write_per_stream(examples_copy, monkeypatch, args):
    """A first generate of 1,000 jobs says ~9,000 lines; echoed one by one (each written and flushed) they cost
    ~90 ms. Said in one piece per stream, the lines and their order are the same."""
    import click

    calls = []
    real = click.echo

    def echo(message=None, *rest, **kwargs):
        calls.append(message)
        return real(message, *rest, **kwargs)

    monkeypatch.setattr(click, "echo", echo)
    result = run(args, examples_copy, monkeypatch)
    assert result.exit_code == (0 if args == ["generate"] else 1), result.output
    files = sorted(snapshot(examples_copy / "workspaces")) if args == ["generate"] else None
    said = (result.stderr if args == ["generate"] else result.stdout).splitlines()
    listed = [line.split(" ", 2)[-1] for line in said if line.startswith(("created ", "would create "))]
    assert len(listed) > 50 and listed == sorted(listed)
    if files is not None:
        assert listed == [f"workspaces/{f}" for f in files]
    assert result.stderr.splitlines()[0].startswith("skipped jobs/acme/legacy_no_infra.yaml")
    assert result.stderr.splitlines()[-1].endswith(" retired") and "workspace(s)" in result.stderr.splitlines()[-1]
    assert len(calls) <= 3


def test_a_diff_says_each_change_before_its_diff(examples_copy, monkeypatch):
    result = run(["generate", "--diff"], examples_copy, monkeypatch)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    said = [i for i, line in enumerate(lines) if line.startswith("would create ")]
    assert len(said) > 50
    for at in said:
        path = lines[at].split(" ", 2)[2]
        assert lines[at + 1:at + 3] == ["--- /dev/null", f"+++ b/{path}"]


def test_a_report_holds_at_most_about_a_megabyte_before_writing(monkeypatch):
    """A --diff of thousands of new files is megabytes: held whole it would sit in memory beside the changes."""
    import click

    from dativo_ingest.report import Report, WriteBack

    written = []
    monkeypatch.setattr(click, "echo", lambda text, err=False, nl=True: written.append((err, text)))
    report = Report(mode=WriteBack.DIFF)
    chunk = "+" + "x" * 999 + "\n"
    with report.held():
        for _ in range(3000):
            report.data(chunk)
        report.status("done")
    assert all(len(text) <= (1 << 20) + len(chunk) for _, text in written)
    assert 3 <= len(written) <= 5 and written[-1] == (True, "done\n")
    assert "".join(text for err, text in written if not err) == chunk * 3000


def test_a_run_collects_garbage_only_while_it_renders(examples_copy, tmp_path):
    """The start-up imports, reading the cache and the plan make long-lived objects and no garbage worth a
    collection (~12 ms of collections in a no-op check of 1,000 jobs, ~25 ms before a full generate's workers
    start); rendering leaves ~20 reference cycles per job, so the collector runs there."""
    log = tmp_path / "gc.txt"
    probe = (
        "import gc, sys\n"
        "sys.argv = ['dativo-tf', *sys.argv[1:]]\n"
        "from dativo_ingest import pipeline, writer\n"
        f"def note(phase): open({str(log)!r}, 'a').write(f'{{phase}} {{gc.isenabled()}}\\n')\n"
        "def spy(module, name):\n"
        "    real = getattr(module, name)\n"
        "    def spied(*a, **k):\n"
        "        note(name)\n"
        "        return real(*a, **k)\n"
        "    setattr(module, name, spied)\n"
        "for module, name in [(pipeline, 'find_jobs'), (pipeline, '_render_one'), (writer, 'plan')]:\n"
        "    spy(module, name)\n"
        "from dativo_ingest.launch import main\n"
        "sys.exit(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, "generate", "-j", "1"], cwd=examples_copy,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    phases = dict(line.split() for line in log.read_text().splitlines())
    assert phases == {"find_jobs": "False", "_render_one": "True", "plan": "False"}


@pytest.mark.parametrize("enabled", [True, False])
def test_rendering_leaves_the_collector_of_an_application_as_it_found_it(examples_copy, enabled):
    import gc

    from dativo_ingest.pipeline import render_all
    from dativo_ingest.project import ProjectSettings

    project = ProjectSettings.load(examples_copy / "dativo-tf.yaml")
    (gc.enable if enabled else gc.disable)()
    try:
        rendered = render_all(project, workers=1)
        assert gc.isenabled() is enabled and rendered.workspaces
    finally:
        gc.enable()


def test_a_date_that_does_not_exist_is_an_input_error_with_its_line(examples_copy, monkeypatch):
    job = examples_copy / "jobs/acme/orders_ecs.yaml"
    lines = job.read_text().count("\n")
    job.write_text(job.read_text() + "run_date: 2020-13-45\n")
    tree = snapshot(examples_copy)
    result = run(["generate", "-j", "1"], examples_copy, monkeypatch)
    assert result.exit_code == 2, result.output
    assert f"jobs/acme/orders_ecs.yaml:{lines + 1}: error: invalid YAML: the date 2020-13-45 does not exist" \
        in result.stderr
    assert "Traceback" not in result.stderr and snapshot(examples_copy) == tree
