"""Safety of the inputs (issue 11): hostile or unreadable input is refused with exit 2, a
`path:line: error:` message and nothing written; no secret reaches stdout or stderr."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st

from dativo_ingest import hcl
from dativo_ingest.cli import main
from dativo_ingest.yamlsource import MAX_FILE_BYTES, MAX_NODES
from tests.conftest import ASSET, SETTINGS, snapshot, write_tree

ECS = """
    cloud_provider: aws
    runtime_environment: {compute_type: ecs_task}
    terraform:
      resource_refs: {execution_role_arn: "arn:aws:iam::123456789012:role/run"}
"""


def job(infrastructure: str = ECS, extra: str = "", head: str = "tenant_id: acme\nenvironment: prod\n") -> str:
    body = textwrap.indent(textwrap.dedent(infrastructure).strip("\n"), "  ")
    return head + "asset_path: assets/orders.yaml\n" + textwrap.dedent(extra).lstrip("\n") + "infrastructure:\n" + body + "\n"


def make(root: Path, jobs: dict[str, str] | None = None, settings_extra: str = "") -> Path:
    write_tree(root, {"dativo-tf.yaml": textwrap.dedent(SETTINGS) + textwrap.dedent(settings_extra),
                      "assets/orders.yaml": ASSET})
    for name, text in (jobs if jobs is not None else {"jobs/orders.yaml": job()}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def run(args, cwd: Path, monkeypatch):
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(main, args)


def refused(root: Path, monkeypatch, where: str, *fragments: str, args=("generate",), line: bool = True) -> str:
    """Run `args`, expect exit 2 with `where:line: error: ...` (no line for a path that is wrong as a
    whole) and each fragment on stderr, no traceback, and no file written or changed."""
    before = snapshot(root)
    result = run(list(args), root, monkeypatch)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    at = r"(:\d+)?" if re.search(r":\d+$", where) else (r":\d+" if line else "")
    assert re.search(rf"(?m)^{re.escape(where)}{at}: error: ", result.stderr), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert snapshot(root) == before
    return result.stderr


def test_a_valid_project_generates(tmp_path, monkeypatch):
    """The baseline every refusal below differs from by one value."""
    root = make(tmp_path / "repo")
    result = run(["generate"], root, monkeypatch)
    assert result.exit_code == 0, result.output
    assert (root / "workspaces/acme/prod/orders/main.tf").is_file()


# --- item 1: control characters never reach a script, command, cron expression or comment -----------

CONTROL = ["\n", "\r", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\t"]


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_job_folder_name_with_a_control_character_is_refused(tmp_path, monkeypatch, char):
    root = make(tmp_path / "repo", {f"jobs/x{char}JOB/orders.yaml": job()})
    refused(root, monkeypatch, "jobs/x" + char.encode("unicode_escape").decode() + "JOB/orders.yaml",
            f"U+{ord(char):04X}", "allowed: printable UTF-8 text", line=False)


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_job_file_name_with_a_control_character_is_refused(tmp_path, monkeypatch, char):
    root = make(tmp_path / "repo", {f"jobs/ord{char}ers.yaml": job()})
    refused(root, monkeypatch, "jobs/ord" + char.encode("unicode_escape").decode() + "ers.yaml", f"U+{ord(char):04X}",
            line=False)


@pytest.mark.parametrize("settings_extra, key", [
    ('image: "ghcr.io/x/y:1\\nJOB\\nreboot"\n', "image"),
    ('command: ["run", "--config", "{job_path}\\u2028JOB"]\n', "command[2]"),
    ('gcp: {project_id: p, image: "x\\x85y"}\n', "gcp.image"),
])
def test_settings_text_reaching_scripts_with_control_characters_is_refused(tmp_path, monkeypatch, settings_extra, key):
    root = make(tmp_path / "repo")
    settings = root / "dativo-tf.yaml"
    settings.write_text(settings.read_text().replace("gcp:\n  project_id: proj-123\n  backend: {bucket: state-bucket}\n", "")
                        + settings_extra)
    refused(root, monkeypatch, "dativo-tf.yaml", f"error: {key}: contains the control character")


@pytest.mark.parametrize("infrastructure, key", [
    (ECS.replace("terraform:", 'schedule: {cron: "0 1 * * *\\nJOB"}\n    terraform:'), "infrastructure.schedule.cron"),
    (ECS.replace("terraform:", 'schedule: {cron: "0 1 * * *", timezone: "UTC\\u2029x"}\n    terraform:'),
     "infrastructure.schedule.timezone"),
    (ECS.replace('role/run"}', 'role/run", log_group_name: "/x\\nJOB"}'), "infrastructure.terraform.resource_refs.log_group_name"),
    (ECS.replace("terraform:", 'terraform:\n      module_path: "modules/x\\0y"'), "infrastructure.terraform.module_path"),
])
def test_job_text_reaching_scripts_with_control_characters_is_refused(tmp_path, monkeypatch, infrastructure, key):
    root = make(tmp_path / "repo", {"jobs/orders.yaml": job(infrastructure)})
    refused(root, monkeypatch, "jobs/orders.yaml", f"error: {key}: contains the control character")


def _hcl_unquote(token: str) -> str:
    """An HCL quoted string as Terraform reads it (escapes, `$${` and `%%{`)."""
    assert token.startswith('"') and token.endswith('"'), token
    out, i, body = [], 0, token[1:-1]
    simple = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1]
            if nxt in simple:
                out.append(simple[nxt])
                i += 2
            elif nxt == "u":
                out.append(chr(int(body[i + 2:i + 6], 16)))
                i += 6
            else:
                out.append(chr(int(body[i + 2:i + 10], 16)))
                i += 10
        elif body.startswith(("$${", "%%{"), i):
            out.append(body[i + 1:i + 3])
            i += 3
        else:
            out.append(c)
            i += 1
    return "".join(out)


_NAME = st.one_of(st.text(min_size=1, max_size=12), st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,8}\Z"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(folder=_NAME, stem=_NAME)
@example(folder='q"u\\o${te}%{x} é', stem="orders")  # printable but hostile to HCL: kept byte for byte
@example(folder="x\nJOB", stem="orders")  # closes a heredoc: refused
@example(folder="x\u2028y", stem="orders")
def test_any_job_path_is_refused_or_reaches_the_files_byte_for_byte(monkeypatch, folder, stem):
    import hcl2

    for name in (folder, stem + ".yaml"):
        assume("/" not in name and "\0" not in name and name not in (".", "..") and len(name.encode()) <= 255)
    with tempfile.TemporaryDirectory() as tmp:
        root = make(Path(tmp) / "repo", {f"jobs/{folder}/{stem}.yaml": job()})
        result = run(["generate"], root, monkeypatch)
        if result.exit_code == 2:
            assert "Traceback" not in result.output and "error:" in result.stderr
            assert not (root / "workspaces").exists()
            return
        assert result.exit_code == 0, result.output
        relative = f"jobs/{folder}/{stem}.yaml"
        main_tf = root / "workspaces/acme/prod" / stem / "main.tf"
        text = main_tf.read_bytes().decode("utf-8")
        assert text.splitlines()[0].encode() == f"# Code generated by dativo-tf from {relative}. DO NOT EDIT.".encode()
        env = hcl2.loads(text)["locals"][0]["container_environment"]
        assert _hcl_unquote(env["DATIVO_JOB_PATH"]).encode() == relative.encode()


# --- item 4: bounded work -------------------------------------------------------------------------


def _laughs(indent: str, levels: int = 9) -> str:
    """A billion laughs as a mapping body: 9 levels of 9 aliases, 9^9 values once expanded."""
    lines = [f"{indent}a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"{indent}a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("where", ["tags", "variables"])
def test_alias_bomb_is_refused(tmp_path, monkeypatch, where):
    infra = ECS + ("    tags:\n" + _laughs(" " * 6) if where == "tags" else "      variables:\n" + _laughs(" " * 8))
    root = make(tmp_path / "repo", {"jobs/orders.yaml": job(infra)})
    stderr = refused(root, monkeypatch, "jobs/orders.yaml", f"more than {MAX_NODES} values through aliases")
    lines = (root / "jobs/orders.yaml").read_text().splitlines()
    line = int(re.search(r"jobs/orders.yaml:(\d+): error:", stderr).group(1))
    block = next(i for i, text in enumerate(lines, 1) if text.strip() == f"{where}:")
    assert line > block and re.match(r"\s+a\d: &a\d", lines[line - 1])  # inside the block, at an anchor


def test_an_oversized_yaml_file_is_refused(tmp_path, monkeypatch):
    padding = ("# " + "x" * 98 + "\n") * (MAX_FILE_BYTES // 100 + 1)
    root = make(tmp_path / "repo", {"jobs/orders.yaml": job() + padding})
    refused(root, monkeypatch, "jobs/orders.yaml", f"at most {MAX_FILE_BYTES} bytes", line=False)


def test_a_duplicate_key_is_refused_at_its_second_line(tmp_path, monkeypatch):
    text = job().replace("environment: prod\n", "environment: prod\nenvironment: dev\n")
    root = make(tmp_path / "repo", {"jobs/orders.yaml": text})
    refused(root, monkeypatch, "jobs/orders.yaml:3", "duplicate key 'environment' (first on line 2)")


def test_a_duplicate_nested_key_is_refused(tmp_path, monkeypatch):
    infra = ECS + "    tags: {Owner: a, Team: b, Owner: c}\n"
    root = make(tmp_path / "repo", {"jobs/orders.yaml": job(infra)})
    refused(root, monkeypatch, "jobs/orders.yaml", "duplicate key 'Owner'")


_YAML_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8),
                          st.sampled_from(["1", "0x1f", "1_000", "yes", "~", "2001-12-14", "=", "<<", "!x", "&a"]))
_YAML_DATA = st.recursive(_YAML_SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)), max_leaves=12)
# documents with tags, merge keys, non-string keys or anchors: as PyYAML builds them (None), or refused
_YAML_TEXTS = [("a: !!set {x}\n", None), ("t: 2001-12-14\nb: !!binary aGVsbG8=\n", None),
               ("base: &b {x: 1}\nc:\n  <<: *b\n  y: 2\n", None), ("- !!str 1\n- !!int '2'\n- !!float '1'\n", None),
               ("[1, {a: [2, {b: ~}]}]\n", None), ("'': ''\n", None), ("1: a\n2: b\n", None),
               ("? [a]\n: 1\n", "found unhashable key"), ("=: v\n", "could not determine a constructor"),
               ("x: !custom 1\n", "could not determine a constructor"),
               ("a: {b: 1, b: 2}\n", "duplicate key 'b'"), ("a: 1\n01: b\n1: c\n", "duplicate key 1"),
               ("1: a\ntrue: b\n", "duplicate key True")]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(data=_YAML_DATA, flow=st.booleans())
@example(data={"a": [1, {"b": None}], "c": "x"}, flow=False)
def test_yaml_loads_as_pyyaml_builds_it(data, flow):
    """yamlsource builds plain documents itself (faster than PyYAML's constructor): the same data as PyYAML."""
    import yaml

    from dativo_ingest.yamlsource import parse

    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)
    assert parse(text, "x.yaml") == yaml.load(text, Loader=yaml.SafeLoader)
    assert repr(parse(text, "x.yaml")) == repr(yaml.load(text, Loader=yaml.SafeLoader))  # 1 vs 1.0 vs True


