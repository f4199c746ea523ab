"""The `dativo-tf` command line. Heavy modules are imported inside commands so `--version` starts fast."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dativo_ingest import __version__


class Context:
    def __init__(self, verbose: bool = False, quiet: bool = False):
        self.verbose = verbose
        self.quiet = quiet


def _fail(ctx: Context, exc: BaseException) -> None:
    """Print a user error as `path:line: error: key: message` (traceback only with --verbose) and exit 2."""
    from dativo_ingest.errors import DativoTfError, InputErrors, format_message

    if ctx.verbose:
        import traceback  # only here: it costs every other start its import time

        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, DativoTfError):
        errors = exc.errors if isinstance(exc, InputErrors) else [exc]
        for err in errors:
            err.path = _repo_relative(err.path)
        for line in dict.fromkeys(err.format() for err in errors):  # each cause once, in order
            click.echo(line, err=True)
    else:
        click.echo(format_message("error", str(exc)), err=True)
    sys.exit(2)


def _repo_relative(path: str | None) -> str | None:
    """An absolute path inside the repo (the folder of dativo-tf.yaml above the current one), made relative to it."""
    from dativo_ingest.defaults import SETTINGS_FILE

    if not path or not Path(path).is_absolute():
        return path
    here = Path.cwd().resolve()
    root = next((d for d in (here, *here.parents) if (d / SETTINGS_FILE).is_file()), here)
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except (ValueError, OSError):
        return path


def _set_flag(name: str):
    def callback(click_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            setattr(click_ctx.ensure_object(Context), name, True)
    return callback


def _shared_options() -> list[click.Option]:
    """-v/-q, accepted before the subcommand and after it (`dativo-tf generate -q`)."""
    return [
        click.Option(["-v", "--verbose"], is_flag=True, expose_value=False, callback=_set_flag("verbose"),
                     help="Show tracebacks for errors."),
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_set_flag("quiet"),
                     help="Only errors on stderr."),
    ]


class _Group(click.Group):
    """Every subcommand also takes the shared options."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params.extend(_shared_options())
        super().add_command(cmd, name)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="dativo-tf")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.pass_context
