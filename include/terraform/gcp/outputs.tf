# What the release reads after its terraform task (the environment's terraform.outputs choose which
# reach XCom). None is sensitive: the release refuses sensitive outputs by name.

output "environment" {
  description = "The environment this state holds."
  value       = var.environment
}

output "release_version" {
  description = "The release tag planned with (null for a hand run)."
  value       = var.release_version
}

output "images" {
  description = "Service name -> the image the release deploys: <region>-docker.pkg.dev/<project>/varai/<service>:<version>."
  value       = local.images
}

output "url_map" {
  description = "The gateway's route prefix -> service name, as in the sandbox module."
  value       = local.url_map
}

output "gateway_url" {
  description = "The API gateway's public URL: the one the release passed, else its Cloud Run URL."
  value       = var.gateway_url != "" ? var.gateway_url : google_cloud_run_v2_service.service["api-gateway"].uri
}

output "cloud_run_services" {
  description = "Service name -> its Cloud Run service name and URL, in var.region."
  value = {
    for name, svc in google_cloud_run_v2_service.service : name => { name = svc.name, uri = svc.uri }
  }
}

output "image_repository" {
  description = "Where the images live: <region>-docker.pkg.dev/<project>/varai."
  value       = local.image_repository
}

output "buckets" {
  description = "The buckets the release writes: the widget CDN, database backups, DR drill reports."
  value = {
    cdn     = google_storage_bucket.cdn.name
    backups = google_storage_bucket.backups.name
    reports = google_storage_bucket.reports.name
  }
}

output "cdn" {
  description = "The widget CDN: its domain (point its DNS A record at the address) and the load balancer's address."
  value = {
    domain     = local.env.cdn_domain
    ip_address = google_compute_global_address.cdn.address
  }
}

output "sql_connection_name" {
  description = "The Cloud SQL instance's connection name (project:region:instance), for the Cloud SQL connectors."
  value       = google_sql_database_instance.main.connection_name
}

output "sql_instance" {
  description = "The Cloud SQL instance's name and private address, and its databases."
  value = {
    name       = google_sql_database_instance.main.name
    private_ip = google_sql_database_instance.main.private_ip_address
    databases  = [google_sql_database.app.name, google_sql_database.ledger.name]
  }
}

output "redis" {
  description = "Memorystore's private address (its AUTH string is in the redis-auth secret, never here)."
  value = {
    host = google_redis_instance.cache.host
    port = google_redis_instance.cache.port
  }
}

output "vpc_connector" {
  description = "The Serverless VPC Access connector every revision uses."
  value       = google_vpc_access_connector.main.id
}

output "deploy_service_account" {
  description = "The email of the service account the release runs as."
  value       = google_service_account.deploy.email
}

output "runtime_service_account" {
  description = "The email of the service account the services run as."
  value       = google_service_account.runtime.email
}

output "secrets" {
  description = "Secret name -> Secret Manager secret id (values are set out of band)."
  value       = { for name, secret in google_secret_manager_secret.secret : name => secret.secret_id }
}