@pytest.mark.parametrize(("text", "refused"), _YAML_TEXTS)
def test_yaml_with_tags_merges_and_odd_keys_loads_as_pyyaml_builds_it_or_is_refused(text, refused):
    import yaml

    from dativo_ingest.errors import InputError
    from dativo_ingest.yamlsource import parse

    if refused:
        with pytest.raises(InputError, match=re.escape(refused)):
            parse(text, "x.yaml")
    else:
        assert repr(parse(text, "x.yaml")) == repr(yaml.load(text, Loader=yaml.SafeLoader))


@pytest.mark.parametrize("template", ["{tenant_id:>200000000}", "{tenant_id.__class__.__mro__}", "{HOME}/x", "{0}"])
def test_backend_key_accepts_only_the_documented_placeholders(tmp_path, monkeypatch, template):
    infra = ECS + f"      backend: {{key: '{template}'}}\n"
    root = make(tmp_path / "repo", {"jobs/orders.yaml": job(infra)})
    refused(root, monkeypatch, "jobs/orders.yaml", "error: infrastructure.terraform.backend.key: unknown placeholder",
            "allowed placeholders: {tenant_id}, {environment}, {job_name}")


@pytest.mark.parametrize("settings_extra, key", [
    ("aws: {backend: {bucket: b, key: '{tenant_id:>99999}'}}\n", "aws.backend.key"),
    ("gcp: {project_id: p, backend: {bucket: b, prefix: '{environment.__doc__}'}}\n", "gcp.backend.prefix"),
    ("command: [run, '{job_path!r}']\n", "command[1]"),
])
def test_settings_templates_accept_only_the_documented_placeholders(tmp_path, monkeypatch, settings_extra, key):
    root = make(tmp_path / "repo")
    settings = root / "dativo-tf.yaml"
    settings.write_text(settings_extra)
    refused(root, monkeypatch, "dativo-tf.yaml:1", f"error: {key}: unknown placeholder")