def main(click_ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """Generate Terraform workspaces from Dativo job configs."""
    click_ctx.obj = Context(verbose, quiet)


def _project(config: str | None, lazy: bool = False):
    from dativo_ingest.project import ProjectSettings

    return ProjectSettings.load(config, lazy=lazy)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--config", "config", type=click.Path(), help="dativo-tf.yaml (default: found upwards from here).")
@click.option("--out", "out", type=click.Path(file_okay=False), help="Output folder (default: output_dir).")
@click.option("--check", is_flag=True, help="Write nothing; list what would change; exit 1 if anything would.")
@click.option("--diff", is_flag=True, help="Write nothing; print a unified diff; exit 1 if anything would change.")
@click.option("--fail-on-change", is_flag=True, help="Exit 1 when files were written (for pre-commit hooks).")
@click.option("--full", is_flag=True, help="Render every job, even those the local render cache shows up to date.")
@click.option("--retire-all", "--prune-all", "retire_all", is_flag=True,
              help="Allow retiring more than half of the workspaces in one run.")
@click.option("-j", "--jobs", "workers", type=click.IntRange(min=1), help="Render with N processes (default: CPUs).")
@click.pass_obj
def generate(ctx: Context, paths: tuple[str, ...], config: str | None, out: str | None, check: bool, diff: bool,
             fail_on_change: bool, full: bool, retire_all: bool, workers: int | None) -> None:
    """Write one Terraform workspace per job (only files whose bytes change).

    A workspace whose job is gone is retired (no resources, backend kept), never deleted: see `prune`."""
    from dativo_ingest import cache
    from dativo_ingest.errors import DativoTfError
    from dativo_ingest.pipeline import StageTo, render_all
    from dativo_ingest.report import Report, WriteBack
    from dativo_ingest.writer import apply, discard_stage, exclusive, plan, settings_id, shared, unified_diff

    mode = WriteBack.DIFF if diff else WriteBack.CHECK if check else WriteBack.YES
    report = Report(mode=mode, quiet=ctx.quiet, fail_on_change=fail_on_change)
    try:
        project = _project(config, lazy=True)
        output_dir = Path(out).resolve() if out else project.output_dir
        project.out = output_dir  # local module sources are relative to where the workspaces land
        # --diff shows every changed file's old and new text, so it renders everything
        reuse = None if full or diff else output_dir
        prefix = _prefix(output_dir, project.root)
        mine = settings_id(project.path, project.root, project.output_dir)
        # a writing run creates the folder, then holds its lock from reading the records (and staging new
        # workspaces while rendering) to writing them back; --check and --diff hold a shared lock
        with exclusive(output_dir, later=True) if mode is WriteBack.YES else shared(output_dir) as cannot_create:
            stage_to = StageTo(output_dir, mine) if mode is WriteBack.YES and cannot_create is None else None
            rendered = render_all(project, paths, reuse=reuse, workers=workers, stage_to=stage_to)
            try:
                for warning in rendered.warnings:
                    report.warning(warning)
                for err in rendered.errors:
                    report.error(err)
                if report.errors:
                    report.status(f"{len(report.errors)} error(s); nothing written")
                    sys.exit(report.return_code)
                if cannot_create is not None:
                    raise cannot_create
                result = plan(rendered.workspaces, output_dir, project.root, job_paths=rendered.job_paths,
                              full_run=not paths, cached=rendered.cached, skipped=rendered.skipped,
                              settings_path=project.path, record_base=project.output_dir, prefix=prefix,
                              keep_old=mode is WriteBack.DIFF, retire_all=retire_all, stage=rendered.stage,
                              records_read=rendered.records_read)
                if mode is WriteBack.YES:
                    apply(result)
                    jobs = cache.build(rendered.workspaces, rendered.cached, rendered.skipped, project.root,
                                       result.record_shas, rendered.skipped_shas)
                    seen = cache.signatures(jobs, rendered.digest, project.root, output_dir) if rendered.digest else {}
                    if (jobs, seen) != rendered.cache_read:  # a no-op leaves it as it read it
                        cache.save(output_dir, project.path, jobs, seen)
            finally:
                discard_stage(rendered.stage)
    except DativoTfError as exc:
        _fail(ctx, exc)
    with report.held():
        for skipped in rendered.skipped_jobs:
            report.status(f"skipped {skipped} (no infrastructure block)")
        for change in result.changes:
            if change.action == "keep":
                report.kept(prefix + change.path)
                continue
            report.change(change.action, prefix + change.path, change.hand_edited)
            if mode is WriteBack.DIFF:
                report.data(unified_diff(change, prefix))
        for directory, job in result.retired:
            report.retired(prefix + directory, job)
        if result.stale or result.legacy_manifest:
            report.change("repair", prefix.rstrip("/") or str(output_dir))
        verb = "" if mode is WriteBack.YES else "would be "
        report.status(
            f"{rendered.workspace_count} workspace(s): {len(result.added)} {verb}added, {len(result.changed)} "
            f"{verb}changed, {len(result.retired)} {verb}retired"
        )
    sys.exit(report.return_code)


@main.command()
@click.option("--config", "config", type=click.Path(), help="dativo-tf.yaml (default: found upwards from here).")
@click.option("--out", "out", type=click.Path(file_okay=False), help="Output folder (default: output_dir).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (for CI).")
@click.pass_obj
def prune(ctx: Context, config: str | None, out: str | None, yes: bool) -> None:
    """Remove retired workspaces' generated files (never state, .terraform/ or your own files).

    Apply a retired workspace first (it destroys what its state holds); a folder that holds local state or
    .terraform/ is left alone."""
    from dativo_ingest.errors import DativoTfError, InputError
    from dativo_ingest.writer import exclusive, plan_prune
    from dativo_ingest.writer import prune as remove

    try:
        project = _project(config, lazy=True)
        output_dir = Path(out).resolve() if out else project.output_dir
        prefix = _prefix(output_dir, project.root)
        if not output_dir.is_dir():
            click.echo("nothing to prune", err=True)
            return
        with exclusive(output_dir):
            items = plan_prune(output_dir, prefix)
            todo = [i for i in items if not i.blocked]
            for item in items:
                where = prefix + item.directory
                if item.blocked:
                    click.echo(f"kept {where}: {item.blocked}; destroy or move its state, then prune again", err=True)
                    continue
                click.echo(f"{'remove' if not yes else 'removing'} {where} (retired; was {item.job})", err=True)
                for name in item.kept:
                    click.echo(f"kept {where}/{name} (edited by hand)", err=True)
            if not todo:
                click.echo("nothing to prune", err=True)
                return
            if not yes:
                if not sys.stdin.isatty():
                    raise InputError("prune needs confirmation: run it on a terminal, or pass --yes", key="prune")
                click.confirm(f"Remove {len(todo)} retired workspace(s)?", abort=True, err=True)
            remove(output_dir, todo)
    except DativoTfError as exc:
        _fail(ctx, exc)
    click.echo(f"{len(todo)} retired workspace(s) pruned", err=True)


def _prefix(output_dir: Path, root: Path) -> str:
    try:
        rel = output_dir.resolve().relative_to(root).as_posix()
        return "" if rel == "." else rel + "/"
    except ValueError:
        return str(output_dir) + "/"


def _load_job(ctx: Context, job_path: str, config: str | None):
    from dativo_ingest.config import JobConfig
    from dativo_ingest.errors import DativoTfError

    try:
        project = _project(config) if config else None
        job = JobConfig.from_yaml(job_path, project_root=project.root if project else None)
        return job, job._resolve_asset()
    except DativoTfError as exc:
        _fail(ctx, exc)


@main.command()
@click.argument("job", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["json", "hcl"]), default="json", show_default=True)
@click.option("--config", type=click.Path(), help="dativo-tf.yaml (default: the job's project).")
@click.pass_obj
def vars(ctx: Context, job: str, fmt: str, config: str | None) -> None:
    """Print the job's Terraform variables (the seed's generate_terraform_output)."""
    from dativo_ingest.errors import DativoTfError
    from dativo_ingest.infrastructure_metadata import generate_terraform_output

    job_config, asset = _load_job(ctx, job, config)
    try:
        click.echo(generate_terraform_output(job_config, asset, format=fmt), nl=False)
    except DativoTfError as exc:
        _fail(ctx, exc)


