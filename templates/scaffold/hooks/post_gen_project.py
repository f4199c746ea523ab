"""Write the JSON Schemas of the new repo's job, settings and asset files, and point editors at them
(`schemas/`, `.vscode/settings.json`; the files' `# yaml-language-server: $schema=` lines use them too)."""

from pathlib import Path

try:
    from dativo_ingest.schemas import write_all
except ImportError:  # the template used without dativo-tf installed: no schemas to write
    pass
else:
    write_all(Path.cwd())
