# Only variables and other locals here (no resources): tests evaluate this file with the real terraform.
locals {
  # What differs between the environments. Chosen by var.environment rather than by variables so a
  # release (which passes only the release variables) and a hand run with <environment>.tfvars plan
  # the same infrastructure.
  environments = {
    staging = {
      sql_tier          = "db-custom-1-3840"
      sql_availability  = "ZONAL"
      redis_tier        = "BASIC"
      redis_memory_gb   = 1
      min_instances     = 0
      max_instances     = 10
      connector_cidr    = "10.8.0.0/28"
      cdn_domain        = "cdn.staging.varai.ai"
      owns_shared_infra = false
    }
    production = {
      sql_tier         = "db-custom-2-7680"
      sql_availability = "REGIONAL" # a standby in another zone: a zone failure is a failover, not a restore
      redis_tier       = "STANDARD_HA"
      redis_memory_gb  = 5
      min_instances    = 1 # no cold starts in front of shoppers
      max_instances    = 100
      connector_cidr   = "10.8.0.16/28"
      cdn_domain       = "cdn.varai.ai" # the guide's widget URLs
      # The `varai` image repository is one per project and both environments pull from it (an image is
      # built once and promoted): one state must own it, and production's is the one never torn down.
      owns_shared_infra = true
    }
  }
  env = local.environments[var.environment]

  name = "varai-${var.environment}"

  # Images are <region>-docker.pkg.dev/<project>/varai/<service>:<version>; the release deploys them
  # (blue-green), Terraform only says where they live.
  repository_id    = "varai"
  image_repository = "${var.region}-docker.pkg.dev/${var.project_id}/${local.repository_id}"
  # A hand run (no release_version) has no images to name.
  images = { for name, _ in var.services : name => "${local.image_repository}/${name}:${var.release_version}" if var.release_version != null }

  # Cloud Run service names carry the environment: staging and production share the project and region.
  run_service_names = { for name, _ in var.services : name => "${name}-${var.environment}" }
  backend_services  = { for name, _ in var.services : name => local.run_service_names[name] if name != "api-gateway" }
  # The gateway's route prefix -> service name, as the sandbox module has it.
  url_map = { for name, svc in var.services : (svc.prefix == "" ? "/" : svc.prefix) => name }

  # Google's public sample container: the revision a service is created with, until the first release.
  placeholder_image = "us-docker.pkg.dev/cloudrun/container/hello"

  # The guide's maintenance window: Sundays (the first of the month) 02:00-04:00 UTC.
  maintenance_day_number = 7 # Cloud SQL counts Monday as 1
  maintenance_hour_utc   = 2

  # Not in the guide: warn when a resource runs at 80 % of what it has.
  resource_usage_threshold = 0.8

  apis = [
    "artifactregistry.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "monitoring.googleapis.com",
    "redis.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "vpcaccess.googleapis.com",
  ]
}