def test_documented_placeholders_are_replaced(tmp_path, monkeypatch):
    root = make(tmp_path / "repo", settings_extra="command: [run, '{job_path}', '{tenant_id}-{environment}-{job_name}']\n")
    assert run(["generate"], root, monkeypatch).exit_code == 0
    main_tf = (root / "workspaces/acme/prod/orders/main.tf").read_text()
    assert '["run", "jobs/orders.yaml", "acme-prod-orders"]' in main_tf


# --- item 5: no secrets in output -------------------------------------------------------------------

SECRET = "s3cr3t-AKIAEXAMPLE-value"


@pytest.mark.parametrize("command", ["generate", "validate", "vars", "tags"])
@pytest.mark.parametrize("case", ["missing", "outside", "invalid"])
def test_an_expanded_variable_is_never_printed(tmp_path, monkeypatch, command, case):
    root = make(tmp_path / "repo", {"jobs/orders.yaml": job().replace("assets/orders.yaml", "${DATA_ROOT}/orders.yaml")})
    outside, inside = tmp_path / SECRET, root / "data" / SECRET
    write_tree(outside, {"orders.yaml": ASSET})
    write_tree(inside, {"orders.yaml": "name: orders\ncompliance: {retention_days: many}\n"})
    monkeypatch.setenv("DATA_ROOT", {"missing": SECRET, "outside": str(outside), "invalid": str(inside)}[case])
    args = [command] + (["jobs/orders.yaml"] if command in ("vars", "tags") else [])
    result = run(args, root, monkeypatch)
    assert result.exit_code == 2, result.output
    assert SECRET not in result.output and SECRET not in result.stderr
    expected = {"missing": "asset file not found: ${DATA_ROOT}/orders.yaml",
                "outside": "'${DATA_ROOT}/orders.yaml' points outside",
                "invalid": "${DATA_ROOT}/orders.yaml:2: error: compliance.retention_days: "}[case]
    assert expected in result.stderr


