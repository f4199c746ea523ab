"""Names and defaults every layer needs: the settings file's name and the default job globs and output folder.
The bottom layer: imports nothing from the package."""

SETTINGS_FILE = "dativo-tf.yaml"
DEFAULT_JOBS = ("jobs/**/*.yaml",)
DEFAULT_OUTPUT_DIR = "workspaces"
