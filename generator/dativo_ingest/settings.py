"""Project settings (`dativo-tf.yaml`) with layering: built-in < top level < environments.<env> < job."""

from __future__ import annotations

import copy
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from dativo_ingest.config import SETTINGS_FILE, Str
from dativo_ingest.errors import InputError
from dativo_ingest.validation import validate
from dativo_ingest.yamlsource import load_mapping


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class S3Backend(Strict):
    bucket: Optional[str] = None
    key: str = "{tenant_id}/{environment}/{job_name}/terraform.tfstate"
    region: Optional[str] = None
    encrypt: bool = True
    use_lockfile: bool = True
    kms_key_id: Optional[str] = None


class GcsBackend(Strict):
    bucket: Optional[str] = None
    prefix: str = "{tenant_id}/{environment}/{job_name}"


class AwsSettings(Strict):
    region: str = "us-east-1"
    provider_version: str = "~> 6.0"
    image: Optional[str] = None  # overrides `image` on AWS (Lambda needs an ECR image)
    log_retention_days: int = 30
    backend: S3Backend = S3Backend()


class GcpSettings(Strict):
    project_id: Optional[str] = None
    region: str = "us-central1"
    zone: Optional[str] = None  # default: <region>-a
    provider_version: str = "~> 7.0"
    image: Optional[str] = None
    backend: GcsBackend = GcsBackend()


class KubernetesSettings(Strict):
    provider_version: str = "~> 2.38"
    namespace: str = "default"


class TagSettings(Strict):
    defaults: dict[str, Str] = {}
    required: list[str] = []


DEFAULT_COMMAND = ["run", "--config", "{job_path}", "--mode", "self_hosted"]


class Settings(Strict):
    jobs: list[str] = ["jobs/**/*.yaml"]
    output_dir: str = "workspaces"
    tfvars_format: Literal["hcl", "json"] = "hcl"
    image: str = "ghcr.io/dativo-io/dativo-ingest:latest"
    command: list[str] = Field(default_factory=lambda: list(DEFAULT_COMMAND))
    terraform_version: str = ">= 1.10"
    aws: AwsSettings = AwsSettings()
    gcp: GcpSettings = GcpSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    tags: TagSettings = TagSettings()
    environments: dict[str, dict[str, Any]] = {}


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class ProjectSettings:
    """The settings file of a project, resolved per environment on demand."""

    def __init__(self, root: Path, data: dict | None = None, text: str = "", path: Path | None = None):
        self.root = root.resolve()
        self.path = path
        self.text = text
        self.raw = data or {}
        self._per_env: dict[str, Settings] = {}
        self.base  # validate the top level (and every environment section) right away
        for env in self.base.environments:
            self.for_environment(env)

    @classmethod
    def load(cls, config: str | Path | None = None, start: Path | None = None) -> "ProjectSettings":
        """Load `config`, else the dativo-tf.yaml found walking up from `start` (cwd), else defaults."""
        if config is not None:
            path = Path(config)
            if not path.is_file():
                raise InputError("settings file not found", path=path)
        else:
            path = None
            here = (start or Path.cwd()).resolve()
            for folder in (here, *here.parents):
                if (folder / SETTINGS_FILE).is_file():
                    path = folder / SETTINGS_FILE
                    break
        if path is None:
            return cls(Path.cwd())
        data, text = load_mapping(path)
        return cls(path.parent, data, text, path)

    @property
    def display_path(self) -> str:
        return SETTINGS_FILE if self.path is None else self.path.name

    @cached_property
    def base(self) -> Settings:
        return validate(Settings, self.raw, path=self.display_path, text=self.text)

    def for_environment(self, environment: str | None) -> Settings:
        if environment not in self._per_env:
            override = self.base.environments.get(environment or "", {})
            if not override:
                self._per_env[environment] = self.base
            else:
                merged = deep_merge({k: v for k, v in self.raw.items() if k != "environments"}, override)
                self._per_env[environment] = validate(
                    Settings, merged, path=self.display_path, text=self.text, prefix=("environments", environment)
                )
        return self._per_env[environment]

    @property
    def output_dir(self) -> Path:
        return self.root / self.base.output_dir
