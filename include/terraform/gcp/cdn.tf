# The buckets the release writes (the widget CDN, database backups, DR drill reports) and the CDN in
# front of the widget bucket: an external HTTPS load balancer with Cloud CDN on a backend bucket.

resource "google_storage_bucket" "cdn" {
  name = "${var.project_id}-${var.environment}-widgets"
  # The guide: assets replicated across multiple regions.
  location                    = "US"
  uniform_bucket_level_access = true
  force_destroy               = false

  # Storefronts load the widget with an integrity attribute (crossorigin="anonymous"): that needs CORS.
  cors {
    origin          = ["*"]
    method          = ["GET", "HEAD"]
    response_header = ["Content-Type"]
    max_age_seconds = 3600
  }

  depends_on = [google_project_service.apis]
}

# Cloud CDN serves a backend bucket's objects only if anyone may read them: the widget is public.
resource "google_storage_bucket_iam_member" "cdn_public" {
  bucket = google_storage_bucket.cdn.name
  role   = "roles/storage.objectViewer"
  member = "allUsers"
}

resource "google_storage_bucket" "backups" {
  name                        = "${var.project_id}-${var.environment}-backups"
  location                    = "US" # survives the loss of the region the database runs in
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Retention is the database_backup DAG's (backups.keep_*); versions only guard against a mistaken
  # overwrite or delete, for a week.
  versioning {
    enabled = true
  }
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "reports" {
  name                        = "${var.project_id}-${var.environment}-reports"
  location                    = "US"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # A drill report is evidence: a mistaken overwrite or delete keeps the earlier version.
  versioning {
    enabled = true
  }

  depends_on = [google_project_service.apis]
}

resource "google_compute_backend_bucket" "cdn" {
  name        = "${local.name}-widgets"
  bucket_name = google_storage_bucket.cdn.name
  enable_cdn  = true
  # The guide's Brotli compression (and gzip), chosen per request.
  compression_mode = "AUTOMATIC"

  cdn_policy {
    # The release sets Cache-Control on every object (a year for versioned files, 300 s for latest/),
    # and CACHE_ALL_STATIC honours it; default_ttl only covers an object without one.
    cache_mode  = "CACHE_ALL_STATIC"
    default_ttl = 300
    client_ttl  = 31536000
    max_ttl     = 31536000
    # A 404 for a version probed before it was published must not outlive the publication.
    negative_caching  = false
    serve_while_stale = 86400
  }
}

resource "google_compute_global_address" "cdn" {
  name = "${local.name}-cdn"

  depends_on = [google_project_service.apis]
}

resource "google_compute_managed_ssl_certificate" "cdn" {
  name = "${local.name}-cdn"

  managed {
    domains = [local.env.cdn_domain]
  }
}

# TLS 1.2 at least; TLS 1.3 is negotiated whenever the browser offers it.
resource "google_compute_ssl_policy" "cdn" {
  name            = "${local.name}-cdn"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_url_map" "cdn" {
  name            = "${local.name}-cdn"
  default_service = google_compute_backend_bucket.cdn.id
}

resource "google_compute_target_https_proxy" "cdn" {
  name             = "${local.name}-cdn"
  url_map          = google_compute_url_map.cdn.id
  ssl_certificates = [google_compute_managed_ssl_certificate.cdn.id]
  ssl_policy       = google_compute_ssl_policy.cdn.id
}

resource "google_compute_global_forwarding_rule" "cdn_https" {
  name                  = "${local.name}-cdn-https"
  target                = google_compute_target_https_proxy.cdn.id
  ip_address            = google_compute_global_address.cdn.id
  port_range            = "443"
  load_balancing_scheme = "EXTERNAL_MANAGED"
}

# Plain HTTP only redirects to HTTPS.
resource "google_compute_url_map" "cdn_redirect" {
  name = "${local.name}-cdn-redirect"

  default_url_redirect {
    https_redirect         = true
    strip_query            = false
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
  }
}

resource "google_compute_target_http_proxy" "cdn_redirect" {
  name    = "${local.name}-cdn-redirect"
  url_map = google_compute_url_map.cdn_redirect.id
}

resource "google_compute_global_forwarding_rule" "cdn_http" {
  name                  = "${local.name}-cdn-http"
  target                = google_compute_target_http_proxy.cdn_redirect.id
  ip_address            = google_compute_global_address.cdn.id
  port_range            = "80"
  load_balancing_scheme = "EXTERNAL_MANAGED"
}
