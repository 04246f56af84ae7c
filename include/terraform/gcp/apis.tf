# Both environments' states enable the same APIs; neither may disable them for the other.
resource "google_project_service" "apis" {
  for_each = toset(local.apis)

  service            = each.value
  disable_on_destroy = false
}
