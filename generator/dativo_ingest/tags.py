"""Tag propagation: the seed's five-level precedence, with provenance, and each cloud's tag rules.

Precedence, highest first:
  1. infrastructure.tags                      (job)
  2. FinOps: job `finops` over asset `finops`  -> CostCenter, Project, Environment, BusinessTags
  3. compliance (asset `compliance`)           -> Compliance, DataClassification, Regulation, RetentionDays
  4. governance: `governance_overrides` over asset `team` / `governance`, and `domain` / `dataProduct`
                                               -> Owner, Domain, DataProduct
  5. job level: tenant_id, environment, asset name, ManagedBy = "Terraform"
                                               -> TenantId, Environment, JobName, ManagedBy
  6. `tags.defaults` from dativo-tf.yaml (lowest)

Fixing rules (documented in the README):
  AWS   keys and values keep letters, digits, spaces and `+ - = . _ : / @`; every run of other characters
        becomes `_` (so `GDPR,CCPA` -> `GDPR_CCPA`). Keys over 128 or values over 256 characters, keys starting
        with `aws:`, empty keys and more than 50 tags are errors.
  GCP   keys: CamelCase split into snake_case (`CostCenter` -> `cost_center`), lowercased, every run of
        characters outside `[a-z0-9_-]` becomes `_`, cut to 63; must start with a letter, else an error.
        values: lowercased, same replacement, `_` trimmed from both ends, cut to 63 (`a@b.com` -> `a_b_com`). More than 64 labels and
        two keys normalising to the same label are errors.
  k8s   keys as GCP keys, then trimmed to start and end with a letter or digit; values: every run of
        characters outside `[A-Za-z0-9_.-]` becomes `_`, cut to 63, trimmed to start and end with a letter
        or digit.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from dativo_ingest.config import AssetDefinition, JobConfig
from dativo_ingest.errors import InputError

MANAGED_BY = "Terraform"

# Classifications that are sensitivity levels, least to most sensitive. Anything else (PII, PHI, PCI, ...)
# is a compliance category.
SENSITIVITY_LEVELS = ["PUBLIC", "INTERNAL", "CONFIDENTIAL", "SENSITIVE", "RESTRICTED"]


@dataclass(frozen=True)
class Tag:
    key: str
    value: str
    source: str  # where the value came from, e.g. "asset compliance.classification (assets/employee.yaml)"


def _join(values: list[str]) -> str:
    return ",".join(dict.fromkeys(v for v in values if v))


def _compliance_tags(classification: list[str]) -> dict[str, str]:
    upper = [c.upper() for c in classification]
    levels = [c for c in upper if c in SENSITIVITY_LEVELS]
    categories = [c for c, u in zip(classification, upper) if u not in SENSITIVITY_LEVELS]
    out = {}
    if classification:
        out["Compliance"] = _join(categories) or _join(classification)
        out["DataClassification"] = max(levels, key=SENSITIVITY_LEVELS.index) if levels else _join(classification)
    return out


def _finops_tags(owner: str, block, where: str) -> list[Tag]:
    tags: list[Tag] = []
    if block is None:
        return tags
    for field, key in (("cost_center", "CostCenter"), ("project", "Project"), ("environment", "Environment")):
        value = getattr(block, field)
        if value:
            tags.append(Tag(key, value, f"{owner} finops.{field} ({where})"))
    if block.business_tags:
        tags.append(Tag("BusinessTags", _join(block.business_tags), f"{owner} finops.business_tags ({where})"))
    return tags


# Tags that come from an asset, per (asset, project root): many jobs share one asset file, and the asset
# model is loaded once per process (config.load_asset), so its tags are built once too.
_ASSET_TAGS: dict[tuple[int, Path], tuple[AssetDefinition, tuple[str, tuple[Tag, ...], tuple[Tag, ...], list[Tag]]]] = {}


def _from_asset(asset: AssetDefinition | None, root: Path) -> tuple[str, tuple[Tag, ...], tuple[Tag, ...], list[Tag]]:
    """(the asset file as tags name it, its governance tags, its compliance tags, its finops tags)."""
    if asset is None:
        return "", (), (), []
    known = _ASSET_TAGS.get((id(asset), root))
    if known is not None and known[0] is asset:
        return known[1]
    asset_file = asset.path.as_posix()
    try:
        asset_file = asset.path.resolve().relative_to(root).as_posix()
    except ValueError:
        pass
    governance: list[Tag] = []
    if asset.domain:
        governance.append(Tag("Domain", asset.domain, f"asset domain ({asset_file})"))
    if asset.dataProduct:
        governance.append(Tag("DataProduct", asset.dataProduct, f"asset dataProduct ({asset_file})"))
    old_governance = getattr(asset, "governance", None)
    if isinstance(old_governance, dict) and old_governance.get("owner"):
        governance.append(Tag("Owner", str(old_governance["owner"]), f"asset governance.owner ({asset_file})"))
    if asset.team and asset.team.owner:
        governance.append(Tag("Owner", asset.team.owner, f"asset team.owner ({asset_file})"))
    compliance: list[Tag] = []
    if asset.compliance:
        c = asset.compliance
        src = f"asset compliance.%s ({asset_file})"
        for key, value in _compliance_tags(c.classification).items():
            compliance.append(Tag(key, value, src % "classification"))
        if c.regulations:
            compliance.append(Tag("Regulation", _join(c.regulations), src % "regulations"))
        if c.retention_days is not None:
            compliance.append(Tag("RetentionDays", str(c.retention_days), src % "retention_days"))
    result = (asset_file, tuple(governance), tuple(compliance), _finops_tags("asset", asset.finops, asset_file))
    _ASSET_TAGS[(id(asset), root)] = (asset, result)
    return result


def merge_tags(job: JobConfig, asset: AssetDefinition | None, defaults: dict[str, str] | None = None) -> dict[str, Tag]:
    """All tags for a job's resources, each with the source it came from; highest precedence wins."""
    job_file = job.relative_path
    asset_file, asset_governance, compliance, asset_finops = _from_asset(asset, job.project_root)
    levels: list[list[Tag]] = []  # lowest precedence first

    levels.append([Tag(k, v, "settings tags.defaults") for k, v in (defaults or {}).items()])

    job_level = [Tag("TenantId", job.tenant_id, f"job tenant_id ({job_file})")]
    if job.environment:
        job_level.append(Tag("Environment", job.environment, f"job environment ({job_file})"))
    job_level.append(Tag("JobName", job.asset_name, f"job asset name ({job_file})"))
    job_level.append(Tag("ManagedBy", MANAGED_BY, "dativo-tf"))
    levels.append(job_level)

    governance = list(asset_governance)
    overrides = job.governance_overrides or {}
    if overrides.get("owner"):
        governance.append(Tag("Owner", str(overrides["owner"]), f"job governance_overrides.owner ({job_file})"))
    levels.append(governance)
    levels.append(list(compliance))
    levels.append(asset_finops + _finops_tags("job", job.finops, job_file))

    infra = job.infrastructure
    levels.append([Tag(k, v, f"job infrastructure.tags.{k} ({job_file})") for k, v in (infra.tags if infra else {}).items()])

    merged: dict[str, Tag] = {}
    for level in levels:
        for tag in level:
            merged[tag.key] = tag
    return dict(sorted(merged.items()))


