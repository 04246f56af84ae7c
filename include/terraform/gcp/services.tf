# The image repository and the five Cloud Run services. Terraform creates each service once, with a
# placeholder revision; from then on the release owns its revisions and traffic (blue-green, checked
# switches, rollback), so Terraform must never deploy an image or move traffic behind its back.

resource "google_artifact_registry_repository" "varai" {
  count = local.env.owns_shared_infra ? 1 : 0

  location      = var.region
  repository_id = local.repository_id
  format        = "DOCKER"
  description   = "VarAI service images: <service>:<release tag>, built once and promoted from staging to production."

  docker_config {
    # A release tag always means the same bytes: what was tested in staging is what production runs.
    immutable_tags = true
  }
  # No cleanup policy: an image deleted here could not start the last known good revision in a rollback.

  depends_on = [google_project_service.apis]

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_cloud_run_v2_service" "service" {
  for_each = var.services

  name                = local.run_service_names[each.key]
  location            = var.region
  deletion_protection = true
  # Every service answers on its own URL (the release's health streak probes each candidate's tag URL
  # from the Airflow workers); only the gateway lets anyone in (iam.tf), the others need an ID token.
  ingress = "INGRESS_TRAFFIC_ALL"

  # The placeholder revision: the service account, connector and scaling the release's revisions keep.
  template {
    service_account = google_service_account.runtime.email

    scaling {
      min_instance_count = local.env.min_instances
      max_instance_count = local.env.max_instances
    }

    vpc_access {
      connector = google_vpc_access_connector.main.id
      egress    = "PRIVATE_RANGES_ONLY"
    }

    containers {
      image = local.placeholder_image
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  depends_on = [google_project_service.apis]

  lifecycle {
    # The release deploys revisions (template) and splits traffic; the client fields record who did.
    ignore_changes = [template, traffic, client, client_version]
  }
}
