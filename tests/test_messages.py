"""What a user reads: one message format (`path:line: severity: key: message`, repo-relative paths), each cause
once per run, silenced warnings, data on stdout and status on stderr, -q/-v anywhere, progress on terminals."""

from __future__ import annotations

import io
import os

import pytest
from click.testing import CliRunner

from dativo_ingest.cli import main
from dativo_ingest.errors import WARNINGS, InputError, format_message
from dativo_ingest.report import Progress, Report


def run(args, cwd, monkeypatch):
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(main, args)


@pytest.mark.parametrize("args, expected", [
    (("error", "m", "a.yaml", 3, "k"), "a.yaml:3: error: k: m"),
    (("warning", "m", "a.yaml", 3, None), "a.yaml:3: warning: m"),
    (("error", "file not found", "a.yaml", None, None), "a.yaml: error: file not found"),
    (("error", "m", None, None, "--set"), "error: --set: m"),
])
def test_the_one_format(args, expected):
    assert format_message(*args) == expected
    severity, message, path, line, key = args
    err = InputError(message, path=path, line=line, key=key)
    assert err.format(severity) == expected
    if severity == "error":
        assert str(err) == expected


# (what is broken, command, file to write, expected stderr line)
ERROR_CASES = [
    ("settings", ["validate"], {"dativo-tf.yaml": "tfvars_format: yaml\n"},
     "dativo-tf.yaml:1: error: tfvars_format: Input should be 'hcl' or 'json' (got 'yaml')"),
    ("missing job (vars)", ["vars", "jobs/nope.yaml"], {}, "jobs/nope.yaml: error: file not found"),
    ("missing path (generate)", ["generate", "jobs/nope.yaml"], {}, "jobs/nope.yaml: error: the job path is missing"),
    ("asset", ["generate"], {"assets/orders.yaml": "name: orders\nteam: [x]\n"},
     "assets/orders.yaml:2: error: team: Input should be a valid dictionary or instance of Team (got ['x'])"),
    ("time zone", ["validate"], {"jobs/acme/orders_ecs.yaml": ("schedule:", "schedule: {cron: '0 3 * * *', timezone: Mars/Base}\n  x_schedule:")},
     "jobs/acme/orders_ecs.yaml:"),
]


@pytest.mark.parametrize("name, args, files, expected", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_errors_use_the_format_with_repo_relative_paths(examples_copy, monkeypatch, name, args, files, expected):
    for rel, text in files.items():
        path = examples_copy / rel
        if isinstance(text, tuple):
            old, new = text
            assert old in path.read_text()
            text = path.read_text().replace(old, new, 1)
        path.write_text(text)
    result = run(args, examples_copy, monkeypatch)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if ": error: " in line or line.startswith("error: ")]
    assert errors and all(not line.startswith("/") for line in errors)
    assert errors[0].startswith(expected), errors
    assert len(errors) == len(set(errors)), "each cause once"


def test_an_asset_error_is_reported_once_however_many_jobs_use_it(examples_copy, monkeypatch):
    users = [p for p in (examples_copy / "jobs").rglob("*.yaml") if "assets/orders.yaml" in p.read_text()]
    assert len(users) >= 2
    (examples_copy / "assets/orders.yaml").write_text("name: orders\nteam: [x]\n")
    result = run(["validate"], examples_copy, monkeypatch)
    assert result.exit_code == 2
    assert result.stderr.count("assets/orders.yaml:2: error: team:") == 1


LAMBDA = ("runtime_environment: {compute_type: lambda}\n"
          "terraform: {resource_refs: {execution_role_arn: 'arn:aws:iam::123456789012:role/r', "
          "scheduler_role_arn: 'arn:aws:iam::123456789012:role/s'}}")


