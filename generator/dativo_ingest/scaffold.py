"""`dativo-tf init`: a new infrastructure repo from the bundled cookiecutter template."""

from __future__ import annotations

import tempfile
from importlib.resources import files
from pathlib import Path

from dativo_ingest.errors import InputError

TEMPLATE = "scaffold"


def template_dir() -> Path:
    return Path(str(files("dativo_ingest.templates"))) / TEMPLATE


def scaffold(directory: Path, answers: dict[str, str], *, no_input: bool = False, force: bool = False) -> Path:
    """Render the template into `directory` (created if needed). Unknown answer keys are an error."""
    import json

    from cookiecutter.exceptions import CookiecutterException, FailedHookException
    from cookiecutter.main import cookiecutter

    known = {k for k in json.loads((template_dir() / "cookiecutter.json").read_text()) if not k.startswith("_")}
    unknown = sorted(set(answers) - known)
    if unknown:
        raise InputError(f"unknown template question {unknown[0]!r}; allowed: {', '.join(sorted(known))}", key="--set")
    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()) and not force:
        raise InputError("the folder is not empty; use --force to render into it anyway", path=directory)
    from dativo_ingest import __version__

    # the scaffolded CI pins the dativo-tf that created it
    context = {"repo_name": directory.name, **answers, "_dativo_tf_version": __version__}
    with tempfile.TemporaryDirectory(prefix="dativo-tf-init-") as staging:
        try:
            rendered = Path(cookiecutter(str(template_dir()), no_input=no_input, extra_context=context,
                                         output_dir=staging, overwrite_if_exists=True))
        except FailedHookException as exc:
            raise InputError(f"the template rejected the answers: {exc}", key="--set") from None
        except CookiecutterException as exc:
            raise InputError(f"cookiecutter failed: {exc}") from None
        directory.mkdir(parents=True, exist_ok=True)
        for source in sorted(rendered.rglob("*")):
            target = directory / source.relative_to(rendered)
            if source.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.write_bytes(source.read_bytes())
    return directory


def new_job(project_root: Path, name: str, answers: dict[str, str]) -> Path:
    """Write jobs/<tenant>/<name>.yaml for a cloud and compute type, validated before it lands."""
    import os

    from dativo_ingest.compute import COMPUTE_TYPES
    from dativo_ingest.config import JobConfig
    from dativo_ingest.render import environment, render_job
    from dativo_ingest.project import ProjectSettings

    cloud, compute_type = answers["cloud"], answers["compute_type"]
    if compute_type not in COMPUTE_TYPES.get(cloud, ()):
        raise InputError(f"{compute_type!r} is not a compute type for {cloud!r}; allowed: "
                         + ", ".join(COMPUTE_TYPES.get(cloud, COMPUTE_TYPES["aws"] + COMPUTE_TYPES["gcp"])), key="--compute-type")
    project = ProjectSettings.load(start=project_root)
    settings = project.base
    context = {"name": name, "region": settings.aws.region if cloud == "aws" else settings.gcp.region, **answers}
    text = environment().get_template("new_job.yaml.j2").render(context)
    target = project.root / "jobs" / answers["tenant_id"] / f"{name}.yaml"
    if target.exists():
        raise InputError("the job file exists already", path=target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".new-job-", dir=target.parent))  # same name: the job name is the stem
    staged = staging / target.name
    try:
        staged.write_text(text)
        job = JobConfig.from_yaml(staged, project_root=project.root)
        render_job(job, project)  # every check the generator makes, before the file lands
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
        staging.rmdir()
        if not any(target.parent.iterdir()):
            target.parent.rmdir()
    return target
