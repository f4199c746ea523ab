# Package marker: lets the Jinja templates ship inside the wheel as `dativo_ingest.templates`.
