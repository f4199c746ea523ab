# A minimal example of the module the seed's jobs call (modules/dativo-etl-job in the user's guide).
# It accepts the seed's variable contract; a real module would provision the job's compute here.

variable "cloud_provider" {
  type = string
}

variable "runtime_environment" {
  type = any
}

variable "tags" {
  type = map(string)
}

variable "resource_refs" {
  type    = map(string)
  default = {}
}

variable "job_metadata" {
  type = any
}

variable "enable_cloud_logging" {
  type    = bool
  default = false
}

variable "enable_cloud_trace" {
  type    = bool
  default = false
}

variable "enable_auto_scaling" {
  type    = bool
  default = false
}

variable "region" {
  type    = string
  default = "us-central1"
}

resource "terraform_data" "job" {
  input = {
    job  = var.job_metadata
    tags = var.tags
  }
}

output "job_id" {
  value = terraform_data.job.id
}
