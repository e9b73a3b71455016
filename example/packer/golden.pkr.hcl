# Bakes an AMI encrypted with the customer managed key alias/golden-ami of
# account 444455556666 — against the simulated AWS by default
# (scripts/packer-e2e.sh starts it with example/sim-world.json).

variable "endpoint" {
  type    = string
  default = "http://127.0.0.1:4566"
}

source "amazon-ebs" "golden" {
  region = "us-east-1"
  source_ami_filter {
    filters     = { name = "al2023-ami-*" }
    owners      = ["amazon"]
    most_recent = true
  }
  instance_type              = "t3.micro"
  ami_name                   = "golden-${uuidv4()}"
  communicator               = "none"
  skip_credential_validation = true
  skip_region_validation     = true
  skip_metadata_api_check    = true
  custom_endpoint_ec2        = var.endpoint
  access_key                 = "SIM444455556666"
  secret_key                 = "any"
  encrypt_boot               = true
  kms_key_id                 = "alias/golden-ami"
}

build {
  sources = ["source.amazon-ebs.golden"]
}
