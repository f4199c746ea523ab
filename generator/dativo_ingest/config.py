"""Job and asset models: the Dativo job config (YAML) and the ODCS asset definition it points to."""

from __future__ import annotations

import difflib
import os
import re
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, field_validator

from dativo_ingest import paths
from dativo_ingest.defaults import SETTINGS_FILE
from dativo_ingest.errors import WARNINGS, ForbiddenPathError, InputError, InputErrors
from dativo_ingest.validation import check_near_misses, validate
from dativo_ingest.values import NoControl, ScriptSafe, check_terraform_values
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


Str = Annotated[str, BeforeValidator(_scalar_to_str, json_schema_input_type=Union[str, int, float, bool])]
StrList = Annotated[list[Str], BeforeValidator(_one_or_many, json_schema_input_type=Union[Str, list[Str], None])]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenModel(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- infrastructure block: ours, so unknown keys are typos -------------------------------------

COMPUTE_TYPES = {"aws": ("ecs_task", "lambda", "ec2_instance"), "gcp": ("cloud_run", "gce_instance", "gke_pod")}
COMPUTE_SIZES = ("small", "medium", "large", "xlarge", "2xlarge")  # see compute.SIZES


def _enum(values, description: str) -> Any:
    """A string field the JSON Schema restricts to `values` (the rules that check it live in `compute`)."""
    return Field(None, description=description, json_schema_extra={"enum": [*values, None]})


class Network(StrictModel):
    vpc_id: Optional[str] = Field(None, description="VPC id (AWS, e.g. vpc-0abc...) or network name (GCP).")
    subnet_ids: list[str] = Field([], description="Subnets to run in: AWS subnet ids (subnet-...); on GCP the first "
                                                  "is the subnetwork (name or projects/P/regions/R/subnetworks/S).")
    security_group_ids: list[str] = Field([], description="AWS security group ids (sg-...); GCP: network tags.")


class Storage(StrictModel):
    ephemeral_storage_gb: Optional[int] = Field(
        None, ge=1, description="Scratch disk in GiB (Fargate <= 200, Lambda 1-10; the root disk of EC2/GCE VMs).")
    persistent_volume: bool = Field(False, description="Not provisioned by dativo-tf (a warning): attach storage in "
                                                       "an extra .tf file.")


class RuntimeEnvironment(StrictModel):
    compute_type: Optional[str] = _enum(
        [t for types in COMPUTE_TYPES.values() for t in types],
        "Where the job runs. aws: ecs_task, lambda, ec2_instance; gcp: cloud_run, gce_instance, gke_pod. Required "
        "for a workspace.")
    compute_size: Optional[str] = _enum(
        COMPUTE_SIZES, "Default size when cpu_units/memory_mb are not set: small 0.5 vCPU/1 GiB, medium 1/2 (default), "
                       "large 2/4, xlarge 4/8, 2xlarge 8/16.")
    memory_mb: Optional[int] = Field(None, ge=1, description="Memory in MiB (default: from compute_size). Lambda "
                                                             "128-10240; Fargate and Cloud Run pair it with the CPU.")
    cpu_units: Optional[int] = Field(None, ge=1, description="CPU in units: AWS 1024 = 1 vCPU, GCP 1000 = 1 vCPU "
                                                             "(default: from compute_size). Ignored by Lambda.")
    timeout_seconds: Optional[int] = Field(None, ge=1, description="Longest run, in seconds. Lambda <= 900, "
                                                                   "Cloud Run <= 604800 (168 h).")
    network: Optional[Network] = Field(None, description="Where the job runs on the network.")
    storage: Optional[Storage] = Field(None, description="Disk for the job.")
    service_account: Optional[str] = Field(None, description="Identity the job runs as: AWS IAM role name/ARN or "
                                                             "instance profile; GCP service account email.")
    instance_type: Optional[str] = Field(None, description="ec2_instance: EC2 instance type (e.g. m6i.large); "
                                                           "default: the smallest that fits cpu and memory.")
    machine_type: Optional[str] = Field(None, description="gce_instance: machine type (e.g. e2-standard-2); "
                                                          "default: the smallest e2-custom shape that fits.")


def _cron_string_to_schedule(value: Any) -> Any:
    return {"cron": value} if isinstance(value, str) else value


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


class Schedule(StrictModel):
    cron: ScriptSafe = Field(description="Standard 5-field cron: minute hour day-of-month month day-of-week "
                                  "(e.g. '0 3 * * *' = 03:00 every day).")
    timezone: ScriptSafe = Field("UTC", description="IANA time zone the cron is read in (e.g. UTC, Europe/Berlin).")

    @field_validator("timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        zones = _time_zones()
        if zones and value not in zones:  # no time zone database at all: leave it to the cloud
            near = difflib.get_close_matches(value, sorted(zones), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValueError(f"unknown time zone{hint}; use an IANA name such as UTC or Europe/Berlin")
        return value


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
    module_path: Optional[ScriptSafe] = Field(None, description="Call this module instead of the built-in resources: a "
                                                         "repo-relative path, registry address or remote URL.")
    module_version: Optional[str] = Field(None, description="Version constraint (e.g. '~> 1.0'); registry modules "
                                                            "only, dropped with a warning otherwise.")
    resource_refs: dict[str, Annotated[Str, NoControl]] = Field({}, description="Existing resources the job uses (role ARNs, cluster "
                                                          "names, ...), passed as var.resource_refs.")
    variables: dict[Annotated[str, AfterValidator(_not_secret)], Any] = Field({}, description="Extra Terraform input variables (module mode), typed from "
                                                      "their values.")
    backend: Optional[dict[str, Any]] = Field(None, description="Overrides of the settings' backend for this job "
                                                                "(aws: bucket, key, region, ...; gcp: bucket, prefix).")


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
    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": [
        {"if": {"properties": {"cloud_provider": {"const": cloud}}, "required": ["cloud_provider"]},
         "then": {"properties": {"runtime_environment": {"properties": {"compute_type": {"enum": [*types, None]}}}}}}
        for cloud, types in COMPUTE_TYPES.items()
    ]})

    cloud_provider: Literal["aws", "gcp"] = Field(description="Cloud the workspace targets.")
    region: Optional[str] = Field(None, description="Region (default: aws.region / gcp.region in dativo-tf.yaml). "
                                                    "Unknown regions are a warning.")
    project_id: Optional[str] = Field(None, description="GCP project id (default: gcp.project_id in dativo-tf.yaml).")
    schedule: Annotated[
        Optional[Schedule],
        BeforeValidator(_cron_string_to_schedule, json_schema_input_type=Union[str, Schedule, None]),
    ] = Field(None, description="When the job runs: a cron string ('0 3 * * *', UTC) or {cron, timezone}. "
                                "Without it the job is only defined, not scheduled.")
    runtime_environment: RuntimeEnvironment = Field(RuntimeEnvironment(), description="Compute type and size.")
    tags: dict[str, Str] = Field({}, description="Tags (labels on GCP) with the highest precedence.")
    terraform: TerraformBlock = Field(TerraformBlock(), description="Module mode, references and backend.")
    silence: list[Literal[tuple(WARNINGS)]] = Field(  # type: ignore[valid-type]
        [], description="Warnings this job does not report, by cause: "
                        + "; ".join(f"{code} = {why}" for code, why in WARNINGS.items()) + ".")
    secrets: dict[EnvName, str] = Field(
        {}, description="Environment variable name -> where its value lives, never the value: AWS Secrets Manager or "
                        "SSM parameter ARN; GCP Secret Manager projects/P/secrets/S[/versions/V], S or S:V; GKE "
                        "<kubernetes secret>/<key>.")


