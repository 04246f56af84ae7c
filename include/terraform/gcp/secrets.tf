# Secret Manager secrets, names only. Their values are added out of band (gcloud secrets versions add),
# never here: a secret version declared in Terraform would keep the value in the state and in git.

locals {
  # Secret name (after the environment's prefix) -> who reads it: the services at run time, or the
  # release (the Airflow workers, as the deploy service account).
  secrets = {
    "app-db-password"    = "runtime" # the services' PostgreSQL user on varai_app
    "redis-auth"         = "runtime" # Memorystore's AUTH string, copied from the instance
    "gateway-api-keys"   = "runtime" # the per-merchant API keys the gateway checks
    "ledger-db-password" = "deploy"  # the release ledger's PostgreSQL user on varai_ledger
  }
}

resource "google_secret_manager_secret" "secret" {
  for_each = local.secrets

  secret_id = "${local.name}-${each.key}"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}