def check_required(tags: dict[str, Tag], required: list[str], job: JobConfig) -> None:
    missing = [k for k in required if not tags.get(k) or not tags[k].value]
    if missing:
        raise job.error(
            f"required tag(s) missing: {', '.join(missing)} (dativo-tf.yaml tags.required); set them in "
            "infrastructure.tags, finops, or the asset's team/compliance sections",
            "infrastructure", "tags",
        )


# --- AWS ------------------------------------------------------------------------------------------

AWS_MAX_TAGS, AWS_MAX_KEY, AWS_MAX_VALUE = 50, 128, 256
_AWS_EXTRA = set("+-=._:/@ ")


def _aws_char_ok(ch: str) -> bool:
    return ch in _AWS_EXTRA or unicodedata.category(ch)[0] in "LNZ"


@lru_cache(maxsize=4096)  # the same tag keys and values recur in every job
def aws_clean(text: str) -> str:
    """Replace each run of characters AWS does not allow in tags by a single `_`."""
    out, in_bad_run = [], False
    for ch in text:
        if _aws_char_ok(ch):
            out.append(ch)
            in_bad_run = False
        elif not in_bad_run:
            out.append("_")
            in_bad_run = True
    return "".join(out)


def aws_tags(tags: dict[str, str], where: str = "tags") -> dict[str, str]:
    """Tags fixed to AWS rules, or an InputError naming the tag that cannot be fixed."""
    out: dict[str, str] = {}
    for key, value in tags.items():
        fixed = aws_clean(key)
        if not fixed.strip():
            raise InputError(f"tag key {key!r} is empty; AWS tag keys need 1-128 characters", key=where)
        if fixed.lower().startswith("aws:"):
            raise InputError(f"tag key {key!r} uses the reserved prefix 'aws:'", key=where)
        if len(fixed) > AWS_MAX_KEY:
            raise InputError(f"tag key {key[:40]!r}... is {len(fixed)} characters; AWS allows at most 128", key=where)
        fixed_value = aws_clean(value)
        if len(fixed_value) > AWS_MAX_VALUE:
            raise InputError(
                f"tag {key!r} has a value of {len(fixed_value)} characters; AWS allows at most 256", key=where
            )
        if fixed in out and out[fixed] != fixed_value:
            raise InputError(f"tag keys collide after fixing for AWS: {key!r} -> {fixed!r}", key=where)
        out[fixed] = fixed_value
    if len(out) > AWS_MAX_TAGS:
        raise InputError(f"{len(out)} tags; AWS allows at most 50 per resource", key=where)
    return dict(sorted(out.items()))


