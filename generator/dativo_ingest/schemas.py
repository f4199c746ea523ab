"""JSON Schemas of the three input files, for editors (yaml-language-server) and `dativo-tf schema`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

KINDS = ("job", "settings", "asset")
# Where `dativo-tf init` puts them in a new repo, and which files each one describes.
SCHEMA_DIR = "schemas"
FILES = {"job": ["jobs/**/*.yaml", "jobs/**/*.yml"], "settings": ["dativo-tf.yaml"], "asset": ["assets/**/*.yaml"]}
TITLES = {
    "job": "Dativo job config (dativo-tf)",
    "settings": "dativo-tf settings (dativo-tf.yaml)",
    "asset": "Dativo asset definition: ODCS v3.0.2 data contract with Dativo extensions (dativo-tf)",
}


def document(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft-07) of one kind of file."""
    from dativo_ingest.config import AssetDefinition, JobConfig
    from dativo_ingest.settings import Settings

    model = {"job": JobConfig, "settings": Settings, "asset": AssetDefinition}[kind]
    doc = model.model_json_schema()
    return {"$schema": "http://json-schema.org/draft-07/schema#", **doc, "title": TITLES[kind]}


def file_name(kind: str) -> str:
    return f"{kind}.schema.json"


def write_all(root: Path) -> list[Path]:
    """Write every schema under root/schemas/ and point VS Code's YAML extension at them."""
    import json

    from dativo_ingest import hcl

    folder = root / SCHEMA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = folder / file_name(kind)
        path.write_text(hcl.dumps_json(document(kind)))
        written.append(path)
    vscode = root / ".vscode" / "settings.json"
    settings = json.loads(vscode.read_text()) if vscode.is_file() else {}
    settings.setdefault("yaml.schemas", {}).update({f"./{SCHEMA_DIR}/{file_name(k)}": FILES[k] for k in KINDS})
    vscode.parent.mkdir(exist_ok=True)
    vscode.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    written.append(vscode)
    return written