# --- Dativo's own sections: unknown keys are kept ----------------------------------------------


class FinOps(OpenModel):
    cost_center: Optional[Str] = Field(None, description="Cost center: the CostCenter tag.")
    project: Optional[Str] = Field(None, description="Project: the Project tag.")
    environment: Optional[Str] = Field(None, description="Environment: the Environment tag.")
    business_tags: StrList = Field([], description="Business tags, joined with ',' into the BusinessTags tag.")
    expected_runtime_minutes: Optional[float] = Field(
        default=None, gt=0, le=10080,
        description="How long one run usually takes, in minutes (0 < x <= 10080); the cost estimate uses it, "
                    "else timeout_seconds as an upper bound.")


class Team(OpenModel):
    owner: Optional[str] = Field(None, description="Owning team or person (an email): the Owner tag.")
    roles: list[Any] = Field([], description="Team roles (ODCS).")


class Compliance(OpenModel):
    classification: StrList = Field([], description="Data categories (PII, ...) and sensitivity (PUBLIC < INTERNAL "
                                                    "< CONFIDENTIAL < SENSITIVE < RESTRICTED): the Compliance and "
                                                    "DataClassification tags.")
    regulations: StrList = Field([], description="Regulations (GDPR, HIPAA, ...): the Regulation tag.")
    retention_days: Optional[int] = Field(None, description="Retention in days: the RetentionDays tag.")


