# The services' data and the release ledger (Cloud SQL for PostgreSQL), and their cache (Memorystore).

resource "google_sql_database_instance" "main" {
  name             = local.name
  region           = var.region
  database_version = "POSTGRES_15"
  # Terraform never drops the database: neither this flag nor prevent_destroy may be lifted in a release.
  deletion_protection = true

  settings {
    # ENTERPRISE explicitly: newer PostgreSQL versions default to Enterprise Plus, which has no custom tiers.
    edition           = "ENTERPRISE"
    tier              = local.env.sql_tier
    availability_type = local.env.sql_availability
    disk_autoresize   = true

    # The guide: automated daily backups kept 30 days; RPO 1 h. Daily backups alone cannot meet a 1 h
    # RPO, point-in-time recovery (the write-ahead log, kept 7 days) can; the database_backup DAG adds its
    # own verified exports to the backups bucket.
    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "05:00" # UTC: after the maintenance window
      location                       = "us"    # multi-region: a region failure does not take the backups with it
      transaction_log_retention_days = 7
      backup_retention_settings {
        retained_backups = 30
        retention_unit   = "COUNT"
      }
    }

    ip_configuration {
      ipv4_enabled    = false # private IP only: reached through the VPC connector or the Cloud SQL connectors
      private_network = google_compute_network.main.id
      ssl_mode        = "ENCRYPTED_ONLY"
    }

    # Cloud SQL can only be given a weekly window: Sundays at the start of the guide's window.
    maintenance_window {
      day          = local.maintenance_day_number
      hour         = local.maintenance_hour_utc
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled = true
    }

    # What the security scan (checkov) asks of PostgreSQL's logs: connections, lock waits and checkpoints,
    # with client hostnames, and the statement that caused an error. Other statements and their durations are
    # not logged (they would carry shoppers' data): Query Insights above covers slow queries.
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
  }

  depends_on = [google_service_networking_connection.private_services]

  lifecycle {
    prevent_destroy = true
  }
}

# The databases the sandbox also has. Users are created out of band with their passwords kept in Secret
# Manager (secrets.tf): a google_sql_user would put the password into the Terraform state.
resource "google_sql_database" "app" {
  name     = "varai_app"
  instance = google_sql_database_instance.main.name
}

resource "google_sql_database" "ledger" {
  name     = "varai_ledger"
  instance = google_sql_database_instance.main.name
}

resource "google_redis_instance" "cache" {
  name               = local.name
  region             = var.region
  tier               = local.env.redis_tier
  memory_size_gb     = local.env.redis_memory_gb
  redis_version      = "REDIS_7_0"
  authorized_network = google_compute_network.main.id
  connect_mode       = "PRIVATE_SERVICE_ACCESS"
  # Memorystore generates the AUTH string; it is copied into the redis-auth secret out of band.
  auth_enabled = true

  maintenance_policy {
    weekly_maintenance_window {
      day = "SUNDAY"
      start_time {
        hours   = local.maintenance_hour_utc
        minutes = 0
        seconds = 0
        nanos   = 0
      }
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}
