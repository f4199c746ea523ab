"""`dativo-tf init`: a new infrastructure repo from the bundled cookiecutter template."""

from __future__ import annotations

import tempfile
from importlib.resources import files
from pathlib import Path, PurePosixPath

from dativo_ingest.errors import DativoTfError, InputError, InputErrors

TEMPLATE = "scaffold"


def template_dir() -> Path:
    return Path(str(files("dativo_ingest.templates"))) / TEMPLATE


# The pre-generation hook writes its problems to this file when set, so `init` reports them in its own line.
HOOK_REPORT_ENV = "DATIVO_TF_HOOK_REPORT"


def questions() -> dict:
    import json

    return {k: v for k, v in json.loads((template_dir() / "cookiecutter.json").read_text()).items() if not k.startswith("_")}


def scaffold(directory: Path, answers: dict[str, str], *, no_input: bool = False, force: bool = False) -> Path:
    """Render the template into `directory` (created if needed). Unknown answer keys are an error."""
    import logging
    import os

    from cookiecutter.exceptions import CookiecutterException, FailedHookException
    from cookiecutter.main import cookiecutter

    known = questions()
    unknown = sorted(set(answers) - set(known))
    if unknown:
        raise InputError(f"unknown template question {unknown[0]!r}; allowed: {', '.join(sorted(known))}", key="--set")
    for key, value in sorted(answers.items()):
        if isinstance(known[key], list) and value not in known[key]:
            raise InputError(f"{value!r} is not a choice for {key}; allowed: {', '.join(known[key])}", key="--set")
    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()) and not force:
        raise InputError("the folder is not empty; use --force to render into it anyway", path=directory)
    from dativo_ingest import __version__

    # the scaffolded CI pins the dativo-tf that created it
    context = {"repo_name": directory.name, **answers, "_dativo_tf_version": __version__}
    quiet = logging.getLogger("cookiecutter")  # it logs a traceback for a failing hook; we report it in one line
    level, propagate = quiet.level, quiet.propagate
    quiet.setLevel(logging.CRITICAL + 1)
    quiet.propagate = False
    with tempfile.TemporaryDirectory(prefix="dativo-tf-init-") as staging:
        report = Path(tempfile.mkstemp(prefix="hook-report-", dir=staging)[1])
        saved = os.environ.get(HOOK_REPORT_ENV)
        os.environ[HOOK_REPORT_ENV] = str(report)
        try:
            rendered = Path(cookiecutter(str(template_dir()), no_input=no_input, extra_context=context,
                                         output_dir=staging, overwrite_if_exists=True))
        except FailedHookException:
            problems = report.read_text().strip().splitlines()
            raise InputError("the template rejected the answers: " + ("; ".join(problems) or "its hook failed"),
                             key="--set") from None
        except (CookiecutterException, ValueError) as exc:
            raise InputError(f"cookiecutter failed: {exc}", key="--set") from None
        finally:
            quiet.setLevel(level)
            quiet.propagate = propagate
            if saved is None:
                os.environ.pop(HOOK_REPORT_ENV, None)
            else:
                os.environ[HOOK_REPORT_ENV] = saved
        directory.mkdir(parents=True, exist_ok=True)
        for source in sorted(rendered.rglob("*")):
            target = directory / source.relative_to(rendered)
            if source.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.write_bytes(source.read_bytes())
    return directory


_PLACEHOLDERS = ("123456789012", "0123456789abcdef0", "dativo-etl")


def next_steps(directory: Path) -> list[str]:
    """What a new repo needs before its first `terraform apply`, read from the files `init` wrote."""
    from dativo_ingest.defaults import SETTINGS_FILE
    from dativo_ingest.yamlsource import load_mapping

    steps = []
    placeholders = sorted(
        p.relative_to(directory).as_posix()
        for p in [directory / SETTINGS_FILE, *sorted((directory / "jobs").rglob("*.yaml"))]
        if p.is_file() and any(marker in p.read_text() for marker in _PLACEHOLDERS)
    )
    if placeholders:
        steps.append("replace the placeholder ARNs, ids and names (123456789012, subnet-0123456789abcdef0, "
                     f"dativo-etl, ...) with your own in: {', '.join(placeholders)}")
    settings, _ = load_mapping(directory / SETTINGS_FILE)
    for cloud, create in (("aws", "aws s3 mb s3://{}"), ("gcp", "gcloud storage buckets create gs://{}")):
        bucket = ((settings.get(cloud) or {}).get("backend") or {}).get("bucket")
        if bucket:
            steps.append(f"create the Terraform state bucket {bucket}: {create.format(bucket)}")
    steps.append(f"cd {directory} && git init && pre-commit install   # regenerate the workspaces on every commit")
    steps.append("dativo-tf generate")
    return steps


def new_job(project_root: Path, name: str, answers: dict[str, str]) -> Path:
    """Write jobs/<tenant>/<name>.yaml for a cloud and compute type, validated before it lands."""
    import os

    from dativo_ingest.compute import COMPUTE_TYPES
    from dativo_ingest.config import JobConfig
    from dativo_ingest.render import environment, render_job
    from dativo_ingest.schemas import SCHEMA_DIR, file_name
    from dativo_ingest.project import ProjectSettings

    cloud, compute_type = answers["cloud"], answers["compute_type"]
    if compute_type not in COMPUTE_TYPES.get(cloud, ()):
        raise InputError(f"{compute_type!r} is not a compute type for {cloud!r}; allowed: "
                         + ", ".join(COMPUTE_TYPES.get(cloud, COMPUTE_TYPES["aws"] + COMPUTE_TYPES["gcp"])), key="--compute-type")
    project = ProjectSettings.load(start=project_root)
    settings = project.base
    context = {"name": name, "region": settings.aws.region if cloud == "aws" else settings.gcp.region,
               "asset": PurePosixPath(answers["asset_path"]).stem, **answers}
    target = project.root / "jobs" / answers["tenant_id"] / f"{name}.yaml"
    schema = project.root / SCHEMA_DIR / file_name("job")  # written by `init`: editors validate the new file
    context["schema"] = Path(os.path.relpath(schema, target.parent)).as_posix() if schema.is_file() else None
    text = environment().get_template("new_job.yaml.j2").render(context)
    if target.exists():
        raise InputError("the job file exists already", path=target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".new-job-", dir=target.parent))  # same name: the job name is the stem
    staged = staging / target.name
    shown = target.relative_to(project.root).as_posix()
    try:
        staged.write_text(text)
        try:
            job = JobConfig.from_yaml(staged, project_root=project.root)
            render_job(job, project)  # every check the generator makes, before the file lands
        except DativoTfError as exc:  # name the file it would have been, not the staging copy
            for err in exc.errors if isinstance(exc, InputErrors) else [exc]:
                if err.path and Path(err.path).name == staged.name and staging.name in err.path:
                    err.path = shown
            raise
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
        staging.rmdir()
        if not any(target.parent.iterdir()):
            target.parent.rmdir()
    return target
