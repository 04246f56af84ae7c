"""Phase 1's security scan: secrets, Terraform misconfigurations and npm advisories, offline, before any change."""
