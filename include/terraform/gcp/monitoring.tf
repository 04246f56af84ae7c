# Cloud Monitoring alert policies for the guide's critical alerts (service down, high error rate) and
# warning alerts (high response time, resource usage). Info events (deployments, scaling) are the
# release's own notifications. Thresholds are the guide's; where it has two (the key metrics and the
# automatic rollback triggers), critical alerts use the rollback triggers: such an alert means a rollback.

locals {
  # The guide's deployment team; a Slack channel needs an OAuth token, so it is added out of band.
  alert_email = "devops@varai.ai"

  run_services_filter = format(
    "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = one_of(%s)",
    join(", ", [for name in values(local.run_service_names) : "\"${name}\""]),
  )
  sql_filter   = "resource.type = \"cloudsql_database\" AND resource.labels.database_id = \"${var.project_id}:${google_sql_database_instance.main.name}\""
  redis_filter = "resource.type = \"redis_instance\" AND resource.labels.instance_id = \"${google_redis_instance.cache.id}\""
}

resource "google_monitoring_notification_channel" "email" {
  display_name = "VarAI ${var.environment} on-call (email)"
  type         = "email"
  labels = {
    email_address = local.alert_email
  }

  depends_on = [google_project_service.apis]
}

# Each service's health, checked through the gateway at the guide's health check endpoints.
resource "google_monitoring_uptime_check_config" "health" {
  for_each = var.services

  display_name = "${local.name} ${each.key} health"
  period       = "60s"
  timeout      = "10s"

  http_check {
    path         = each.value.health_path
    port         = 443
    use_ssl      = true
    validate_ssl = true
    accepted_response_status_codes {
      status_class = "STATUS_CLASS_2XX"
    }
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = trimprefix(google_cloud_run_v2_service.service["api-gateway"].uri, "https://")
    }
  }
}

# Critical: a service down. The guide rolls back after 3+ consecutive failed health checks: one check a
# minute failing from more than one checker region, for 3 minutes.
resource "google_monitoring_alert_policy" "service_down" {
  display_name          = "${local.name}: service down"
  severity              = "CRITICAL"
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  user_labels = {
    severity = "critical"
    alert    = "service-down"
  }

  conditions {
    display_name = "Health check failing 3 times in a row"
    condition_threshold {
      filter = format(
        "metric.type = \"monitoring.googleapis.com/uptime_check/check_passed\" AND resource.type = \"uptime_url\" AND metric.labels.check_id = one_of(%s)",
        join(", ", [for check in google_monitoring_uptime_check_config.health : "\"${check.uptime_check_id}\""]),
      )
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "180s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["metric.label.check_id"]
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    content = "A service's health endpoint failed through the gateway for 3 minutes. Roll back with the ai_discovery_rollback DAG if a release caused it."
  }
}

# Critical: a high error rate. The guide rolls back when more than 5 % of requests fail for 5+ minutes.
resource "google_monitoring_alert_policy" "high_error_rate" {
  display_name          = "${local.name}: high error rate"
  severity              = "CRITICAL"
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  user_labels = {
    severity = "critical"
    alert    = "high-error-rate"
  }

  conditions {
    display_name = "5xx responses above 5 % for 5 minutes"
    condition_threshold {
      filter             = "${local.run_services_filter} AND metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code_class = \"5xx\""
      denominator_filter = "${local.run_services_filter} AND metric.type = \"run.googleapis.com/request_count\""
      comparison         = "COMPARISON_GT"
      threshold_value    = 0.05
      duration           = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
      denominator_aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    content = "More than 5 % of a service's requests failed for 5 minutes (the guide's rollback trigger)."
  }
}

# Warning: high response time. The guide's key metric is p95 under 2 s; its window for response time
# is 10 minutes.
resource "google_monitoring_alert_policy" "high_response_time" {
  display_name          = "${local.name}: high response time"
  severity              = "WARNING"
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  user_labels = {
    severity = "warning"
    alert    = "high-response-time"
  }

  conditions {
    display_name = "p95 latency above 2 s for 10 minutes"
    condition_threshold {
      filter          = "${local.run_services_filter} AND metric.type = \"run.googleapis.com/request_latencies\""
      comparison      = "COMPARISON_GT"
      threshold_value = 2000 # milliseconds
      duration        = "600s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
        group_by_fields      = ["resource.label.service_name"]
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    content = "A service's p95 response time has been above the guide's 2 s for 10 minutes."
  }
}

# Warning: resource usage, of the services, the database and Redis. The guide gives no figure.
resource "google_monitoring_alert_policy" "resource_usage" {
  display_name          = "${local.name}: resource usage"
  severity              = "WARNING"
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  user_labels = {
    severity = "warning"
    alert    = "resource-usage"
  }

  conditions {
    display_name = "Service CPU above 80 %"
    condition_threshold {
      filter          = "${local.run_services_filter} AND metric.type = \"run.googleapis.com/container/cpu/utilizations\""
      comparison      = "COMPARISON_GT"
      threshold_value = local.resource_usage_threshold
      duration        = "600s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  conditions {
    display_name = "Service memory above 80 %"
    condition_threshold {
      filter          = "${local.run_services_filter} AND metric.type = \"run.googleapis.com/container/memory/utilizations\""
      comparison      = "COMPARISON_GT"
      threshold_value = local.resource_usage_threshold
      duration        = "600s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  conditions {
    display_name = "Database CPU above 80 %"
    condition_threshold {
      filter          = "${local.sql_filter} AND metric.type = \"cloudsql.googleapis.com/database/cpu/utilization\""
      comparison      = "COMPARISON_GT"
      threshold_value = local.resource_usage_threshold
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MEAN"
      }
    }
  }

  conditions {
    display_name = "Database disk above 80 %"
    condition_threshold {
      filter          = "${local.sql_filter} AND metric.type = \"cloudsql.googleapis.com/database/disk/utilization\""
      comparison      = "COMPARISON_GT"
      threshold_value = local.resource_usage_threshold
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MEAN"
      }
    }
  }

  conditions {
    display_name = "Redis memory above 80 %"
    condition_threshold {
      filter          = "${local.redis_filter} AND metric.type = \"redis.googleapis.com/stats/memory/usage_ratio\""
      comparison      = "COMPARISON_GT"
      threshold_value = local.resource_usage_threshold
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MEAN"
      }
    }
  }

  documentation {
    content = "A service, the database or Redis has used more than 80 % of its CPU, memory or disk for 10 minutes."
  }
}
