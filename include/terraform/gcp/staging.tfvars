# terraform apply -var-file=staging.tfvars (after terraform init -backend-config=backends/staging.gcs.tfbackend)
environment = "staging"
project_id  = "ml-datadriven-recos"
region      = "us-central1"