@main.command()
@click.argument("job", type=click.Path())
@click.option("--explain", is_flag=True, help="Show where each tag came from.")
@click.option("--config", type=click.Path(), help="dativo-tf.yaml (default: the job's project).")
@click.pass_obj
def tags(ctx: Context, job: str, explain: bool, config: str | None) -> None:
    """Print the job's merged tags (JSON), or a table with each tag's source (--explain)."""
    from dativo_ingest import hcl
    from dativo_ingest.errors import DativoTfError
    from dativo_ingest.infrastructure_metadata import extract_infrastructure_tags, project_settings
    from dativo_ingest.tags import aws_clean, gcp_label_key, gcp_labels, merge_tags

    job_config, asset = _load_job(ctx, job, config)
    try:
        final = extract_infrastructure_tags(job_config, asset)
        if not explain:
            click.echo(hcl.dumps_json(final), nl=False)
            return
        settings = project_settings(job_config).for_environment(job_config.environment)
        merged = merge_tags(job_config, asset, settings.tags.defaults)
        gcp = job_config.infrastructure and job_config.infrastructure.cloud_provider == "gcp"
        labels = gcp_labels({k: t.value for k, t in merged.items()}) if gcp else {}
    except DativoTfError as exc:
        _fail(ctx, exc)
    rows = [("TAG", "VALUE", "GCP LABEL" if gcp else "AWS VALUE", "SOURCE")]
    for key, tag in merged.items():
        if gcp:
            label_key = gcp_label_key(key)
            applied = f"{label_key}={labels[label_key]}"
        else:
            applied = final.get(aws_clean(key), "")
        rows.append((key, tag.value, applied, tag.source))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    if job_config.infrastructure is not None:
        _explain_cost(ctx, job_config, asset)


def _explain_cost(ctx: Context, job_config, asset) -> None:
    """The job's cost estimate after the `tags --explain` table: data on stdout, warnings on stderr."""
    from dativo_ingest.cost import estimate
    from dativo_ingest.errors import DativoTfError
    from dativo_ingest.infrastructure_metadata import project_settings

    try:
        result = estimate(job_config, project_settings(job_config), asset)
    except DativoTfError as exc:
        _fail(ctx, exc)
    click.echo(f"\nEstimated cost: {result.summary()}")
    for warning in result.warnings:
        click.echo(f"{result.job}: warning: {warning}", err=True)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--config", type=click.Path(), help="dativo-tf.yaml (default: found upwards from here).")
