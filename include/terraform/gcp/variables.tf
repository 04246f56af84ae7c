# The release's terraform task (plugins/varai_deploy/operators/terraform.py) passes exactly
# environment, release_version, services and gateway_url. Everything else therefore has a default,
# and what differs between staging and production is chosen by var.environment (locals.tf), never by
# a variable a hand run could set differently from the release: the next release would revert it.

variable "environment" {
  type        = string
  description = "The environment this state holds: staging or production (the sandbox has its own module)."
  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "The environment must be staging or production."
  }
}

variable "project_id" {
  type        = string
  description = "The Google Cloud project (the guide's GCP_PROJECT_ID); staging and production share it."
  default     = "ml-datadriven-recos"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "The project_id must be a Google Cloud project id: 6-30 lowercase letters, digits or hyphens."
  }
}

variable "region" {
  type        = string
  description = "The region of the services, the database, Redis and the images (the guide's GCP_REGION)."
  default     = "us-central1"
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "The region must be a Google Cloud region such as us-central1."
  }
}

variable "release_version" {
  type        = string
  description = "The release tag the images carry, e.g. v1.4.2 (the release's rule, varai_deploy.config); only the images output uses it. Null (a hand run): no images."
  default     = null
  validation {
    condition     = var.release_version == null || can(regex("^v(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$", var.release_version))
    error_message = "The release_version must be a semver tag such as v1.4.2 or v1.5.0-rc.1."
  }
}

variable "services" {
  type        = map(object({ prefix = string, health_path = string }))
  description = "Backend service name -> the gateway's route prefix and health path (varai_deploy.services; the release passes the environment's list)."
  default = {
    "ai-discovery"   = { prefix = "/ai", health_path = "/ai/health" }
    "face-analysis"  = { prefix = "/face", health_path = "/face/health" }
    "recommendation" = { prefix = "/recommendations", health_path = "/recommendations/health" }
    "analytics"      = { prefix = "/analytics", health_path = "/analytics/health" }
    "api-gateway"    = { prefix = "", health_path = "/health" }
  }
  validation {
    condition     = contains(keys(var.services), "api-gateway")
    error_message = "The services must include api-gateway: it is the public front end the health checks go through."
  }
  validation {
    condition     = alltrue([for name in keys(var.services) : can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", name))])
    error_message = "Service names must be lowercase letters, digits and hyphens (at most 32), as Cloud Run needs."
  }
  validation {
    condition     = alltrue([for svc in values(var.services) : substr(svc.health_path, 0, 1) == "/"])
    error_message = "Every health_path must start with /."
  }
}

variable "gateway_url" {
  type        = string
  description = "The API gateway's public URL as the release's gateway connection knows it; empty: the gateway's Cloud Run URL."
  default     = ""
  validation {
    condition     = var.gateway_url == "" || can(regex("^https?://", var.gateway_url))
    error_message = "The gateway_url must be empty or an http(s) URL."
  }
}
