# A VPC per environment: Cloud SQL and Redis have private addresses only, and the services reach
# them through the Serverless VPC Access connector.

resource "google_compute_network" "main" {
  name                    = local.name
  auto_create_subnetworks = false

  depends_on = [google_project_service.apis]
}

# Private services access: the peering Cloud SQL (private IP) and Memorystore (PRIVATE_SERVICE_ACCESS)
# take their addresses from.
resource "google_compute_global_address" "private_services" {
  name          = "${local.name}-private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = google_compute_network.main.id
}

resource "google_service_networking_connection" "private_services" {
  network                 = google_compute_network.main.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]
}

resource "google_vpc_access_connector" "main" {
  name          = local.name
  region        = var.region
  network       = google_compute_network.main.name
  ip_cidr_range = local.env.connector_cidr
  machine_type  = "e2-micro"
  min_instances = 2
  max_instances = 3
}
