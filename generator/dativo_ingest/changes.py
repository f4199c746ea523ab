"""The change report: what the current inputs change against the generated tree at a git ref.

The base side is read from git (`git ls-tree` + `git cat-file --batch`, no checkout); the current side is
rendered in memory from the working tree's inputs. Per workspace: status, why, resource addresses, tag and
label changes key by key (tag-only changes apart from functional ones), compute changes, and the Terraform
action it needs. Formats: text, json (versioned; schema in templates/schemas/changes-v1.schema.json),
markdown (one pull-request comment) and github-matrix (for a plan job).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dativo_ingest.errors import InputError
from dativo_ingest.records import GENERATED_NAMES, LEGACY_MANIFEST, RECORD, Record, parse_record, valid_directory

SCHEMA_VERSION = 1
MARKER = "<!-- dativo-tf:changes -->"
MARKDOWN_LIMIT = 65_000
MATRIX_CHUNK = 256
STATUSES = ("retired", "renamed", "added", "modified", "unchanged")
TAG_VARIABLES = ("tags", "labels", "kubernetes_labels")
COMPUTE_ATTRIBUTES = ("image", "image_uri", "schedule", "schedule_expression", "schedule_expression_timezone",
                      "time_zone", "timezone", "instance_type", "machine_type")
_BLOCK = re.compile(r'^(resource|data|module) "([^"]+)"(?: "([^"]+)")? \{$')
_ATTR = re.compile(r"^\s*([a-z_]+)\s*=\s*(.+?)\s*$")


@dataclass
class Diff:
    key: str
    old: Any = None
    new: Any = None


@dataclass
class WorkspaceChange:
    workspace: str  # relative to the repository root
    job: str
    tenant: str
    environment: str
    cloud: str
    status: str
    action: str  # apply | destroy | move-state | none
    reasons: list[str] = field(default_factory=list)
    renamed_from: str | None = None
    tags_only: bool = False
    resources: dict[str, list[str]] = field(default_factory=lambda: {"added": [], "removed": [], "changed": []})
    tags: list[Diff] = field(default_factory=list)
    labels: list[Diff] = field(default_factory=list)
    compute: list[Diff] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    cost: Cost | None = None


@dataclass
class Cost:
    """Estimated monthly cost (USD) before and after, and the cost center each side is billed to.
    None: not estimated (no job on that side is 0; unknown price or invalid input is None)."""

    before_usd: float | None = None
    after_usd: float | None = None
    cost_center_before: str | None = None
    cost_center_after: str | None = None
    upper_bound: bool = False
    unknown: bool = False  # a side could not be estimated

    @property
    def delta_usd(self) -> float | None:
        if self.unknown:
            return None
        return (self.after_usd or 0.0) - (self.before_usd or 0.0)

    @property
    def moved(self) -> bool:
        """Billed to another cost center, same amount: a move, not a change."""
        return (not self.unknown and self.cost_center_before != self.cost_center_after
                and self.before_usd is not None and self.after_usd is not None
                and abs((self.after_usd or 0) - (self.before_usd or 0)) < 0.005)


@dataclass
class ChangeReport:
    base: str
    base_commit: str
    workspaces: list[WorkspaceChange]

    @property
    def summary(self) -> dict[str, int]:
        return {s: sum(1 for w in self.workspaces if w.status == s) for s in STATUSES}

    def cost_deltas(self) -> tuple[float, dict[str, float], int]:
        """(total monthly delta, delta per cost center, workspaces whose cost is unknown)."""
        total, per_center, unknown = 0.0, {}, 0
        for w in self.workspaces:
            c = w.cost
            if c is None or w.status == "unchanged":
                continue
            if c.unknown:
                unknown += 1
                continue
            total += c.delta_usd or 0.0
            if c.before_usd:
                key = c.cost_center_before or "(none)"
                per_center[key] = per_center.get(key, 0.0) - c.before_usd
            if c.after_usd:
                key = c.cost_center_after or "(none)"
                per_center[key] = per_center.get(key, 0.0) + c.after_usd
        return total, {k: v for k, v in sorted(per_center.items()) if abs(v) >= 0.005}, unknown

    def as_json(self) -> dict:
        total, per_center, unknown = self.cost_deltas()
        return {"version": SCHEMA_VERSION, "base": self.base, "base_commit": self.base_commit,
                "summary": self.summary,
                "cost": {"monthly_delta_usd": round(total, 2), "unknown": unknown,
                         "by_cost_center": {k: round(v, 2) for k, v in per_center.items()}},
                "workspaces": [_workspace_json(w) for w in self.workspaces]}


def _workspace_json(w: WorkspaceChange) -> dict:
    data = asdict(w)
    if w.cost is not None:
        data["cost"]["delta_usd"] = None if w.cost.delta_usd is None else round(w.cost.delta_usd, 2)
        data["cost"]["moved"] = w.cost.moved
        for key in ("before_usd", "after_usd"):
            if data["cost"][key] is not None:
                data["cost"][key] = round(data["cost"][key], 2)
    return data


# --- git ----------------------------------------------------------------------------------------------


class _Git:
    def __init__(self, cwd: Path):
        self.cwd = cwd
        top = self.run("rev-parse", "--show-toplevel", what="find the git repository")
        self.top = Path(top.decode().strip()).resolve()

    def run(self, *args: str, what: str, stdin: bytes | None = None) -> bytes:
        try:
            proc = subprocess.run(["git", *args], cwd=self.cwd, input=stdin, capture_output=True)
        except FileNotFoundError:
            raise InputError("git is not installed; `changes` reads the base tree from git", key="changes") from None
        if proc.returncode != 0:
            message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise InputError(f"cannot {what}: {message[-1] if message else 'git failed'}", key="changes")
        return proc.stdout

    def commit(self, ref: str) -> str:
        proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=self.cwd,
                              capture_output=True)
        if proc.returncode != 0:
            branch = ref.split("/", 1)[1] if ref.startswith("origin/") else ref
            raise InputError(
                f"the base ref {ref!r} is not in this clone (a shallow clone?); fetch it first, e.g. "
                f"`git fetch --no-tags --depth=1 origin {branch}`", key="--base",
            )
        return proc.stdout.decode().strip()

    def tree(self, commit: str, folder: str) -> dict[str, str]:
        """{path relative to the repository root: blob sha} of the files under `folder` at `commit`."""
        out = self.run("ls-tree", "-r", "-z", "--full-tree", commit, "--", folder or ".", what="list the base tree")
        files = {}
        for entry in out.split(b"\0"):
            if entry:
                meta, _, path = entry.partition(b"\t")
                mode, kind, sha = meta.decode().split()
                if kind == "blob" and mode != "120000":  # symlinks in the base tree are never read
                    files[path.decode("utf-8", "surrogateescape")] = sha
        return files

    def blobs(self, specs: list[str]) -> dict[str, bytes | None]:
        """Contents by `<sha>` or `<commit>:<path>`, one `git cat-file --batch` for all; None when missing."""
        if not specs:
            return {}
        out = self.run("cat-file", "--batch", what="read the base tree", stdin="".join(f"{s}\n" for s in specs).encode())
        result: dict[str, bytes | None] = {}
        pos = 0
        for spec in specs:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode("utf-8", "replace").split()
            pos = end + 1
            if len(header) == 3 and header[1] == "blob":
                size = int(header[2])
                result[spec] = out[pos:pos + size]
                pos += size + 1
            else:
                if len(header) == 3:  # a tree or another object: skip its content
                    pos += int(header[2]) + 1
                result[spec] = None
        return result


# --- reading generated files --------------------------------------------------------------------------


def blocks(text: str) -> dict[str, str]:
    """Top-level resource, data and module blocks of a generated file: {address: block text}."""
    out: dict[str, str] = {}
    current, lines = None, []
    for line in text.splitlines():
        if current is None:
            match = _BLOCK.match(line)
            if match:
                kind, a, b = match.groups()
                current = f"module.{a}" if kind == "module" else (f"data.{a}.{b}" if kind == "data" else f"{a}.{b}")
                lines = [line]
        else:
            lines.append(line)
            if line == "}":
                out[current] = "\n".join(lines)
                current = None
    return out


_TOKEN = re.compile(r'\s+|#[^\n]*|//[^\n]*|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|[A-Za-z_][A-Za-z0-9_-]*|[{}\[\]=,:]')


def read_values(text: str) -> dict[str, Any]:
    """The `name = value` attributes of a tfvars file dativo-tf wrote (HCL literals only)."""
    tokens = [t for t in _TOKEN.findall(text) if t.strip() and not t.startswith(("#", "//"))]
    pos = 0

    def value() -> Any:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "{":
            obj = {}
            while tokens[pos] != "}":
                key = tokens[pos]
                key = _unquote(key) if key.startswith('"') else key
                pos += 2  # key and `=` (or `:`)
                obj[key] = value()
                if tokens[pos] == ",":
                    pos += 1
            pos += 1
            return obj
        if tok == "[":
            items = []
            while tokens[pos] != "]":
                items.append(value())
                if tokens[pos] == ",":
                    pos += 1
            pos += 1
            return items
        if tok.startswith('"'):
            return _unquote(tok)
        if tok in ("true", "false"):
            return tok == "true"
        if tok == "null":
            return None
        return float(tok) if any(c in tok for c in ".eE") else int(tok)

    out = {}
    try:
        while pos < len(tokens):
            name = tokens[pos]
            pos += 2
            out[name] = value()
    except (IndexError, ValueError):
        return out
    return out


def _unquote(token: str) -> str:
    body = json.loads(token) if "\\u" in token or "\\" in token else token[1:-1]
    return body.replace("$${", "${").replace("%%{", "%{")


def _tfvars(files: dict[str, bytes]) -> dict[str, Any]:
    if "terraform.tfvars.json" in files:
        try:
            return json.loads(files["terraform.tfvars.json"])
        except ValueError:
            return {}
    raw = files.get("terraform.tfvars")
    return read_values(raw.decode("utf-8", "replace")) if raw else {}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): value}


def _diff(old: dict, new: dict) -> list[Diff]:
    return [Diff(k, old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _compute_values(files: dict[str, bytes]) -> dict[str, Any]:
    values = {f"runtime_environment.{k}": v for k, v in _flatten(_tfvars(files).get("runtime_environment") or {}).items()}
    for line in (files.get("main.tf") or b"").decode("utf-8", "replace").splitlines():
        match = _ATTR.match(line)
        if match and match.group(1) in COMPUTE_ATTRIBUTES and match.group(1) not in values:
            values[match.group(1)] = match.group(2)
    return values


# --- the report ---------------------------------------------------------------------------------------


def build(project, base: str, output_dir: Path) -> ChangeReport:
    """Compare the generated tree at `base` with what the current inputs render."""
    from dativo_ingest.errors import InputErrors
    from dativo_ingest.pipeline import render_all
    from dativo_ingest.writer import retired_main

    git = _Git(project.root)
    commit = git.commit(base)
    out_rel = _relative_to(output_dir, git.top)
    root_rel = _relative_to(project.root, git.top)
    shown = (out_rel + "/") if out_rel else ""

    tree = git.tree(commit, out_rel)
    contents = git.blobs(sorted(set(tree.values())))
    base_files: dict[str, dict[str, bytes]] = {}
    base_records: dict[str, Record] = {}
    for path, sha in tree.items():
        inner = path[len(shown):] if path.startswith(shown) else path
        directory, _, name = inner.rpartition("/")
        if not valid_directory(directory) or name not in GENERATED_NAMES | {RECORD} or contents.get(sha) is None:
            continue
        if name == RECORD:
            base_records[directory] = parse_record(contents[sha], f"{base}:{path}")
        else:
            base_files.setdefault(directory, {})[name] = contents[sha]
    legacy = tree.get(shown + LEGACY_MANIFEST)
    if legacy and contents.get(legacy):
        for directory, entry in (json.loads(contents[legacy]).get("workspaces") or {}).items():
            if valid_directory(directory) and directory not in base_records and isinstance(entry, dict):
                base_records[directory] = Record(str(entry.get("job", "")), None, "active", {})

    rendered = render_all(project)
    if rendered.errors:
        raise InputErrors(rendered.errors)
    current = {ws.directory: ws for ws in rendered.workspaces}

    # the inputs at the base ref, by path relative to the repository root
    input_paths = sorted({_relative_to(Path(p), git.top) for ws in rendered.workspaces for p in ws.inputs}
                         | {_join(root_rel, r.job) for r in base_records.values() if r.job})
    base_inputs = git.blobs([f"{commit}:{p}" for p in input_paths])

    def at_base(path: str) -> bytes | None:
        return base_inputs.get(f"{commit}:{path}")

    changes: list[WorkspaceChange] = []
    for directory, ws in sorted(current.items()):
        old_files = base_files.get(directory, {})
        new_files = dict(ws.files)
        tenant, environment, _ = directory.split("/")
        tfvars = _tfvars(new_files)
        change = WorkspaceChange(shown + directory, ws.job, tenant, environment, str(tfvars.get("cloud_provider", "")),
                                 "unchanged", "none")
        old_record = base_records.get(directory)
        if not old_files or (old_record and old_record.status == "retired"):
            change.status, change.action = "added", "apply"
            change.reasons = ["new job"] if not old_files else ["job restored"]
        elif {n: b for n, b in old_files.items()} != new_files:
            change.status, change.action = "modified", "apply"
            for path in map(Path, ws.inputs):
                rel = _relative_to(path, git.top)
                if path.is_file() and path.read_bytes() != at_base(rel):
                    reason = _input_reason(rel, project, ws.job, git.top)
                    if ws.env and reason.startswith("asset"):  # never show a path expanded from ${VAR}
                        reason = "asset (its path uses an environment variable) changed"
                    change.reasons.append(reason)
            if not change.reasons:
                change.reasons = ["generator (templates or dativo-tf version)"]
        _describe(change, old_files, new_files)
        changes.append(change)

    retired = []
    for directory, record in sorted(base_records.items()):
        if directory in current or record.status == "retired":
            continue
        old_files = base_files.get(directory, {})
        tenant, environment, _ = directory.split("/")
        tfvars = _tfvars(old_files)
        change = WorkspaceChange(shown + directory, record.job, tenant, environment,
                                 str(tfvars.get("cloud_provider", "")), "retired", "destroy")
        job_path = project.root / record.job
        if not job_path.is_file():
            change.reasons = ["job file deleted"]
        elif any(_same(p, job_path) for p in rendered.skipped):
            change.reasons = ["infrastructure block removed"]
        else:
            moved = next((w.directory for w in rendered.workspaces if w.job == record.job), None)
            change.reasons = [f"job now renders to {shown}{moved}" if moved else "job no longer selected by the `jobs` globs"]
        _describe(change, old_files, {"main.tf": retired_main(record.job)})
        retired.append((change, record))
        changes.append(change)

    _find_renames(retired, changes, at_base, root_rel, project.root, base_files, current, shown)
    _add_costs(changes, project, git, commit, root_rel, out_rel, base_records)
    order = {s: i for i, s in enumerate(STATUSES)}
    changes.sort(key=lambda c: (order[c.status], c.workspace))
    return ChangeReport(base, commit, changes)


def _add_costs(changes: list[WorkspaceChange], project, git: _Git, commit: str, root_rel: str, out_rel: str,
               base_records: dict[str, Record]) -> None:
    """Monthly estimates now (working tree) and at the base ref (its project files, extracted from git)."""
    import tempfile

    todo = [c for c in changes if c.status != "unchanged"]
    if not todo:
        return
    from dativo_ingest.config import JobConfig
    from dativo_ingest.cost import estimate
    from dativo_ingest.project import ProjectSettings

    def estimated(job_path: Path, proj) -> tuple[float | None, str | None, bool, bool]:
        try:
            e = estimate(JobConfig.from_yaml(job_path, project_root=proj.root), proj)
            return e.monthly_usd, e.cost_center, e.upper_bound, e.monthly_usd is None
        except Exception:  # noqa: BLE001 - an estimate is advice: a side that cannot be estimated is unknown
            return None, None, False, True

    with tempfile.TemporaryDirectory(prefix="dativo-tf-base-") as tmp:
        spec = [f"{root_rel}/" if root_rel else "."] + ([f":(exclude){out_rel}"] if out_rel else [])
        archive = git.run("archive", "--format=tar", commit, "--", *spec, what="read the base inputs")
        import io
        import tarfile

        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        base_root = Path(tmp) / root_rel if root_rel else Path(tmp)
        settings = base_root / (project.path.name if project.path else "dativo-tf.yaml")
        try:
            base_project = ProjectSettings.load(settings if settings.is_file() else None, start=base_root)
            base_project.root = base_root.resolve()
        except Exception:  # noqa: BLE001
            base_project = None
        for c in todo:
            cost = Cost()
            if c.status != "retired":
                cost.after_usd, cost.cost_center_after, bound, unknown = estimated(project.root / c.job, project)
                cost.upper_bound |= bound
                cost.unknown |= unknown
            old_job = c.job if c.status != "renamed" else _old_job(c, base_records)
            if c.status != "added" and old_job:
                if base_project is None or not (base_root / old_job).is_file():
                    cost.unknown = True
                else:
                    cost.before_usd, cost.cost_center_before, bound, unknown = estimated(base_root / old_job, base_project)
                    cost.upper_bound |= bound
                    cost.unknown |= unknown
            c.cost = cost


def _old_job(change: WorkspaceChange, base_records: dict[str, Record]) -> str | None:
    for directory, record in base_records.items():
        if change.renamed_from and change.renamed_from.endswith("/" + directory):
            return record.job
    return None


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _join(root_rel: str, path: str) -> str:
    return f"{root_rel}/{path}" if root_rel else path


def _relative_to(path: Path, top: Path) -> str:
    try:
        rel = path.resolve().relative_to(top).as_posix()
    except ValueError:
        raise InputError(f"{path} is outside the git repository {top}", key="changes") from None
    return "" if rel == "." else rel


def _input_reason(rel: str, project, job: str, top: Path) -> str:
    if project.path and rel == _relative_to(project.path, top):
        return f"settings {rel} changed"
    if rel.endswith(job):
        return f"job file {rel} changed"
    return f"asset {rel} changed"


def _describe(change: WorkspaceChange, old_files: dict[str, bytes], new_files: dict[str, bytes]) -> None:
    """Resources, tags, labels, compute and files that differ."""
    change.files = sorted(n for n in set(old_files) | set(new_files) if old_files.get(n) != new_files.get(n))
    old_blocks = blocks((old_files.get("main.tf") or b"").decode("utf-8", "replace"))
    new_blocks = blocks((new_files.get("main.tf") or b"").decode("utf-8", "replace"))
    change.resources = {
        "added": sorted(set(new_blocks) - set(old_blocks)),
        "removed": sorted(set(old_blocks) - set(new_blocks)),
        "changed": sorted(a for a in set(old_blocks) & set(new_blocks) if old_blocks[a] != new_blocks[a]),
    }
    old_vars, new_vars = _tfvars(old_files), _tfvars(new_files)
    if change.status not in ("modified", "renamed"):  # added or retired: every tag is new or gone
        return
    change.tags = _diff(old_vars.get("tags") or {}, new_vars.get("tags") or {})
    change.labels = _diff(old_vars.get("labels") or {}, new_vars.get("labels") or {})
    change.compute = _diff(_compute_values(old_files), _compute_values(new_files))
    if change.status == "modified":
        others_old = {k: v for k, v in old_vars.items() if k not in TAG_VARIABLES}
        others_new = {k: v for k, v in new_vars.items() if k not in TAG_VARIABLES}
        tfvars_names = {"terraform.tfvars", "terraform.tfvars.json"}
        change.tags_only = (set(change.files) <= tfvars_names and others_old == others_new
                            and bool(change.tags or change.labels))


def _find_renames(retired, changes, at_base, root_rel, project_root, base_files, current, shown) -> None:
    """A retired workspace whose job, at the base ref, has the same content as an added job (ignoring
    tenant_id and environment) was renamed: report it once, with the commands that move its state."""
    added = {c.job: c for c in changes if c.status == "added"}
    for change, record in retired:
        old = _job_content(at_base(_join(root_rel, record.job)))
        if old is None:
            continue
        for job, new_change in sorted(added.items()):
            path = project_root / job
            if new_change.status == "added" and path.is_file() and _job_content(path.read_bytes()) == old:
                new_change.status, new_change.action = "renamed", "move-state"
                new_change.renamed_from = change.workspace
                new_change.reasons = [f"renamed from {change.workspace} ({record.job})"]
                new_change.commands = _state_move(change.workspace, new_change.workspace)
                old_dir = change.workspace[len(shown):]
                _describe(new_change, base_files.get(old_dir, {}), dict(current[new_change.workspace[len(shown):]].files))
                changes.remove(change)
                break


def _job_content(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError:
        return None
    if not isinstance(data, dict):
        return None
    return {k: v for k, v in data.items() if k not in ("tenant_id", "environment")}


def _state_move(old: str, new: str) -> list[str]:
    state = f"/tmp/dativo-tf-{new.rsplit('/', 1)[-1]}.tfstate"
    o, n, s = shlex.quote(old), shlex.quote(new), shlex.quote(state)
    return [
        f"terraform -chdir={o} init -input=false && terraform -chdir={o} state pull > {s}",
        f"terraform -chdir={n} init -input=false && terraform -chdir={n} state push {s}",
        f"terraform -chdir={o} state list | xargs -r -d '\\n' terraform -chdir={o} state rm",
        "dativo-tf prune --yes",
    ]


# --- formats ------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


def render_text(report: ChangeReport) -> str:
    lines = []
    for c in report.workspaces:
        if c.status == "unchanged":
            continue
        head = f"{c.status:<9} {c.workspace}  action: {c.action}"
        if c.tags_only:
            head += "  (tags only)"
        lines.append(head)
        for reason in c.reasons:
            lines.append(f"  why: {reason}")
        for kind, sign in (("added", "+"), ("removed", "-"), ("changed", "~")):
            lines += [f"  {sign} {address}" for address in c.resources[kind]]
        for title, diffs in (("compute", c.compute), ("tag", c.tags), ("label", c.labels)):
            lines += [f"  {title} {d.key}: {_fmt(d.old)} -> {_fmt(d.new)}" for d in diffs]
        lines += [f"  $ {cmd}" for cmd in c.commands]
        if c.cost is not None:
            lines.append(f"  cost: {_cost_line(c.cost)}")
    s = report.summary
    lines.append(", ".join(f"{s[k]} {k}" for k in STATUSES) + f" (against {report.base})")
    lines.append(f"cost: {_total_line(report)}")
    return "\n".join(lines) + "\n"


def _usd(value: float | None, signed: bool = False) -> str:
    from dativo_ingest.cost import format_usd

    if value is None or not signed:
        return format_usd(value)
    return ("+" if value >= 0 else "-") + format_usd(abs(value))


def _cost_line(cost: Cost) -> str:
    bound = "at most " if cost.upper_bound else ""
    if cost.unknown:
        return f"{_usd(cost.before_usd)} -> {_usd(cost.after_usd)}/month (partly unknown)"
    if cost.moved:
        return (f"{bound}{_usd(cost.after_usd)}/month moves from CostCenter {cost.cost_center_before} to "
                f"{cost.cost_center_after}")
    return f"{bound}{_usd(cost.before_usd or 0.0)} -> {_usd(cost.after_usd or 0.0)}/month ({_usd(cost.delta_usd, True)})"


def _total_line(report: ChangeReport) -> str:
    """`+$41.20/month, CostCenter FIN-001 +$38.00, WEB-100 +$3.20`."""
    total, per_center, unknown = report.cost_deltas()
    text = f"{_usd(total, True)}/month"
    if per_center:
        text += ", CostCenter " + ", ".join(f"{k} {_usd(v, True)}" for k, v in per_center.items())
    if unknown:
        text += f" (+ {unknown} workspace(s) of unknown cost)"
    return text


def render_json(report: ChangeReport) -> str:
    return json.dumps(report.as_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_matrix(report: ChangeReport, chunk: int | None = None) -> str:
    entries = [{"workspace": c.workspace, "tenant": c.tenant, "environment": c.environment, "cloud": c.cloud,
                "action": c.action} for c in report.workspaces if c.action != "none"]
    chunks = [entries[i:i + MATRIX_CHUNK] for i in range(0, len(entries), MATRIX_CHUNK)] or [[]]
    if chunk is not None:
        chunks = [chunks[chunk] if chunk < len(chunks) else []]
    return "".join(json.dumps({"include": c}, separators=(",", ":"), sort_keys=True) + "\n" for c in chunks)


def _md(text: Any) -> str:
    """Inline code, safe in a table cell or a summary."""
    value = _fmt(text).replace("`", "'").replace("|", "\\|").replace("\n", " ")
    return f"`{value}`"


def _section(c: WorkspaceChange, detail: bool) -> str:
    title = f"<code>{c.workspace}</code>: {c.status}, {c.action}" + (" (tags only)" if c.tags_only else "")
    if not detail:
        return f"- {title}\n"
    body = [f"<details><summary>{title}</summary>", ""]
    body += [f"- why: {r.replace('`', '')}" for r in c.reasons]
    for kind, sign in (("added", "+"), ("removed", "-"), ("changed", "~")):
        body += [f"- `{sign} {a}`" for a in c.resources[kind]]
    for title_, diffs in (("compute", c.compute), ("tag", c.tags), ("label", c.labels)):
        if diffs:
            body += ["", f"| {title_} | old | new |", "|---|---|---|"]
            body += [f"| {_md(d.key)} | {_md(d.old)} | {_md(d.new)} |" for d in diffs]
    if c.cost is not None:
        body += [f"- cost: {_cost_line(c.cost)}"]
    if c.commands:
        body += ["", "Move the state instead of recreating:", "", "```sh", *c.commands, "```"]
    body += ["", "</details>", ""]
    return "\n".join(body) + "\n"


def render_markdown(report: ChangeReport, limit: int = MARKDOWN_LIMIT) -> str:
    s = report.summary
    changed = [c for c in report.workspaces if c.status != "unchanged"]
    head = [MARKER, f"### dativo-tf: {len(changed)} workspace(s) change against `{report.base}`", "",
            f"**Estimated cost:** {_total_line(report)}", ""]
    destroys = [c for c in changed if c.action == "destroy"]
    if destroys:
        head.append(f"> [!WARNING]\n> **{len(destroys)} workspace(s) retired: applying them destroys their resources.**")
        head += [f"> - `{c.workspace}` ({'; '.join(c.reasons)})" for c in destroys[:20]]
        if len(destroys) > 20:
            head.append(f"> - ... and {len(destroys) - 20} more")
        head.append("")
    head += ["| status | workspaces |", "|---|---|"] + [f"| {k} | {s[k]} |" for k in STATUSES]
    functional = [c for c in changed if not c.tags_only]
    tag_only = [c for c in changed if c.tags_only]
    full_hint = f"Full report: `dativo-tf changes --base {report.base} --format json` (or the CI job's artifact)."
    for level in ("full", "tags-collapsed", "lines", "truncated"):
        parts = ["\n".join(head), ""]
        if functional:
            parts.append("#### Functional changes\n")
            parts += [_section(c, level in ("full", "tags-collapsed")) for c in functional]
        if tag_only:
            parts.append("#### Tag-only changes\n")
            parts += [_section(c, level == "full") for c in tag_only]
        text = "\n".join(parts)
        if level != "full":
            text += f"\n_{full_hint}_\n"
        if len(text) <= limit:
            return text
    # still too long: as many one-line entries as fit
    lines, budget = ["\n".join(head), "", "#### Changes\n"], limit - 400 - len("\n".join(head))
    for i, c in enumerate(changed):
        entry = _section(c, False)
        if budget - len(entry) - 1 < 0:  # + 1: the newline that joins it
            lines.append(f"- ... and {len(changed) - i} more workspace(s)\n")
            break
        budget -= len(entry) + 1
        lines.append(entry)
    return "\n".join(lines) + f"\n_{full_hint}_\n"
