"""dativo-tf: Terraform workspaces from Dativo ETL job configs."""

__version__ = "0.1.0"