def test_unknown_time_zone_is_an_error_with_a_hint(project):
    from dativo_ingest.errors import InputErrors

    with pytest.raises(InputErrors) as info:
        project.render("job", "cloud_provider: aws\nschedule: {cron: '0 3 * * *', timezone: Europe/Berln}\n" + LAMBDA)
    (err,) = info.value.errors
    assert err.key == "infrastructure.schedule.timezone" and err.line == 8
    assert err.message.startswith("unknown time zone (did you mean 'Europe/Berlin'?); use an IANA name")


def test_known_time_zones_pass(project):
    ws = project.render("job", "cloud_provider: aws\nschedule: {cron: '0 3 * * *', timezone: America/New_York}\n" + LAMBDA)
    assert "America/New_York" in ws.files["main.tf"]


@pytest.mark.parametrize("cloud, region, known", [
    ("aws", "eu-central-1", True), ("aws", "us-east-9x", False), ("gcp", "europe-west4", True),
    ("gcp", "us-east-1", False),
])
def test_regions_unknown_to_the_bundled_list_are_a_warning(project, cloud, region, known):
    infra = (f"cloud_provider: {cloud}\nregion: {region}\n"
             + (LAMBDA if cloud == "aws" else
               "runtime_environment: {compute_type: cloud_run}\nterraform: {resource_refs: {service_account_email: etl@proj-123.iam.gserviceaccount.com}}"))
    ws = project.render("job", infra)
    region_warnings = [w for w in ws.warnings if w.code == "region"]
    assert ws is not None  # a warning never stops the workspace (a region newer than the list still works)
    if known:
        assert region_warnings == []
    else:
        (warning,) = region_warnings
        assert warning.key == "infrastructure.region" and warning.line == 8 and region in warning.message
        assert warning.format("warning").endswith("[region]")


def test_an_unknown_settings_region_points_at_the_settings_file(project):
    settings = project.root / "dativo-tf.yaml"
    settings.write_text(settings.read_text().replace("region: us-east-1", "region: us-east-9x"))
    ws = project.render("job", "cloud_provider: aws\n" + LAMBDA)
    (warning,) = [w for w in ws.warnings if w.code == "region"]
    assert (warning.path, warning.line, warning.key) == ("dativo-tf.yaml", 2, "aws.region")


def test_the_bundled_region_list_ships_as_package_data():
    from importlib.resources import files

    from dativo_ingest import regions

    assert files("dativo_ingest").joinpath("regions.json").is_file()
    assert {"us-east-1", "eu-west-1"} <= regions.known()["aws"] and "us-central1" in regions.known()["gcp"]


LOCAL_MODULE = ("cloud_provider: aws\nruntime_environment: {compute_type: lambda, cpu_units: 512}\n"
                "terraform: {module_path: modules/etl, module_version: '~> 1.0'}")


def test_a_job_silences_a_known_warning_by_its_code(project):
    (project.root / "modules/etl").mkdir(parents=True)
    loud = project.render("loud", LOCAL_MODULE)
    assert {w.code for w in loud.warnings} == {"module_version"}
    quiet = project.render("quiet", LOCAL_MODULE + "\nsilence: [module_version]")
    assert quiet.warnings == []


def test_every_warning_code_is_documented():
    readme = (os.path.dirname(__file__) + "/../README.md")
    text = open(readme, encoding="utf-8").read()
    assert "infrastructure.silence" in text
    for code in WARNINGS:
        assert f"`{code}`" in text, code


def test_a_settings_warning_is_printed_once_per_run(examples_copy, monkeypatch):
    settings = examples_copy / "dativo-tf.yaml"
    settings.write_text(settings.read_text().replace("bucket: acme-tf-state-gcp", "prefix: '{tenant_id}/{job_name}'"))
    result = run(["validate"], examples_copy, monkeypatch)
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if "[local_backend]" in ln]
    assert len(lines) == 1
    text = settings.read_text().splitlines()
    backend_line = text.index("  backend:", text.index("gcp:")) + 1  # the gcp backend block
    assert all(ln.startswith(f"dativo-tf.yaml:{backend_line}: warning: gcp.backend.bucket: no state bucket")
               for ln in lines)
    gcp_jobs = [p for p in (examples_copy / "jobs").rglob("*.yaml") if "cloud_provider: gcp" in p.read_text()]
    assert len(gcp_jobs) >= 2  # many jobs share the cause, the warning is printed once