@click.pass_obj
def validate(ctx: Context, paths: tuple[str, ...], config: str | None) -> None:
    """Check every job and asset and report all errors (exit 2 on any)."""
    from dativo_ingest.errors import DativoTfError
    from dativo_ingest.pipeline import render_all
    from dativo_ingest.report import Report

    report = Report(quiet=ctx.quiet)
    try:
        with report.progress("validating"):
            rendered = render_all(_project(config), paths)
    except DativoTfError as exc:
        _fail(ctx, exc)
    for warning in rendered.warnings:
        report.warning(warning)
    for err in rendered.errors:
        report.error(err)
    report.status(
        f"{len(rendered.job_paths)} job(s) checked: {len(rendered.workspaces)} valid, "
        f"{len(rendered.skipped_jobs)} without infrastructure, {len(report.errors)} error(s)"
    )
    sys.exit(report.return_code)


@main.command()
@click.option("--kind", type=click.Choice(["job", "settings", "asset"]), default="job", show_default=True,
              help="Which file: a job, dativo-tf.yaml or an asset definition.")
def schema(kind: str) -> None:
    """Print the JSON Schema of a job, settings or asset file (for editors' YAML language servers)."""
    from dativo_ingest import hcl
    from dativo_ingest.schemas import document

    click.echo(hcl.dumps_json(document(kind)), nl=False)


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--no-input", is_flag=True, help="Do not prompt; use defaults and --set values.")
@click.option("--set", "values", multiple=True, metavar="KEY=VALUE", help="Answer a template question.")
@click.option("--force", is_flag=True, help="Render into a folder that is not empty.")
@click.pass_obj
def init(ctx: Context, directory: str, no_input: bool, values: tuple[str, ...], force: bool) -> None:
    """Scaffold a new infrastructure repository from the bundled cookiecutter template."""
    from dativo_ingest.errors import DativoTfError
    from dativo_ingest.scaffold import scaffold

    from dativo_ingest.errors import InputError
    from dativo_ingest.scaffold import next_steps

    answers = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            _fail(ctx, InputError(f"{item!r}: expected KEY=VALUE", key="--set"))
        answers[key] = value
    try:
        created = scaffold(Path(directory), answers, no_input=no_input or not sys.stdin.isatty(), force=force)
        steps = next_steps(created)
    except DativoTfError as exc:
        _fail(ctx, exc)
    if not ctx.quiet:
        click.echo(f"created {created}\nnext steps:", err=True)
        for number, step in enumerate(steps, 1):
            click.echo(f"  {number}. {step}", err=True)


# new-job's questions: (option, prompt default); None = required, no default
NEW_JOB_QUESTIONS = {
    "tenant_id": None,
    "environment": "production",
    "cloud": "aws",
    "compute_type": None,  # default: the cloud's first compute type
    "asset_path": "assets/example_asset.yaml",
}


@main.command("new-job")
@click.argument("name")
@click.option("--tenant-id", help="Tenant id (jobs/<tenant>/<name>.yaml). Required.")
@click.option("--environment", help="Environment.  [default: production]")
@click.option("--cloud", type=click.Choice(["aws", "gcp"]), help="Cloud provider.  [default: aws]")
@click.option("--compute-type", help="aws: ecs_task, lambda, ec2_instance; gcp: cloud_run, gce_instance, gke_pod  "
                                     "[default: ecs_task on aws, cloud_run on gcp]")
@click.option("--asset-path", help="The job's asset definition.  [default: assets/example_asset.yaml]")
@click.option("--source", default="csv", show_default=True, help="Source connector name.")
@click.option("--target", default="iceberg", show_default=True, help="Target connector name.")
@click.option("--no-input", is_flag=True, help="Never prompt: defaults for what is not given (also without a terminal).")
@click.pass_obj
def new_job_command(ctx: Context, name: str, no_input: bool, **given: str | None) -> None:
    """Add one job file to this repo, every infrastructure field present, validated before it is written.
    Prompts on a terminal for what is not given; with --no-input or without a terminal, uses the defaults."""
    from dativo_ingest.compute import COMPUTE_TYPES
    from dativo_ingest.errors import DativoTfError, InputError
    from dativo_ingest.scaffold import new_job

    interactive = not no_input and sys.stdin.isatty()
    answers = dict(given)
    for key, default in NEW_JOB_QUESTIONS.items():
        if answers.get(key) is not None:
            continue
        if key == "compute_type":
            default = COMPUTE_TYPES[answers["cloud"]][0]
        if interactive:
            kind = click.Choice(["aws", "gcp"]) if key == "cloud" else None
            answers[key] = click.prompt(key.replace("_", " ").capitalize(), default=default, type=kind)
        else:
            answers[key] = default
    missing = [f"--{key.replace('_', '-')}" for key, value in answers.items() if value is None]
    if missing:
        _fail(ctx, InputError(f"required without a default: {', '.join(missing)}", key="new-job"))
    try:
        path = new_job(Path.cwd(), name, answers)
    except DativoTfError as exc:
        _fail(ctx, exc)
    if not ctx.quiet:
        click.echo(f"created {path}", err=True)