class AssetDefinition(OpenModel):
    """ODCS v3.0.2 data contract with Dativo extensions (`team`, `compliance`, `finops`)."""

    name: Optional[str] = Field(None, description="Asset name: the JobName tag when the job has no `asset`.")
    version: Optional[Str] = Field(None, description="Contract version.")
    domain: Optional[str] = Field(None, description="Business domain: the Domain tag.")
    dataProduct: Optional[str] = Field(None, description="Data product: the DataProduct tag.")
    tenant: Optional[str] = Field(None, description="Tenant id.")
    team: Optional[Team] = Field(None, description="Ownership (Dativo extension).")
    compliance: Optional[Compliance] = Field(None, description="Compliance (Dativo extension).")
    finops: Optional[FinOps] = Field(None, description="Cost allocation (Dativo extension); the job's finops wins.")

    _path: Path = PrivateAttr(default=Path("<asset>"))

    @property
    def path(self) -> Path:
        return self.__pydantic_private__["_path"]  # (see JobConfig: pydantic's own lookup costs microseconds)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "AssetDefinition":
        path = Path(path)
        data, text = load_mapping(path)
        prefix: tuple[str, ...] = ()
        if "name" not in data and isinstance(data.get("asset"), dict):
            data, prefix = _from_nested_format(data["asset"]), ("asset",)
        check_terraform_values(data, ASSET_TERRAFORM_VALUES, path=path, text=text, prefix=prefix)
        check_near_misses(data, ("compliance", "finops", "team"), path=path, text=text, prefix=prefix)
        asset = validate(cls, data, path=path, text=text, prefix=prefix)
        asset._path = path
        return asset


# Keys whose values reach Terraform (tags, variables, backend): every value must be one Terraform can read.
ASSET_TERRAFORM_VALUES = (("team",), ("compliance",), ("finops",))
JOB_TERRAFORM_VALUES = (("finops",), ("infrastructure", "tags"), ("infrastructure", "terraform", "variables"),
                        ("infrastructure", "terraform", "backend"), ("infrastructure", "terraform", "resource_refs"))


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


def _relative(path: Path, root: Path, link: bool | None = None) -> str:
    """`path` relative to the (real) project `root`, symlinks resolved, with forward slashes; as written when it
    lies outside. `link`: whether `path` is a symlink, when known (see `paths.real`)."""
    real = paths.real(path, link=link)
    text, prefix = real.as_posix(), root.as_posix().rstrip("/") + "/"
    if text.startswith(prefix):  # what relative_to gives, without comparing part by part
        return text[len(prefix):]
    try:
        return real.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


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


_NO_JOB_PATH, _NO_ROOT = Path("<job>"), Path(".")  # a job built without a file (a Path never changes)


