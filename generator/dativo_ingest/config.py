"""Job and asset models: the Dativo job config (YAML) and the ODCS asset definition it points to."""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr

from dativo_ingest.errors import InputError
from dativo_ingest.project import SETTINGS_FILE
from dativo_ingest.validation import validate
from dativo_ingest.yamlsource import line_of, load_mapping



def _scalar_to_str(value: Any) -> Any:
    """YAML turns `CostCenter: 1001` into an int; tags and refs are strings, so accept scalars."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


def _one_or_many(value: Any) -> Any:
    """`classification: PII` and `classification: [PII]` mean the same."""
    if value is None:
        return []
    if isinstance(value, (str, int, float)):
        return [str(value)]
    return value


Str = Annotated[str, BeforeValidator(_scalar_to_str)]
StrList = Annotated[list[Str], BeforeValidator(_one_or_many)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenModel(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- infrastructure block: ours, so unknown keys are typos -------------------------------------


class Network(StrictModel):
    vpc_id: Optional[str] = None
    subnet_ids: list[str] = []
    security_group_ids: list[str] = []


class Storage(StrictModel):
    ephemeral_storage_gb: Optional[int] = Field(default=None, ge=1)
    persistent_volume: bool = False


class RuntimeEnvironment(StrictModel):
    compute_type: Optional[str] = None
    compute_size: Optional[str] = None
    memory_mb: Optional[int] = Field(default=None, ge=1)
    cpu_units: Optional[int] = Field(default=None, ge=1)
    timeout_seconds: Optional[int] = Field(default=None, ge=1)
    network: Optional[Network] = None
    storage: Optional[Storage] = None
    service_account: Optional[str] = None
    instance_type: Optional[str] = None
    machine_type: Optional[str] = None


def _cron_string_to_schedule(value: Any) -> Any:
    return {"cron": value} if isinstance(value, str) else value


class Schedule(StrictModel):
    cron: str
    timezone: str = "UTC"


# terraform.variables names that look like they hold a secret (camelCase is split first: dbPassword)
_SECRET_WORD = re.compile(r"password|passwd|secret|token|credential|private_?key|(^|_)(api_?)?keys?($|_)")


def _not_secret(name: str) -> str:
    if _SECRET_WORD.search(re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()):
        raise ValueError(
            f"{name!r} looks like a secret, and terraform.variables are written in clear to terraform.tfvars and "
            "the state; put it in infrastructure.secrets (environment variable name -> where the secret lives: "
            "Secrets Manager/SSM ARN on AWS, Secret Manager secret on GCP), which the job reads at start "
            "(a reference that is not secret, such as a KMS key ARN, belongs in resource_refs)"
        )
    return name


class TerraformBlock(StrictModel):
    module_path: Optional[str] = None
    module_version: Optional[str] = None
    resource_refs: dict[str, Str] = {}
    variables: dict[Annotated[str, AfterValidator(_not_secret)], Any] = {}
    backend: Optional[dict[str, Any]] = None


_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*\Z")


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(
            f"{value!r} is not an environment variable name; use upper-case letters, digits and '_', "
            "not starting with a digit (like PGPASSWORD)"
        )
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]


class InfrastructureConfig(StrictModel):
    cloud_provider: Literal["aws", "gcp"]
    region: Optional[str] = None
    project_id: Optional[str] = None
    schedule: Annotated[Optional[Schedule], BeforeValidator(_cron_string_to_schedule)] = None
    runtime_environment: RuntimeEnvironment = RuntimeEnvironment()
    tags: dict[str, Str] = {}
    terraform: TerraformBlock = TerraformBlock()
    # Environment variable name -> where its value lives (AWS: Secrets Manager / SSM parameter ARN;
    # GCP: Secret Manager secret or version; GKE: <kubernetes secret>/<key>). Never the value itself.
    secrets: dict[EnvName, str] = {}


# --- Dativo's own sections: unknown keys are kept ----------------------------------------------


class FinOps(OpenModel):
    cost_center: Optional[Str] = None
    project: Optional[Str] = None
    environment: Optional[Str] = None
    business_tags: StrList = []


class Team(OpenModel):
    owner: Optional[str] = None
    roles: list[Any] = []


class Compliance(OpenModel):
    classification: StrList = []
    regulations: StrList = []
    retention_days: Optional[int] = None


class AssetDefinition(OpenModel):
    """ODCS v3.0.2 data contract with Dativo extensions (`team`, `compliance`, `finops`)."""

    name: Optional[str] = None
    version: Optional[Str] = None
    domain: Optional[str] = None
    dataProduct: Optional[str] = None
    tenant: Optional[str] = None
    team: Optional[Team] = None
    compliance: Optional[Compliance] = None
    finops: Optional[FinOps] = None

    _path: Path = PrivateAttr(default=Path("<asset>"))

    @property
    def path(self) -> Path:
        return self._path

    @classmethod
    def from_yaml(cls, path: str | Path) -> "AssetDefinition":
        path = Path(path)
        data, text = load_mapping(path)
        prefix: tuple[str, ...] = ()
        if "name" not in data and isinstance(data.get("asset"), dict):
            data, prefix = _from_nested_format(data["asset"]), ("asset",)
        asset = validate(cls, data, path=path, text=text, prefix=prefix)
        asset._path = path
        return asset


def _from_nested_format(old: dict) -> dict:
    """The pre-ODCS format: everything under `asset:`, ownership and compliance under `governance:`."""
    data = dict(old)
    governance = data.get("governance") or {}
    if isinstance(governance, dict):
        team = dict(data.get("team") or {})
        team.setdefault("owner", governance.get("owner"))
        data["team"] = team
        compliance = dict(data.get("compliance") or {})
        for key in ("classification", "regulations", "retention_days"):
            if key in governance:
                compliance.setdefault(key, governance[key])
        data["compliance"] = compliance
    return data


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PATH_KEYS = ("asset_path", "source_connector_path", "target_connector_path")


def expand_env(value: str, *, path: Path, text: str, key: str) -> str:
    def sub(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise InputError(
                f"environment variable {name} is not set (used in {value!r}); set it or write the path literally",
                path=path, line=line_of(text, [key]), key=key,
            )
        return os.environ[name]

    return _ENV_REF.sub(sub, value)


def find_project_root(start: Path) -> Path:
    """The folder holding dativo-tf.yaml, searching upwards from `start`; else the current directory."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / SETTINGS_FILE).is_file():
            return folder
    return Path.cwd().resolve()


