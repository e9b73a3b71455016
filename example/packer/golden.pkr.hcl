# Bakes an AMI encrypted with the customer managed key alias/golden-ami of
# account 444455556666, then gates it with amigate for the target account
# 111122223333 and its Auto Scaling group "web" — against the simulated AWS
# by default (scripts/packer-e2e.sh starts it with example/sim-world.json).

variable "endpoint" {
  type    = string
  default = "http://127.0.0.1:4566"
}

variable "report_file" {
  type    = string
  default = "amigate-report.json"
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

  # Before the snapshot: fail in seconds if the key can never be shared.
  provisioner "amigate-preflight" {
    region     = "us-east-1"
    access_key = "SIM444455556666"
    secret_key = "any"
    kms_key_id = "alias/golden-ami"
    target {
      account_id = "111122223333"
    }
  }

  # The gate: the build is green only if the target can launch the image.
  # AWS_ENDPOINT_URL (set by the e2e script) points it at the simulator.
  post-processor "amigate" {
    region     = "us-east-1"
    access_key = "SIM444455556666"
    secret_key = "any"

    target {
      account_id         = "111122223333"
      role_arn           = "arn:aws:iam::111122223333:role/amigate"
      autoscaling_groups = ["web"]
    }

    # Prove it: clone the target's group with the new AMI, wait for an
    # instance in service, delete the clone.
    test_launch = "asg"
    report_file = var.report_file
  }
}