def test_credentials_in_urls_are_redacted_in_errors_and_warnings(tmp_path, monkeypatch):
    bad = job(ECS.replace("cloud_provider: aws", "cloud_provider: postgres://admin:hunter2@db:5432/x"))
    infra = ECS.replace("terraform:", "terraform:\n      module_path: git::https://deploy:hunter2@example.com/m.git\n"
                                      "      module_version: 1.0.0")
    root = make(tmp_path / "repo", {"jobs/bad.yaml": bad, "jobs/orders.yaml": job(infra)})
    result = run(["validate"], root, monkeypatch)
    assert result.exit_code == 2
    assert "hunter2" not in result.output and "hunter2" not in result.stderr
    assert "postgres://admin:***@db:5432/x" in result.stderr  # the error
    assert "git::https://deploy:***@example.com/m.git" in result.stderr  # the warning


# --- item 10: values Terraform cannot read ---------------------------------------------------------


@pytest.mark.parametrize("value, key, what", [
    ("1" * 5000, "x", "too large"),
    (str(2**70), "x", "outside the signed 64-bit range"),
    (".nan", "x", "not a finite number"),
    ("-.inf", "x", "not a finite number"),
    ("2024-01-02", "x", "a date"),
    ("2024-01-02T03:04:05Z", "x", "a datetime"),
    ("!!binary aGVsbG8=", "x", "binary data"),
    ("!!set {a, b}", "x", "a set"),
    ("[1, {deep: 2024-01-02}]", "x[1].deep", "a date"),
    ("{null: 1}", "x", "key None is not a string"),
])
def test_values_terraform_cannot_read_are_refused_in_variables(tmp_path, monkeypatch, value, key, what):
    infra = ECS + f"      variables:\n        x: {value}\n"
    root = make(tmp_path / "repo", {"jobs/orders.yaml": job(infra)})
    stderr = refused(root, monkeypatch, "jobs/orders.yaml", what, "error:")
    if "too large" not in what:
        assert f"infrastructure.terraform.variables.{key}: " in stderr and "allowed: strings, booleans" in stderr