@main.command()
@click.option("--base", default="HEAD", show_default=True, help="Git ref holding the generated tree to compare with.")
@click.option("--config", "config", type=click.Path(), help="dativo-tf.yaml (default: found upwards from here).")
@click.option("--out", "out", type=click.Path(file_okay=False), help="Output folder (default: output_dir).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown", "github-matrix"]), default="text",
              show_default=True)
@click.option("--chunk", type=click.IntRange(min=0), help="github-matrix: print only this chunk (256 entries each).")
@click.pass_obj
def changes(ctx: Context, base: str, config: str | None, out: str | None, fmt: str, chunk: int | None) -> None:
    """What the current inputs change against the generated tree at a git ref, per workspace.

    For pull requests: `--format markdown` is one comment (with a marker line for a sticky comment),
    `--format github-matrix` lists the workspaces a plan job must run (one JSON line per 256)."""
    from dativo_ingest import changes as report_changes
    from dativo_ingest.errors import DativoTfError

    try:
        project = _project(config)
        output_dir = Path(out).resolve() if out else project.output_dir
        project.out = output_dir
        report = report_changes.build(project, base, output_dir)
    except DativoTfError as exc:
        _fail(ctx, exc)
    render = {"text": report_changes.render_text, "json": report_changes.render_json,
              "markdown": report_changes.render_markdown}.get(fmt)
    click.echo(render(report) if render else report_changes.render_matrix(report, chunk), nl=False)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--config", type=click.Path(), help="dativo-tf.yaml (default: found upwards from here).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table", show_default=True)
@click.option("--by", type=click.Choice(["cost_center", "project", "tenant", "environment", "job"]),
              default="cost_center", show_default=True, help="Roll the estimates up by this tag, or per job.")
@click.option("--check", is_flag=True, help="Exit 1 when a cost center's estimate exceeds its budget (budgets:).")
@click.pass_obj
def cost(ctx: Context, paths: tuple[str, ...], config: str | None, fmt: str, by: str, check: bool) -> None:
    """Estimate each job's monthly cost from shipped list prices (offline), rolled up by cost center."""
    from dativo_ingest.config import JobConfig
    from dativo_ingest.cost import budgets as project_budgets
    from dativo_ingest.cost import estimate, price_table, roll_up
    from dativo_ingest.costreport import render
    from dativo_ingest.discovery import find_jobs
    from dativo_ingest.errors import DativoTfError, InputErrors
    from dativo_ingest.report import Report

    report = Report(quiet=ctx.quiet)
    estimates, skipped = [], 0
    try:
        project = _project(config)
        budgets = project_budgets(project)
        job_paths = find_jobs(project, paths)
    except DativoTfError as exc:
        _fail(ctx, exc)
    tables: dict = {}
    for path in job_paths:
        try:
            job = JobConfig.from_yaml(path, project_root=project.root)
            if job.infrastructure is None:
                skipped += 1
                continue
            if job.environment not in tables:
                tables[job.environment] = price_table(project, job.environment)
            estimates.append(estimate(job, project, prices=tables[job.environment]))
        except InputErrors as exc:
            for err in exc.errors:
                report.error(err)
        except DativoTfError as exc:
            if exc.path is None:
                exc.path = str(path)
            report.error(exc)
    if report.errors:
        report.status(f"{len(report.errors)} error(s); no estimate")
        sys.exit(report.return_code)
    for e in estimates:
        for warning in e.warnings:
            report.warning(DativoTfError(warning, path=e.job))
    groups = roll_up(estimates, by, budgets)
    click.echo(render(groups, estimates, by, fmt), nl=False)
    over = [g for g in groups if g.over_budget]
    for group in over:
        click.echo(f"over budget: CostCenter {group.key}: {group.monthly_usd:,.2f} USD/month estimated, "
                   f"budget {group.budget_usd:,.2f}", err=True)
    report.status(f"{len(estimates)} job(s) estimated, {skipped} without infrastructure, "
                  f"{sum(g.unknown for g in groups)} with an unknown cost")
    sys.exit(1 if check and over else 0)
