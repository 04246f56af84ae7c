# Two identities per environment, each with only what it uses:
#   deploy  - the release and the operations DAGs on the Airflow workers: deploys revisions, moves
#             traffic, publishes widgets, backs up and restores the database, reads metrics;
#   runtime - what the services run as.
# Terraform itself (this module) runs as a separate, more privileged identity made out of band: the
# deploy account cannot create networks, databases or IAM bindings, and must not be able to.

resource "google_service_account" "deploy" {
  account_id   = "varai-deploy-${var.environment}"
  display_name = "VarAI ${var.environment} release (Airflow)"

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "runtime" {
  account_id   = "varai-run-${var.environment}"
  display_name = "VarAI ${var.environment} services (Cloud Run)"

  depends_on = [google_project_service.apis]
}

locals {
  deploy_member  = "serviceAccount:${google_service_account.deploy.email}"
  runtime_member = "serviceAccount:${google_service_account.runtime.email}"

  deploy_project_roles = [
    "roles/run.developer",     # deploy revisions and split traffic; no IAM changes (run.admin could)
    "roles/cloudsql.client",   # the release ledger, through the Cloud SQL connectors
    "roles/monitoring.viewer", # rollback analysis reads the services' metrics
  ]
  runtime_project_roles = [
    "roles/cloudsql.client",         # varai_app
    "roles/aiplatform.user",         # Vertex AI (the guide's VERTEX_AI_PROJECT is this project)
    "roles/monitoring.metricWriter", # the services' own metrics
    "roles/cloudtrace.agent",        # request traces
  ]
}

resource "google_project_iam_member" "deploy" {
  for_each = toset(local.deploy_project_roles)

  project = var.project_id
  role    = each.value
  member  = local.deploy_member
}

resource "google_project_iam_member" "runtime" {
  for_each = toset(local.runtime_project_roles)

  project = var.project_id
  role    = each.value
  member  = local.runtime_member
}

# The database_backup and dr_drill DAGs export and import through the Cloud SQL Admin API (into scratch
# databases they create and drop): exactly these permissions, rather than roles/cloudsql.admin.
resource "google_project_iam_custom_role" "database_backup" {
  role_id     = "varaiDatabaseBackup${title(var.environment)}"
  title       = "VarAI ${var.environment} database backup"
  description = "Export, verify by import into a scratch database, and restore the VarAI Cloud SQL databases."
  permissions = [
    "cloudsql.databases.create",
    "cloudsql.databases.delete",
    "cloudsql.databases.get",
    "cloudsql.instances.export",
    "cloudsql.instances.get",
    "cloudsql.instances.import",
    "cloudsql.operations.get",
    "cloudsql.operations.list",
  ]
}

resource "google_project_iam_member" "deploy_database_backup" {
  project = var.project_id
  role    = google_project_iam_custom_role.database_backup.id
  member  = local.deploy_member
}

# A revision runs as the runtime account, so whoever deploys one must be allowed to act as it (and as
# nothing else: this is on the one account, not the project).
resource "google_service_account_iam_member" "deploy_acts_as_runtime" {
  service_account_id = google_service_account.runtime.name
  role               = "roles/iam.serviceAccountUser"
  member             = local.deploy_member
}

# The release deploys images CI has pushed; it never pushes one itself.
resource "google_artifact_registry_repository_iam_member" "deploy_reads_images" {
  location   = var.region
  repository = local.repository_id
  role       = "roles/artifactregistry.reader"
  member     = local.deploy_member

  depends_on = [google_artifact_registry_repository.varai]
}

# Objects, not buckets: the release publishes widgets, writes and prunes backups, files drill reports.
resource "google_storage_bucket_iam_member" "deploy_objects" {
  for_each = {
    cdn     = google_storage_bucket.cdn.name
    backups = google_storage_bucket.backups.name
    reports = google_storage_bucket.reports.name
  }

  bucket = each.value
  role   = "roles/storage.objectAdmin"
  member = local.deploy_member
}

# A Cloud SQL export is written, and an import read, by the instance's own service account.
resource "google_storage_bucket_iam_member" "sql_instance_backups" {
  bucket = google_storage_bucket.backups.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_sql_database_instance.main.service_account_email_address}"
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = local.secrets

  secret_id = google_secret_manager_secret.secret[each.key].id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value == "runtime" ? local.runtime_member : local.deploy_member
}

# Anyone may call the gateway (it checks the per-merchant API keys itself); the other services only
# take calls from the gateway and from the release's health probes.
resource "google_cloud_run_v2_service_iam_member" "gateway_public" {
  location = var.region
  name     = google_cloud_run_v2_service.service["api-gateway"].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_v2_service_iam_member" "backend_invokers" {
  for_each = {
    for pair in setproduct(keys(local.backend_services), ["runtime", "deploy"]) :
    "${pair[0]}/${pair[1]}" => { service = pair[0], member = pair[1] == "runtime" ? local.runtime_member : local.deploy_member }
  }

  location = var.region
  name     = google_cloud_run_v2_service.service[each.value.service].name
  role     = "roles/run.invoker"
  member   = each.value.member
}