_asset_cache: dict[tuple[Path, int, int], AssetDefinition] = {}


def load_asset(path: Path) -> AssetDefinition:
    """Each asset file is parsed once per process, however many jobs share it."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise InputError("asset file not found", path=path) from None
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _asset_cache:
        _asset_cache[key] = AssetDefinition.from_yaml(path)
    return _asset_cache[key]


class JobConfig(OpenModel):
    """A Dativo job config. Unknown top-level keys are kept: the job schema belongs to Dativo."""

    tenant_id: str = Field(min_length=1)
    environment: Optional[str] = None
    source_connector: Optional[str] = None
    source_connector_path: Optional[str] = None
    target_connector: Optional[str] = None
    target_connector_path: Optional[str] = None
    asset: Optional[str] = None
    asset_path: Optional[str] = None
    finops: Optional[FinOps] = None
    governance_overrides: Optional[dict[str, Any]] = None
    classification_overrides: Optional[dict[str, Any]] = None
    source: Optional[dict[str, Any]] = None
    target: Optional[dict[str, Any]] = None
    schema_validation_mode: Optional[str] = None
    logging: Optional[dict[str, Any]] = None
    retry_config: Optional[dict[str, Any]] = None
    infrastructure: Optional[InfrastructureConfig] = None

    _path: Path = PrivateAttr(default=Path("<job>"))
    _root: Path = PrivateAttr(default=Path("."))
    _text: str = PrivateAttr(default="")
    _relative: Optional[tuple] = PrivateAttr(default=None)

    @classmethod
    def from_yaml(cls, path: str | Path, project_root: str | Path | None = None) -> "JobConfig":
        path = Path(path)
        data, text = load_mapping(path)
        job = validate(cls, data, path=path, text=text)
        job._path = path
        job._root = Path(project_root).resolve() if project_root else find_project_root(path.parent)
        job._text = text
        return job

    @property
    def path(self) -> Path:
        return self._path

    @property
    def project_root(self) -> Path:
        return self._root

    @property
    def text(self) -> str:
        return self._text

    @property
    def name(self) -> str:
        """The job name: the job file's stem."""
        return self._path.stem

    @property
    def relative_path(self) -> str:
        """The job file relative to the project root, with forward slashes (stable across machines)."""
        if self._relative is None or self._relative[0] != (self._path, self._root):
            try:
                relative = self._path.resolve().relative_to(self._root).as_posix()
            except ValueError:
                relative = self._path.as_posix()
            self._relative = ((self._path, self._root), relative)
        return self._relative[1]

    def env_refs(self) -> list[str]:
        """Names of the environment variables its path-valued keys use (`${VAR}`)."""
        return sorted({name for key in PATH_KEYS for name in _ENV_REF.findall(getattr(self, key) or "")})

    def line(self, *loc: str | int) -> int | None:
        return line_of(self._text, loc)

    def error(self, message: str, *loc: str | int, cls: type[InputError] = InputError) -> InputError:
        """An error about this job, pointing at the key `loc` (e.g. 'infrastructure', 'region')."""
        from dativo_ingest.validation import key_path

        return cls(message, path=self.relative_path, line=self.line(*loc) if loc else None, key=key_path(loc) or None)

    def resolve_path(self, key: str) -> Path | None:
        """A path-valued key (asset_path, connector paths): `${VAR}` expanded, relative to the project root."""
        raw = getattr(self, key)
        if not raw:
            return None
        expanded = expand_env(raw, path=self.relative_path, text=self._text, key=key)
        resolved = Path(expanded)
        return resolved if resolved.is_absolute() else self._root / resolved

    @cached_property
    def asset_definition(self) -> AssetDefinition | None:
        return self._resolve_asset()

    def _resolve_asset(self) -> AssetDefinition | None:
        """Load the asset definition at `asset_path` (the seed's API). None when the job has none."""
        path = self.resolve_path("asset_path")
        if path is None:
            return None
        if not path.is_file():
            raise self.error(f"asset file not found: {path}", "asset_path")
        return load_asset(path)

    @property
    def asset_name(self) -> str:
        asset = self.asset_definition
        return self.asset or (asset.name if asset and asset.name else "") or self.name

    def connector_name(self, side: str) -> str:
        """`source_connector`, else inferred from `source_connector_path` (csv.yaml -> csv)."""
        name = getattr(self, f"{side}_connector")
        if name:
            return name
        raw = getattr(self, f"{side}_connector_path")
        return Path(raw).stem if raw else ""