@pytest.mark.parametrize("where", [
    ("infra", "    tags: {Ratio: .inf}\n", "infrastructure.tags.Ratio"),
    ("infra", "      backend: {key: .inf}\n", "infrastructure.terraform.backend.key"),
    ("infra", "      resource_refs: {execution_role_arn: r, x: !!binary aGk=}\n", "infrastructure.terraform.resource_refs.x"),
    ("job", "finops: {cost_center: .nan}\n", "finops.cost_center"),
])
def test_values_terraform_cannot_read_are_refused_in_tags_backend_refs_finops(tmp_path, monkeypatch, where):
    kind, text, key = where
    if kind == "infra":
        infra = ECS if "resource_refs" not in text else ECS.replace('      resource_refs: {execution_role_arn: "arn:aws:iam::123456789012:role/run"}\n', "")
        content = job(infra + text)
    else:
        content = job(extra=text)
    root = make(tmp_path / "repo", {"jobs/orders.yaml": content})
    refused(root, monkeypatch, "jobs/orders.yaml", f"error: {key}: ")


def test_a_date_in_an_asset_is_refused_with_the_asset_file(tmp_path, monkeypatch):
    root = make(tmp_path / "repo")
    (root / "assets/orders.yaml").write_text(textwrap.dedent(ASSET).replace("team: {owner: team@example.com}", "team: {owner: team@example.com, since: 2024-01-02}"))
    refused(root, monkeypatch, "assets/orders.yaml", "error: team.since: a date")  # repo-relative


def test_dates_in_dativo_own_sections_are_accepted(tmp_path, monkeypatch):
    root = make(tmp_path / "repo", {"jobs/orders.yaml": job(extra="source: {start_date: 2024-01-02}\n")})
    assert run(["generate"], root, monkeypatch).exit_code == 0


def test_a_tenant_id_longer_than_a_folder_name_may_be_is_refused(tmp_path, monkeypatch):
    tenant = "t" * 300
    root = make(tmp_path / "repo", {"jobs/orders.yaml": job(head=f"tenant_id: {tenant}\nenvironment: prod\n")})
    refused(root, monkeypatch, "jobs/orders.yaml:1", "error: tenant_id: the folder name", "allowed: at most")


def test_a_workspace_path_longer_than_the_os_allows_is_refused(tmp_path, monkeypatch):
    deep = "/".join(["d" * 200] * 21)
    root = make(tmp_path / "repo", settings_extra=f"output_dir: {deep}\n")
    refused(root, monkeypatch, "jobs/orders.yaml", "the workspace path would be about", "allowed: at most", line=False)


# --- item 11: JSON tfvars are literal ----------------------------------------------------------------


