#!/usr/bin/env bash
# End to end with real Packer: the amazon-ebs builder bakes an encrypted AMI
# against the simulated AWS, started here with example/sim-world.json and
# stopped on exit; the amigate-preflight provisioner checks the key before
# the snapshot, and the amigate post-processor gates the AMI for the target
# account. Fails unless the AMI's snapshot is encrypted with the world's
# customer managed key, the gate's report is green, and the target's Auto
# Scaling group can then launch the new AMI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-tools.sh" --packer
bin="$root/.tools/bin"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint="http://127.0.0.1:$port"

go build -o "$work/amigate" "$root/cmd/amigate"
(cd "$root" && go build -o "$work/packer-plugin-amigate" .)
(cd "$work" && "$bin/packer-sdc" plugin-check packer-plugin-amigate) # loads as Packer loads it
"$work/amigate" sim --listen "127.0.0.1:$port" --world "$root/example/sim-world.json" >"$work/sim.log" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null; wait $sim 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -fs "$endpoint/_sim/calls" >/dev/null && break; sleep 0.1; done

export PACKER_PLUGIN_PATH="$work/plugins" CHECKPOINT_DISABLE=1 AWS_ENDPOINT_URL="$endpoint"
"$bin/packer" plugins install --path "$bin/packer-plugin-amazon" github.com/hashicorp/amazon >/dev/null
"$bin/packer" plugins install --path "$work/packer-plugin-amigate" github.com/amigate/amigate >/dev/null
"$bin/packer" build -color=false -var "endpoint=$endpoint" -var "report_file=$work/report.json" "$root/example/packer/golden.pkr.hcl"

python3 - "$endpoint" "$work/report.json" <<'PY'
import json, sys, urllib.request
import boto3
endpoint, report_file = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="SIM444455556666", aws_secret_access_key="x")
ec2 = boto3.client("ec2", **kw)
images = [i for i in ec2.describe_images(Owners=["self"])["Images"] if i["Name"].startswith("golden-")]
assert len(images) == 1, "want one golden AMI, got %d" % len(images)
snap = images[0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
got = ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0].get("KmsKeyId")
want = boto3.client("kms", **kw).describe_key(KeyId="alias/golden-ami")["KeyMetadata"]["Arn"]
assert got == want, "snapshot key %s, want %s" % (got, want)
failed = [c for c in json.load(urllib.request.urlopen(endpoint + "/_sim/calls")) if c["status"] != 200]
assert not failed, "failed calls: %r" % failed

report = json.load(open(report_file))
assert report["ok"], "amigate report is not ok: %r" % report["targets"]
grants = report["changes"]["grants"]
assert len(grants) == 1 and grants[0]["applied"], "want one grant created: %r" % grants
launches = report["launches"]
assert len(launches) == 1 and launches[0]["ok"], "want the test launch green: %r" % launches

# What the user wanted: the target's Auto Scaling group launches the new AMI.
tkw = dict(kw, aws_access_key_id="SIM111122223333")
lt = boto3.client("ec2", **tkw).create_launch_template(LaunchTemplateName="e2e",
    LaunchTemplateData={"ImageId": images[0]["ImageId"], "InstanceType": "t3.micro"})["LaunchTemplate"]
asg = boto3.client("autoscaling", **tkw)
asg.create_auto_scaling_group(AutoScalingGroupName="e2e", MinSize=0, MaxSize=1, DesiredCapacity=1,
    AvailabilityZones=["us-east-1a"], LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"]})
instances = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["e2e"])["AutoScalingGroups"][0]["Instances"]
assert [i["LifecycleState"] for i in instances] == ["InService"], "target cannot launch the gated AMI: %r" % (
    asg.describe_scaling_activities(AutoScalingGroupName="e2e")["Activities"],)
groups = [g["AutoScalingGroupName"] for g in asg.describe_auto_scaling_groups()["AutoScalingGroups"]]
assert not [g for g in groups if g.startswith("amigate-")], "the test launch left groups behind: %r" % groups
print("e2e ok: %s encrypted with %s, gated and test-launched by amigate, launched by the target's Auto Scaling group" % (images[0]["ImageId"], want))
PY
