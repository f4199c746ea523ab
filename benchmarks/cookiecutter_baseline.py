"""The baseline a user reaches for today: the workspace as a cookiecutter template, rendered with
cookiecutter's Python API, one call per job.

To compare like with like it uses the same jobs, the same templates and the same checked context as
dativo-tf; the context goes in as JSON data, which is all cookiecutter can carry (it writes a replay file
per call). Cookiecutter builds a Jinja environment, compiles the templates and writes the files on every
call, which is the cost this baseline measures. The layout pass runs as a filter, where a user would run
`terraform fmt` afterwards, so the output is byte-identical to dativo-tf's (minus the ownership records).

Run: python benchmarks/cookiecutter_baseline.py REPO OUT
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import pass_context
from jinja2.ext import Extension
from pydantic import BaseModel

from dativo_ingest import hcl
from dativo_ingest.config import JobConfig
from dativo_ingest.discovery import find_jobs
from dativo_ingest.project import ProjectSettings
from dativo_ingest.render import HEADER, TEMPLATES, prepare_job


@pass_context
def _ref(context, name: str) -> str | None:
    return f'var.resource_refs["{name}"]' if context["refs"].get(name) else None


class HclExtension(Extension):
    """dativo-tf's filters, loaded by cookiecutter through `_extensions`."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.filters.update(hcl=hcl.value, hcl_string=hcl.string, hcl_key=hcl.key,
                                   hcl_attributes=hcl.attributes,
                                   layout=lambda text, header: hcl.format_hcl(f"{header}\n\n{text}"))
        environment.globals["ref"] = _ref


def _plain(value: Any) -> Any:
    """The context as JSON data: models and dataclasses become mappings, functions are dropped."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not callable(v)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def build_template(root: Path, context_keys: list[str]) -> Path:
    template = root / "dativo-workspace"
    shutil.copytree(Path(str(files("dativo_ingest.templates"))), template / "templates")  # cookiecutter's include folder
    (template / "cookiecutter.json").write_text(json.dumps({
        "workspace": "job", "_ctx": "", "_templates": "", "_header": "", "_tfvars": "", "_tfvars_name": "",
        "_extensions": ["cookiecutter_baseline.HclExtension"],
        "_jinja2_env_vars": {"trim_blocks": True, "lstrip_blocks": True},
    }))
    workspace = template / "{{cookiecutter.workspace}}"
    workspace.mkdir()
    preamble = "".join(f"{{% set {key} = cookiecutter._ctx.{key} %}}" for key in context_keys)
    for name, _ in TEMPLATES:
        (workspace / name).write_text(
            preamble + f'{{% filter layout(cookiecutter._header) %}}{{% include cookiecutter._templates["{name}"] %}}'
            "{% endfilter %}"
        )
    (workspace / "{{cookiecutter._tfvars_name}}").write_text("{{ cookiecutter._tfvars }}")
    return template


def main(repo: Path, out: Path) -> int:
    from cookiecutter.main import cookiecutter

    project = ProjectSettings.load(repo / "dativo-tf.yaml")
    project.out = out  # local module sources are relative to where the workspaces land, as `generate --out` does
    jobs = [p for p in find_jobs(project)]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["COOKIECUTTER_CONFIG"] = str(Path(tmp) / "config.yaml")
        (Path(tmp) / "config.yaml").write_text(f"cookiecutters_dir: {tmp}/cc\nreplay_dir: {tmp}/replay\n")
        prepared_jobs = []
        for path in jobs:
            job = JobConfig.from_yaml(path, project_root=project.root)
            prepared = prepare_job(job, project)
            if prepared is not None:
                prepared_jobs.append((job, prepared, _plain(prepared.context)))
        # one template for every job: it names the context keys of every compute type
        template = build_template(Path(tmp), sorted({key for _, _, ctx in prepared_jobs for key in ctx}))
        count = 0
        for job, prepared, ctx in prepared_jobs:
            header = HEADER.format(job.relative_path)
            variables = prepared.workspace.variables
            if prepared.tfvars_format == "json":
                tfvars_name, tfvars = "terraform.tfvars.json", hcl.dumps_json(variables)  # literal JSON, as render.Prepared.finish writes it
            else:
                tfvars_name, tfvars = "terraform.tfvars", hcl.format_hcl(f"{header}\n\n{hcl.attributes(variables)}")
            directory = prepared.workspace.directory
            cookiecutter(
                str(template), no_input=True, overwrite_if_exists=True,
                output_dir=str(out / directory.parent),
                extra_context={"workspace": directory.name, "_ctx": ctx, "_templates": dict(prepared.templates),
                               "_header": header, "_tfvars": tfvars, "_tfvars_name": tfvars_name},
            )
            count += 1
    print(f"{count} workspace(s) rendered with cookiecutter", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()))