def test_json_tfvars_strings_reach_terraform_unchanged(tmp_path, monkeypatch):
    from tests.tfcheck import terraform

    infra = ECS + "      variables: {greeting: 'a${b}c', pct: 'x%{if y}z', plain: ok}\n"
    root = make(tmp_path / "repo", {"jobs/orders.yaml": job(infra)}, settings_extra="tfvars_format: json\n")
    assert run(["generate"], root, monkeypatch).exit_code == 0
    ws = root / "workspaces/acme/prod/orders"
    assert json.loads((ws / "terraform.tfvars.json").read_text())["greeting"] == "a${b}c"
    check = tmp_path / "check"
    check.mkdir()
    shutil.copy(ws / "variables.tf", check / "variables.tf")
    shutil.copy(ws / "terraform.tfvars.json", check / "terraform.tfvars.json")
    (check / "echo.tf").write_text('output "greeting" { value = var.greeting }\noutput "pct" { value = var.pct }\n')
    rc, out, err = terraform(["init", "-input=false", "-backend=false", "-no-color"], check)
    assert rc == 0, err
    rc, out, err = terraform(["apply", "-auto-approve", "-input=false", "-no-color", "-lock=false"], check)
    assert rc == 0, err
    rc, out, err = terraform(["output", "-json"], check)
    assert rc == 0, err
    outputs = json.loads(out)
    assert (outputs["greeting"]["value"], outputs["pct"]["value"]) == ("a${b}c", "x%{if y}z")


def test_json_never_holds_nan_or_infinity():
    with pytest.raises(ValueError):
        hcl.dumps_json({"x": float("nan")})


# --- item 13: paths outside the repository -----------------------------------------------------------


@pytest.mark.parametrize("key, value", [
    ("asset_path", "/etc/passwd"),
    ("asset_path", "../outside/orders.yaml"),
    ("source_connector_path", "../outside/pg.yaml"),
    ("target_connector_path", "/etc/hosts"),
])
def test_input_paths_outside_the_project_are_refused(tmp_path, monkeypatch, key, value):
    write_tree(tmp_path / "outside", {"orders.yaml": ASSET, "pg.yaml": "type: postgres\n"})
    text = job(extra=f"{key}: {value}\n") if key != "asset_path" else job().replace("assets/orders.yaml", value)
    root = make(tmp_path / "repo", {"jobs/orders.yaml": text})
    refused(root, monkeypatch, "jobs/orders.yaml", f"error: {key}: '{value}' points outside the project",
            "allow_outside_project")


def test_a_symlink_inside_the_project_to_a_file_outside_is_refused(tmp_path, monkeypatch):
    write_tree(tmp_path / "outside", {"orders.yaml": ASSET})
    root = make(tmp_path / "repo", {"jobs/orders.yaml": job().replace("assets/orders.yaml", "assets/link.yaml")})
    (root / "assets/link.yaml").symlink_to(tmp_path / "outside/orders.yaml")
    refused(root, monkeypatch, "jobs/orders.yaml", "error: asset_path: 'assets/link.yaml' points outside the project")


@pytest.mark.parametrize("linked", ["file", "folder"])
def test_a_job_reached_through_a_symlink_is_named_by_the_file_it_is(tmp_path, linked):
    """The header, the JobName source and the cache name a job by its real path: a symlinked job file or
    folder inside the project is the file it points to."""
    from dativo_ingest.config import JobConfig
    from dativo_ingest.paths import resolving_once

    root = make(tmp_path / "repo", {"shared/orders.yaml": job()})
    (root / "jobs").mkdir()
    if linked == "file":
        (root / "jobs/orders.yaml").symlink_to(root / "shared/orders.yaml")
        path = root / "jobs/orders.yaml"
    else:
        (root / "jobs/team").symlink_to(root / "shared", target_is_directory=True)
        path = root / "jobs/team/orders.yaml"
    for once in (False, True):  # within a run (paths memoised) and alone
        with resolving_once() if once else contextlib.nullcontext():
            assert JobConfig.from_yaml(path, project_root=root).relative_path == "shared/orders.yaml"
    plain = JobConfig.from_yaml(root / "shared/orders.yaml", project_root=root)
    assert plain.relative_path == "shared/orders.yaml"