# --- GCP and Kubernetes ---------------------------------------------------------------------------

GCP_MAX_LABELS, LABEL_MAX = 64, 63
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_LABEL = re.compile(r"[^a-z0-9_-]+")
_NOT_K8S_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")
GCP_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}\Z")
GCP_VALUE = re.compile(r"^[a-z0-9_-]{0,63}\Z")
K8S_NAME = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?\Z")


@lru_cache(maxsize=4096)  # the same tag keys and values recur in every job
def gcp_label_key(key: str) -> str:
    snake = _CAMEL.sub("_", key).lower()
    label = _NOT_LABEL.sub("_", snake)[:LABEL_MAX]
    if not label or not label[0].isascii() or not label[0].isalpha():
        raise InputError(f"tag key {key!r} becomes label key {label!r}, which must start with a letter a-z", key="tags")
    return label


@lru_cache(maxsize=4096)
def gcp_label_value(value: str) -> str:
    return _NOT_LABEL.sub("_", value.lower()).strip("_")[:LABEL_MAX]


def gcp_labels(tags: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    origin: dict[str, str] = {}
    for key, value in tags.items():
        label = gcp_label_key(key)
        if label in out:
            raise InputError(
                f"tag keys {origin[label]!r} and {key!r} both become the GCP label {label!r}; rename one", key="tags"
            )
        out[label], origin[label] = gcp_label_value(value), key
    if len(out) > GCP_MAX_LABELS:
        raise InputError(f"{len(out)} labels; GCP allows at most 64 per resource", key="tags")
    return dict(sorted(out.items()))


def _trim_alnum(text: str) -> str:
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", text)


def k8s_labels(tags: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    origin: dict[str, str] = {}
    for key, value in tags.items():
        label = _trim_alnum(gcp_label_key(key))
        if label in out:
            raise InputError(
                f"tag keys {origin[label]!r} and {key!r} both become the Kubernetes label {label!r}; rename one",
                key="tags",
            )
        out[label] = _trim_alnum(_NOT_K8S_VALUE.sub("_", value)[:LABEL_MAX])
        origin[label] = key
    return dict(sorted(out.items()))
