"""What the security-scan tests plant: a fresh AWS-shaped key (never a real one, never in a file of the
repository) and a Terraform module with a publicly readable bucket."""

from __future__ import annotations

import secrets
import string
from pathlib import Path

PUBLIC_BUCKET = """
resource "google_storage_bucket" "open" {
  name     = "open-bucket"
  location = "US"
}

resource "google_storage_bucket_iam_member" "everyone" {
  bucket = google_storage_bucket.open.name
  role   = "roles/storage.objectViewer"
  member = "allUsers"
}
"""


def aws_key() -> str:
    return "AKIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))


def plant(path: Path, value: str) -> int:
    """Adds ``var awsKey = '<value>';`` at the end of a source file; returns its line number."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, f"var awsKey = '{value}';"]) + "\n")
    return len(lines) + 1