def test_a_path_looked_up_once_per_run_is_its_resolved_path(tmp_path):
    """`paths.real` within a run (memoised, told or not whether the path is a link) is `Path.resolve()`, for files
    in real folders, symlinked files, files in symlinked folders and links to links."""
    from dativo_ingest.paths import real, resolving_once

    root = write_tree(tmp_path / "repo", {"shared/a.yaml": "a", "shared/deep/b.yaml": "b", "jobs/c.yaml": "c"})
    (root / "jobs/link.yaml").symlink_to(root / "shared/a.yaml")
    (root / "jobs/team").symlink_to(root / "shared", target_is_directory=True)
    (root / "jobs/again.yaml").symlink_to(root / "jobs/link.yaml")
    (root / "jobs/up").symlink_to("../shared/deep", target_is_directory=True)
    paths = [root / "jobs/c.yaml", root / "jobs/link.yaml", root / "jobs/team/a.yaml", root / "jobs/team/deep/b.yaml",
             root / "jobs/again.yaml", root / "jobs/up/b.yaml", root / "shared/a.yaml", tmp_path / "repo/jobs/c.yaml"]
    for told in (False, True):
        with resolving_once():
            for path in paths + paths:  # the second time from the memo
                got = real(path, path.is_symlink() if told else None)
                assert got == path.resolve() and str(got) == str(path.resolve()), path


@pytest.mark.parametrize("module_path", ["../../../../etc", "/etc", "../shared/modules/job"])
def test_a_local_module_outside_the_project_is_refused(tmp_path, monkeypatch, module_path):
    (tmp_path / "shared/modules/job").mkdir(parents=True)
    infra = ECS.replace("terraform:", f"terraform:\n      module_path: {module_path}")
    root = make(tmp_path / "repo", {"jobs/orders.yaml": job(infra)})
    refused(root, monkeypatch, "jobs/orders.yaml", "error: infrastructure.terraform.module_path: ", "points outside")


@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
def test_an_output_dir_outside_the_project_is_refused(tmp_path, monkeypatch, absolute):
    output_dir = tmp_path / "elsewhere" if absolute else "../elsewhere"
    root = make(tmp_path / "repo", settings_extra=f"output_dir: {output_dir}\n")
    refused(root, monkeypatch, "dativo-tf.yaml", "error: output_dir: ", "points outside the project")
    assert not (tmp_path / "elsewhere").exists()


def test_allow_outside_project_admits_a_monorepo_folder(tmp_path, monkeypatch):
    write_tree(tmp_path, {"shared/modules/job/main.tf": "", "shared/assets/orders.yaml": ASSET})
    infra = ECS.replace("terraform:", "terraform:\n      module_path: ../shared/modules/job")
    text = job(infra).replace("assets/orders.yaml", "../shared/assets/orders.yaml")
    root = make(tmp_path / "repo", {"jobs/orders.yaml": text},
                settings_extra=f"allow_outside_project: [../shared, {tmp_path / 'out'}]\noutput_dir: {tmp_path / 'out'}\n")
    result = run(["generate"], root, monkeypatch)
    assert result.exit_code == 0, result.output
    assert 'source = "../../../../shared/modules/job"' in (tmp_path / "out/acme/prod/orders/main.tf").read_text()


def test_remote_module_sources_are_not_paths(tmp_path, monkeypatch):
    infra = ECS.replace("terraform:", "terraform:\n      module_path: git::https://example.com/m.git?ref=v1")
    root = make(tmp_path / "repo", {"jobs/orders.yaml": job(infra)})
    assert run(["generate"], root, monkeypatch).exit_code == 0


# --- item 8 (discovery): nothing is skipped silently ---------------------------------------------------