def test_report_prints_each_cause_once(capsys):
    report = Report()
    for _ in range(3):
        report.warning(InputError("w", path="a.yaml", line=1, key="k"))
        report.error(InputError("e", path="assets/x.yaml", line=2, key="team"))
    assert capsys.readouterr().err == "a.yaml:1: warning: k: w\nassets/x.yaml:2: error: team: e\n"
    assert len(report.errors) == 1 and report.return_code == 2


def test_check_lists_changes_on_stdout_and_status_on_stderr(examples_copy, monkeypatch):
    check = run(["generate", "--check"], examples_copy, monkeypatch)
    assert check.exit_code == 1
    assert check.stdout.startswith("would create workspaces/") and "would be added" not in check.stdout
    assert "workspace(s):" in check.stderr and "would create" not in check.stderr
    quiet = run(["generate", "--check", "-q"], examples_copy, monkeypatch)
    assert quiet.stdout == check.stdout and quiet.stderr == ""  # -q silences status, never the data


@pytest.mark.parametrize("command", [["generate", "--check"], ["validate"], ["vars", "jobs/acme/orders_ecs.yaml"]])
def test_quiet_and_verbose_after_the_subcommand(examples_copy, monkeypatch, command):
    before = run(["-q", *command], examples_copy, monkeypatch)
    after = run([*command, "-q"], examples_copy, monkeypatch)
    assert (after.exit_code, after.stdout, after.stderr) == (before.exit_code, before.stdout, before.stderr)
    assert "workspace(s)" not in after.stderr and "job(s) checked" not in after.stderr
    (examples_copy / "jobs/acme/bad.yaml").write_text("tenant_id: acme\nenvironment: p\ninfrastructure: {cloud_provider: azure}\n")
    loud = run(["vars", "jobs/acme/bad.yaml", "--verbose"], examples_copy, monkeypatch)
    assert loud.exit_code == 2 and "Traceback" in loud.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_shows_after_the_delay_on_a_terminal_only():
    clock = _Clock()
    out = _Terminal()
    progress = Progress("validating", 10, stream=out, delay=2.0, clock=clock)
    progress.advance(3)
    progress.tick()
    assert out.getvalue() == ""  # a short step shows nothing
    clock.now += 2.5
    progress.tick()
    assert out.getvalue() == "\rvalidating: 3/10 2 s\x1b[K"
    progress.__exit__(None, None, None)
    assert out.getvalue().endswith("\r\x1b[K")  # the line is cleared at the end
    pipe = io.StringIO()
    logged = Progress("validating", stream=pipe, delay=0, clock=clock)
    logged.tick()
    assert pipe.getvalue() == "" and logged.stream is None  # never in logs or pipes


def test_progress_runs_in_the_background_and_stops():
    out = _Terminal()
    with Progress("working", stream=out, delay=0, interval=0.001) as progress:
        while not progress.shown:
            progress._stop.wait(0.001)
    assert progress._thread is not None and not progress._thread.is_alive()
    assert out.getvalue().startswith("\rworking: 0 s") and out.getvalue().endswith("\r\x1b[K")


def test_report_progress_is_silent_when_quiet():
    assert Report(quiet=True).progress("x").stream is None


def test_the_readme_shows_the_format():
    import re

    readme = open(os.path.dirname(__file__) + "/../README.md", encoding="utf-8").read()
    block = readme.split("### Errors and warnings", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines()
    assert len(lines) >= 5
    shape = re.compile(r"^(?:[\w./-]+(?::\d+)?: )?(?:error|warning): (?:[\w.\[\]-]+: )?\S")
    assert [ln for ln in lines if not shape.match(ln)] == []