class JobConfig(OpenModel):
    """A Dativo job config. Unknown top-level keys are kept: the job schema belongs to Dativo."""

    tenant_id: str = Field(min_length=1, description="Tenant: the first folder of the workspace and the TenantId tag.")
    environment: Optional[str] = Field(None, description="Environment (e.g. production): the second folder of the "
                                                         "workspace; selects environments.<env> in dativo-tf.yaml.")
    source_connector: Optional[str] = Field(None, description="Source connector name (default: the stem of "
                                                              "source_connector_path).")
    source_connector_path: Optional[str] = Field(None, description="Source connector file, repo-relative; ${VAR} "
                                                                   "expands from the environment.")
    target_connector: Optional[str] = Field(None, description="Target connector name (default: the stem of "
                                                              "target_connector_path).")
    target_connector_path: Optional[str] = Field(None, description="Target connector file, repo-relative; ${VAR} "
                                                                   "expands from the environment.")
    asset: Optional[str] = Field(None, description="Asset name: the JobName tag (default: the asset's name).")
    asset_path: Optional[str] = Field(None, description="Asset definition (ODCS) file, repo-relative; ${VAR} expands "
                                                        "from the environment.")
    finops: Optional[FinOps] = Field(None, description="Cost allocation; wins over the asset's finops.")
    governance_overrides: Optional[dict[str, Any]] = Field(None, description="Overrides of the asset's governance "
                                                                             "(owner: the Owner tag).")
    classification_overrides: Optional[dict[str, Any]] = Field(None, description="Dativo: per-field "
                                                                                 "classification overrides.")
    source: Optional[dict[str, Any]] = Field(None, description="Dativo: source settings.")
    target: Optional[dict[str, Any]] = Field(None, description="Dativo: target settings.")
    schema_validation_mode: Optional[str] = Field(None, description="Dativo: schema validation mode.")
    logging: Optional[dict[str, Any]] = Field(None, description="Dativo: logging settings.")
    retry_config: Optional[dict[str, Any]] = Field(None, description="Dativo: retries (max_attempts sets the "
                                                                     "cloud's retry count where it has one).")
    infrastructure: Optional[InfrastructureConfig] = Field(None, description="Where and how the job runs; without "
                                                                             "it the job gets no workspace.")

    # (factories handing out one Path each, not default Paths: pydantic deep-copies a default for every job)
    _path: Path = PrivateAttr(default_factory=lambda: _NO_JOB_PATH)
    _root: Path = PrivateAttr(default_factory=lambda: _NO_ROOT)
    _text: str = PrivateAttr(default="")
    _relative: Optional[tuple] = PrivateAttr(default=None)
    _read: Optional[tuple] = PrivateAttr(default=None)  # the job file as read: see `yamlsource.read_text`
    # (read through __pydantic_private__: pydantic's own lookup of a private attribute costs microseconds, and a
    # job's path and root are read dozens of times per render)

    @classmethod
    def from_yaml(cls, path: str | Path, project_root: str | Path | None = None) -> "JobConfig":
        path = path if isinstance(path, Path) else Path(path)
        char = paths.control_char(str(path))
        if char:  # the job path reaches a header comment and the container's environment
            raise InputError(f"the job path contains the control character {char}; allowed: {paths.NO_CONTROL}",
                             path=paths.printable(str(path)))
        seen: list = []
        data, text = load_mapping(path, seen)
        check_terraform_values(data, JOB_TERRAFORM_VALUES, path=path, text=text)
        check_near_misses(data, ("infrastructure",), path=path, text=text)
        job = validate(cls, data, path=path, text=text)
        root = paths.real(Path(project_root)) if project_root else find_project_root(path.parent)
        job.__pydantic_private__.update(  # (set directly: see the note on the private attributes above)
            _path=path, _root=root, _text=text, _read=seen[0],
            _relative=((path, root), _relative(path, root, link=seen[0][2])),  # read_text saw a link
        )
        for key in PATH_KEYS:
            job.resolve_path(key)  # refuses a path outside the project before anything reads it
        return job

    @property
    def path(self) -> Path:
        return self.__pydantic_private__["_path"]

    @property
    def project_root(self) -> Path:
        return self.__pydantic_private__["_root"]

    @property
    def text(self) -> str:
        return self.__pydantic_private__["_text"]

    @property
    def read_as(self) -> tuple[str, os.stat_result, bool] | None:
        """(sha256, file status, whether a symlink) of the job file as `from_yaml` read it."""
        return self.__pydantic_private__["_read"]

    @property
    def name(self) -> str:
        """The job name: the job file's stem."""
        return self.path.stem

    @property
    def relative_path(self) -> str:
        """The job file relative to the project root, with forward slashes (stable across machines)."""
        private = self.__pydantic_private__
        known, path, root = private["_relative"], private["_path"], private["_root"]
        if known is not None and known[0][0] is path and known[0][1] is root:
            return known[1]  # the common case, without comparing paths
        if known is None or known[0] != (path, root):
            private["_relative"] = known = ((path, root), _relative(path, root))
        return known[1]

    def env_refs(self) -> list[str]:
        """Names of the environment variables its path-valued keys use (`${VAR}`)."""
        return sorted({name for key in PATH_KEYS for name in _ENV_REF.findall(getattr(self, key) or "")})

    def line(self, *loc: str | int) -> int | None:
        return line_of(self.text, loc)

    def error(self, message: str, *loc: str | int, cls: type[InputError] = InputError) -> InputError:
        """An error about this job, pointing at the key `loc` (e.g. 'infrastructure', 'region')."""
        from dativo_ingest.validation import key_path

        return cls(message, path=self.relative_path, line=self.line(*loc) if loc else None, key=key_path(loc) or None)

    def resolve_path(self, key: str) -> Path | None:
        """A path-valued key (asset_path, connector paths): `${VAR}` expanded, relative to the project root."""
        raw = getattr(self, key)
        if not raw:
            return None
        expanded = expand_env(raw, path=self.relative_path, text=self.text, key=key) if "$" in raw else raw
        resolved, why = paths.inside(raw, expanded, self.project_root)
        if why:
            raise self.error(why, key, cls=ForbiddenPathError)
        return resolved

    @cached_property
    def asset_definition(self) -> AssetDefinition | None:
        return self._resolve_asset()

    def _resolve_asset(self) -> AssetDefinition | None:
        """Load the asset definition at `asset_path` (the seed's API). None when the job has none."""
        path = self.resolve_path("asset_path")
        if path is None:
            return None
        if not path.is_file():  # the text as written: `${VAR}` expanded may be a secret
            raise self.error(f"asset file not found: {self.asset_path}", "asset_path")
        shown = self.asset_path if "${" in self.asset_path else None
        try:
            return load_asset(path)
        except InputErrors as exc:
            for err in exc.errors:
                err.path = shown or self.display(err.path)
            raise
        except InputError as exc:
            exc.path = shown or self.display(exc.path)
            raise

    def display(self, path: str | Path | None) -> str | None:
        """A path as errors show it: relative to the project root when inside it."""
        if path is None:
            return None
        try:
            return Path(path).resolve().relative_to(self.project_root).as_posix()
        except (ValueError, OSError):
            return str(path)

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
