"""Dagster integration: one asset per job with an `infrastructure` block. Materialising it renders the
job's Terraform workspace (the same code and ownership records as `dativo-tf generate`), then, by the resource's
mode, runs `terraform plan` or `terraform apply` there and returns `terraform output -json` as the value.

Needs the `dagster` extra: `pip install 'dativo-tf[dagster]'`.

    from dativo_ingest.dagster_assets import build_definitions
    defs = build_definitions("dativo-tf.yaml")
"""

# No `from __future__ import annotations`: Dagster reads the asset function's annotations at runtime.
import json
import os
import re
import subprocess
import threading
from collections import deque
from collections.abc import Sequence
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import dagster as dg

from dativo_ingest.cache import relative
from dativo_ingest.errors import DativoTfError, InputError, InputErrors
from dativo_ingest.project import ProjectSettings

MODES = ("render", "plan", "apply")
PLAN_FILE = "dativo-tf.tfplan"
_TAIL_LINES = 40
_PROMPTING = ("init", "plan", "apply")
_TAG_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


class TerraformResource(dg.ConfigurableResource):
    """How infrastructure assets run Terraform.

    mode: `render` only writes the workspace; `plan` also runs init and `plan -out`; `apply` runs init,
    `plan -out` and applies that plan. Commands get `-no-color`, and `-input=false` where Terraform could
    prompt (init, plan, apply).
    """

    binary: str = "terraform"
    mode: str = "render"
    env: dict[str, str] = {}

    def checked_mode(self) -> str:
        if self.mode not in MODES:
            raise dg.Failure(f"TerraformResource.mode is {self.mode!r}; allowed: {', '.join(MODES)}")
        return self.mode

    def run(self, args: list[str], cwd: Path, log: Any) -> str:
        """Run `terraform <args>` in `cwd`, streaming its output to `log`; its stdout on success."""
        interactive = ["-input=false"] if args[0] in _PROMPTING else []  # `output` rejects -input
        command = [self.binary, args[0], *interactive, "-no-color", *args[1:]]
        env = {**os.environ, "TF_IN_AUTOMATION": "1", **self.env}
        log.info(f"$ {' '.join(command)}  (in {cwd})")
        try:
            proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise dg.Failure(
                f"Terraform binary {self.binary!r} not found (TerraformResource.binary): install Terraform or set "
                "`binary` to its full path"
            ) from None
        except PermissionError:
            raise dg.Failure(f"Terraform binary {self.binary!r} is not executable (TerraformResource.binary)") from None
        stdout: list[str] = []
        stderr_tail: deque[str] = deque(maxlen=_TAIL_LINES)

        def pump_stderr() -> None:
            for line in proc.stderr:
                stderr_tail.append(line.rstrip("\n"))
                log.warning(line.rstrip("\n"))

        reader = threading.Thread(target=pump_stderr, daemon=True)
        reader.start()
        for line in proc.stdout:
            stdout.append(line)
            if args[0] != "output":  # outputs may be sensitive: returned, not logged
                log.info(line.rstrip("\n"))
        proc.wait()
        reader.join()
        if proc.returncode != 0:
            tail = "\n".join(stderr_tail) or "".join(stdout[-_TAIL_LINES:])
            raise dg.Failure(
                description=f"terraform {args[0]} failed with exit code {proc.returncode} in {cwd}:\n{tail}",
                metadata={"command": " ".join(command), "workspace": dg.MetadataValue.path(str(cwd))},
            )
        return "".join(stdout)


def dagster_tags(tags: dict[str, str]) -> dict[str, str]:
    """Tags within Dagster's rules: keys and values of at most 63 characters of [A-Za-z0-9_.-]; each run
    of other characters becomes `_`."""
    out: dict[str, str] = {}
    sources: dict[str, str] = {}
    for key, value in tags.items():
        clean_key = _TAG_CHARS.sub("_", key).strip("_")[:63]
        if not clean_key:
            continue
        if clean_key in sources:
            raise InputError(f"tags {sources[clean_key]!r} and {key!r} both become the Dagster tag {clean_key!r}; "
                             "rename one", key="infrastructure.tags")
        sources[clean_key] = key
        out[clean_key] = _TAG_CHARS.sub("_", value).strip("_")[:63]
    return out


def dagster_owner(owner: str) -> str:
    """An email address (also `Name <address>`) becomes that address; anything else a `team:` owner."""
    _, address = parseaddr(owner)
    if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address):
        return address
    return "team:" + (re.sub(r"[^A-Za-z0-9_-]+", "_", owner).strip("_") or "unknown")


def asset_key(job: Any) -> dg.AssetKey:
    """The asset key of a job's infrastructure: [tenant_id, environment, job name]."""
    from dativo_ingest.render import workspace_dir

    return dg.AssetKey(list(workspace_dir(job).parts))


def infrastructure_input(job_path: str | Path, config: str | Path | None = None) -> dg.AssetIn:
    """An `ins=` entry for your own job asset: it runs after the job's infrastructure and receives its
    `terraform output -json` values as a dict, e.g. `infra["task_definition_arn"]`."""
    from dativo_ingest.config import JobConfig

    project = ProjectSettings.load(config, start=Path(job_path).parent)
    return dg.AssetIn(key=asset_key(JobConfig.from_yaml(job_path, project_root=project.root)))


