# terraform apply -var-file=production.tfvars (after terraform init -backend-config=backends/production.gcs.tfbackend)
environment = "production"
project_id  = "ml-datadriven-recos"
region      = "us-central1"
