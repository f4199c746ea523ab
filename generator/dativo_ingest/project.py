"""Where a project is: its settings file, root folder and raw settings. Light to import (no pydantic), so
a no-op run can find its output folder and job files without building the settings models."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from dativo_ingest import paths
from dativo_ingest.defaults import DEFAULT_JOBS, DEFAULT_OUTPUT_DIR, SETTINGS_FILE
from dativo_ingest.errors import ForbiddenPathError, InputError
from dativo_ingest.yamlsource import line_of, load_mapping

if TYPE_CHECKING:
    from dativo_ingest.settings import Settings

__all__ = ["DEFAULT_JOBS", "DEFAULT_OUTPUT_DIR", "SETTINGS_FILE", "ProjectSettings"]


class ProjectSettings:
    """The settings file of a project, validated on first use and resolved per environment on demand."""

    def __init__(self, root: Path, data: dict | None = None, text: str = "", path: Path | None = None, *,
                 lazy: bool = False):
        self.root = root.resolve()
        self.path = path
        self.text = text
        self.raw = data or {}
        # The output folder actually written to (`generate --out`); None: output_dir from the settings.
        self.out: Path | None = None
        self._per_env: dict[str | None, Settings] = {}
        paths.allow(self.root, self.raw.get("allow_outside_project"))
        if not lazy:
            self.validate()

    @classmethod
    def load(cls, config: str | Path | None = None, start: Path | None = None, *,
             lazy: bool = False) -> "ProjectSettings":
        """Load `config`, else the dativo-tf.yaml found walking up from `start` (cwd), else defaults.
        `lazy` defers validation to the first use (or `validate()`)."""
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
            return cls(Path.cwd(), lazy=lazy)
        data, text = load_mapping(path)
        return cls(path.parent, data, text, path, lazy=lazy)

    def validate(self) -> None:
        """Validate the top level and every environment section, so an error is reported even when no job
        uses that environment."""
        for env in self.base.environments:
            self.for_environment(env)

    @property
    def display_path(self) -> str:
        return SETTINGS_FILE if self.path is None else self.path.name

    @cached_property
    def base(self) -> Settings:
        from dativo_ingest.settings import Settings
        from dativo_ingest.validation import validate
        from dativo_ingest.values import check_terraform_values

        envs = self.raw.get("environments")
        tag_defaults = [("tags", "defaults")] + [("environments", env, "tags", "defaults")
                                                 for env in (envs if isinstance(envs, dict) else {})]
        check_terraform_values(self.raw, tag_defaults, path=self.display_path, text=self.text)
        return validate(Settings, self.raw, path=self.display_path, text=self.text)

    def for_environment(self, environment: str | None) -> Settings:
        if environment not in self._per_env:
            from dativo_ingest.settings import Settings, deep_merge
            from dativo_ingest.validation import validate

            override = self.base.environments.get(environment or "", {})
            if not override:
                self._per_env[environment] = self.base
            else:
                merged = deep_merge({k: v for k, v in self.raw.items() if k != "environments"}, override)
                self._per_env[environment] = validate(
                    Settings, merged, path=self.display_path, text=self.text, prefix=("environments", environment)
                )
        return self._per_env[environment]

    # A well-formed raw value is exactly what validation returns for these two keys, so they are read
    # without building the models; anything else goes through validation and its error.
    @property
    def write_dir(self) -> Path:
        """Where this run writes: `--out` when given, else `output_dir`. Local module sources are relative to it."""
        return self.out if self.out is not None else self.output_dir

    @cached_property
    def output_dir(self) -> Path:
        """The configured output folder (records name the settings file relative to it, whatever `--out` is)."""
        raw = self.raw.get("output_dir", DEFAULT_OUTPUT_DIR)
        raw = raw if isinstance(raw, str) else self.base.output_dir
        why = paths.problem(raw, self.root / raw, self.root)
        if why:
            raise ForbiddenPathError(why, path=self.display_path, line=line_of(self.text, ["output_dir"]),
                                     key="output_dir")
        return self.root / raw

    @property
    def job_patterns(self) -> list[str]:
        raw = self.raw.get("jobs", list(DEFAULT_JOBS))
        if isinstance(raw, list) and all(isinstance(p, str) for p in raw):
            return raw
        return self.base.jobs