def test_a_jobs_pattern_matching_nothing_is_refused(tmp_path, monkeypatch):
    root = make(tmp_path / "repo", settings_extra="jobs: [jobs/**/*.yaml, legacy/*.yaml]\n")
    lines = (root / "dativo-tf.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.startswith("jobs:"))
    refused(root, monkeypatch, f"dativo-tf.yaml:{line}", "jobs[1]: the pattern 'legacy/*.yaml' matches no file")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _socket(path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(path.parent)  # AF_UNIX paths are short: bind by a relative name
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path.name)
        sock.close()
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("kind, make_it", [
    ("a broken symlink", lambda p: p.symlink_to(p.parent / "gone.yaml")),
    ("a FIFO", _fifo),
    ("a socket", _socket),
    ("a folder", lambda p: p.mkdir()),
])
@pytest.mark.parametrize("explicit", [False, True])
def test_a_job_path_that_is_not_a_regular_file_is_refused(tmp_path, monkeypatch, kind, make_it, explicit):
    root = make(tmp_path / "repo")
    make_it(root / "jobs/odd.yaml")
    args = ["generate", "jobs/odd.yaml"] if explicit and kind != "a folder" else ["generate"]
    refused(root, monkeypatch, "jobs/odd.yaml", f"the job path is {kind}", args=args, line=False)


def test_a_tag_default_terraform_cannot_read_is_refused_in_the_settings(tmp_path, monkeypatch):
    root = make(tmp_path / "repo", settings_extra="environments:\n  prod:\n    tags: {defaults: {Ratio: .nan}}\n")
    refused(root, monkeypatch, "dativo-tf.yaml", "error: environments.prod.tags.defaults.Ratio: nan (not a finite number)")


@pytest.mark.parametrize("key", ["asset_path", "source_connector_path"])
def test_a_nul_byte_in_a_path_is_refused(tmp_path, monkeypatch, key):
    text = job().replace("asset_path: assets/orders.yaml\n", "") + f'{key}: "assets/orders\\0.yaml"\n'
    root = make(tmp_path / "repo", {"jobs/orders.yaml": text})
    refused(root, monkeypatch, "jobs/orders.yaml", f"error: {key}: 'assets/orders\\x00.yaml' contains the control character U+0000")


@pytest.mark.parametrize("command", ["vars", "tags"])
def test_a_fifo_job_is_refused_by_the_single_job_commands_without_blocking(tmp_path, monkeypatch, command):
    root = make(tmp_path / "repo")
    os.mkfifo(root / "jobs/odd.yaml")
    refused(root, monkeypatch, "jobs/odd.yaml", "not a regular file", args=(command, "jobs/odd.yaml"), line=False)


def test_containment_follows_a_changed_allow_outside_project(tmp_path):
    """The allowed folders are resolved once per project root, but a new allow_outside_project counts."""
    from dativo_ingest import paths

    root, shared = tmp_path / "repo", tmp_path / "shared"
    root.mkdir()
    shared.mkdir()
    (shared / "a.yaml").write_text("x: 1\n")
    paths.allow(root, [])
    assert "points outside the project" in paths.problem("../shared/a.yaml", root / "../shared/a.yaml", root)
    paths.allow(root, ["../shared"])
    assert paths.problem("../shared/a.yaml", root / "../shared/a.yaml", root) is None
    paths.allow(root, [])
    assert "points outside the project" in paths.problem("../shared/a.yaml", root / "../shared/a.yaml", root)


def test_a_host_applications_path_resolvers_neither_break_nor_change_our_yaml():
    """dativo-tf runs inside other processes (the Python API, Dagster): a path resolver that application registers
    on PyYAML's C loader must not reach the loader dativo-tf parses with, and ours refuses one outright."""
    import yaml

    from dativo_ingest import yamlsource

    for base in (yamlsource.SafeLoader.__mro__[1], yaml.resolver.Resolver):
        saved = base.__dict__.get("yaml_path_resolvers")
        try:
            yaml.add_path_resolver("!custom", [], dict, Loader=base)
            assert yamlsource.parse("a: 1\nb: [x]\n", "f.yaml") == {"a": 1, "b": ["x"]}
        finally:
            if saved is None:
                del base.yaml_path_resolvers
            else:
                base.yaml_path_resolvers = saved
    with pytest.raises(TypeError):
        yamlsource.SafeLoader.add_path_resolver("!custom", [], dict)
    assert yamlsource.parse("a: 1\n", "f.yaml") == {"a": 1}