def build_definitions(config: str | Path = "dativo-tf.yaml", jobs: Sequence[str | Path] | None = None, *,
                      terraform: TerraformResource | None = None) -> dg.Definitions:
    """One asset per job with an infrastructure block (`jobs`: files or folders; default: the `jobs`
    globs of `config`), plus the `terraform` resource (default: render mode). Any invalid job fails the
    load with every error listed, as `dativo-tf validate` does."""
    from dativo_ingest.config import JobConfig
    from dativo_ingest.discovery import find_jobs
    from dativo_ingest.render import render_job

    project = ProjectSettings.load(config)
    assets, errors = [], []
    for path in find_jobs(project, [str(j) for j in jobs or ()]):
        try:
            job = JobConfig.from_yaml(path, project_root=project.root)
            workspace = render_job(job, project)
            if workspace is not None:
                assets.append(_job_asset(project, job, workspace))
        except InputErrors as exc:
            errors += exc.errors
        except DativoTfError as exc:
            if exc.path is None:
                exc.path = job.relative_path
            errors.append(exc)
    if errors:
        raise InputErrors(errors)
    return dg.Definitions(assets=assets, resources={"terraform": terraform or TerraformResource()})


def _job_asset(project: ProjectSettings, job: Any, workspace: Any) -> dg.AssetsDefinition:
    infra = job.infrastructure
    compute_type = infra.runtime_environment.compute_type
    asset = job.asset_definition
    owner = asset.team.owner if asset and asset.team else None
    workspace_path = project.output_dir / workspace.directory
    provenance = dg.MetadataValue.table(
        records=[dg.TableRecord({"tag": t.key, "value": t.value, "source": t.source}) for t in workspace.tags.values()],
        schema=dg.TableSchema(columns=[dg.TableColumn("tag", "string"), dg.TableColumn("value", "string"),
                                       dg.TableColumn("source", "string")]),
    )
    job_path = job.path
    metadata = {
        "job_file": dg.MetadataValue.path(job.relative_path),
        "workspace": dg.MetadataValue.path(str(workspace_path)),
        "cloud_provider": infra.cloud_provider,
        "compute_type": compute_type,
        "tag_provenance": provenance,
    }
    metadata.update(_cost_metadata(project, job))

    @dg.asset(
        key=asset_key(job),
        group_name=workspace.directory.parts[0],
        kinds={"terraform", infra.cloud_provider, compute_type},
        owners=[dagster_owner(owner)] if owner else None,
        tags=dagster_tags({k: t.value for k, t in workspace.tags.items()}),
        description=(f"Terraform workspace of {job.relative_path}: {compute_type} on {infra.cloud_provider.upper()}, "
                     f"rendered by dativo-tf into {relative(workspace_path, project.root)}"),
        metadata=metadata,
    )
    def _infrastructure(context: dg.AssetExecutionContext, terraform: TerraformResource) -> dg.Output:
        return materialize_workspace(context, terraform, project, job_path)

    return _infrastructure


def _cost_metadata(project: ProjectSettings, job: Any) -> dict[str, Any]:
    """`estimated_monthly_cost_usd` (absent when a price or the duration is unknown) and how it was reached."""
    from dativo_ingest.cost import estimate

    result = estimate(job, project)
    out: dict[str, Any] = {"estimated_cost": result.summary()}
    if result.monthly_usd is not None:
        out["estimated_monthly_cost_usd"] = dg.MetadataValue.float(round(result.monthly_usd, 2))
    return out


def materialize_workspace(context: Any, terraform: TerraformResource, project: ProjectSettings,
                          job_path: Path) -> dg.Output:
    """Render one job's workspace (all or nothing, other workspaces untouched), then plan or apply it by the mode."""
    from dativo_ingest.config import JobConfig
    from dativo_ingest.pipeline import render_all
    from dativo_ingest.writer import apply, exclusive, plan

    terraform.checked_mode()
    output_dir = project.output_dir
    try:
        with exclusive(output_dir):  # other assets of the same run write into the same folder
            job = JobConfig.from_yaml(job_path, project_root=project.root)
            rendered = render_all(project, [str(job_path)])
            if rendered.errors:
                raise InputErrors(rendered.errors)
            changes = plan(rendered.workspaces, output_dir, project.root, job_paths=rendered.job_paths,
                           full_run=False, skipped=rendered.skipped, settings_path=project.path)
            apply(changes)
    except DativoTfError as exc:
        raise dg.Failure(f"dativo-tf could not render {job_path}:\n{exc}") from None
    for change in changes.pending:
        context.log.info(f"{change.action} {change.path}")
    directory = rendered.workspaces[0].directory
    outputs, metadata = run_workspace(context, terraform, output_dir / directory)
    metadata["files_changed"] = len(changes.pending)
    metadata["resource_refs"] = dg.MetadataValue.json(dict(job.infrastructure.terraform.resource_refs))
    return dg.Output(outputs, metadata=metadata)


def run_workspace(context: Any, terraform: TerraformResource, workspace: Path) -> tuple[dict[str, Any], dict]:
    """By the resource's mode: nothing (render), or init + `plan -out` (plan), or init + `plan -out` +
    apply of that plan (apply); then `terraform output -json`. Returns (output values, metadata)."""
    mode = terraform.checked_mode()
    outputs: dict[str, Any] = {}
    sensitive: set[str] = set()
    if mode in ("plan", "apply"):
        terraform.run(["init"], workspace, context.log)
        terraform.run(["plan", f"-out={PLAN_FILE}"], workspace, context.log)
        if mode == "apply":
            terraform.run(["apply", PLAN_FILE], workspace, context.log)
        raw = json.loads(terraform.run(["output", "-json"], workspace, context.log) or "{}")
        outputs = {name: entry.get("value") for name, entry in raw.items()}
        sensitive = {name for name, entry in raw.items() if entry.get("sensitive")}
    metadata = {
        "mode": mode,
        "workspace": dg.MetadataValue.path(str(workspace)),
        "outputs": dg.MetadataValue.json({k: "(sensitive)" if k in sensitive else v for k, v in outputs.items()}),
    }
    return outputs, metadata
