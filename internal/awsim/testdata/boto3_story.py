"""The encrypted-AMI story driven with boto3 against the simulator.

Usage: boto3_story.py ENDPOINT. Exits non-zero, with the reason, when a
response does not parse or says something AWS would not.
"""
import json
import sys

import boto3
from botocore.exceptions import ClientError

endpoint = sys.argv[1]


def client(service, account):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="SIM" + account, aws_secret_access_key="any")


def check(cond, what):
    if not cond:
        sys.exit("boto3 story: " + what)


owner, target = "444455556666", "111122223333"
check(client("sts", owner).get_caller_identity()["Account"] == owner, "GetCallerIdentity account")

kms = client("kms", owner)
key = kms.create_key(Description="golden")["KeyMetadata"]
check(key["KeyManager"] == "CUSTOMER" and key["KeyState"] == "Enabled", "CreateKey metadata")
policy = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
check(policy["Statement"][0]["Principal"]["AWS"] == "arn:aws:iam::%s:root" % owner, "default key policy")

ec2 = client("ec2", owner)
vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8, Encrypted=True, KmsKeyId=key["Arn"])
snap = ec2.create_snapshot(VolumeId=vol["VolumeId"])
check(snap["Encrypted"] and snap["KmsKeyId"] == key["Arn"], "CreateSnapshot encryption")
ami = ec2.register_image(Name="golden", RootDeviceName="/dev/xvda", BlockDeviceMappings=[
    {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap["SnapshotId"]}}])["ImageId"]
ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"UserId": target}]})
perms = ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")["LaunchPermissions"]
check(perms == [{"UserId": target}], "DescribeImageAttribute %r" % perms)

t_ec2 = client("ec2", target)
image = t_ec2.describe_images(ImageIds=[ami])["Images"][0]
check(image["BlockDeviceMappings"][0]["Ebs"]["Encrypted"], "shared image is encrypted")
iid = t_ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
inst = t_ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
check(inst["State"]["Name"] == "terminated", "launch state %s" % inst["State"]["Name"])
check(inst["StateReason"]["Message"] == "Client.InternalError: Client error on launch", "state reason %r" % inst["StateReason"])

events = client("cloudtrail", target).lookup_events(
    LookupAttributes=[{"AttributeKey": "EventSource", "AttributeValue": "kms.amazonaws.com"}])["Events"]
check(events and json.loads(events[0]["CloudTrailEvent"])["errorCode"] == "AccessDenied", "CloudTrail AccessDenied event")

# The first write-up: the key policy lets the target use the key, yet its
# Auto Scaling group fails until the service-linked role has a grant.
kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps({
    "Version": "2012-10-17", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root" % owner}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "Allow use of the key", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::%s:root" % target]},
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"], "Resource": "*"},
        {"Sid": "Allow attachment of persistent resources", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::%s:root" % target]},
         "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*"}]}))
lt = t_ec2.create_launch_template(LaunchTemplateName="web", LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.micro"})
asg = client("autoscaling", target)
asg.create_auto_scaling_group(AutoScalingGroupName="web", MinSize=0, MaxSize=1, DesiredCapacity=1, AvailabilityZones=["us-east-1a"],
                              LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplate"]["LaunchTemplateId"]})
activity = asg.describe_scaling_activities(AutoScalingGroupName="web")["Activities"][0]
check(activity["StatusCode"] == "Failed" and "Client.InternalError" in activity["StatusMessage"], "scaling activity %r" % activity)
denied = [json.loads(e["CloudTrailEvent"]) for e in client("cloudtrail", target).lookup_events(
    LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": "AutoScaling"}])["Events"]]
check(denied and denied[0]["userIdentity"]["sessionContext"]["sessionIssuer"]["userName"] == "AWSServiceRoleForAutoScaling",
      "CloudTrail names AWSServiceRoleForAutoScaling")
slr = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]["ServiceLinkedRoleARN"]
client("kms", target).create_grant(KeyId=key["Arn"], GranteePrincipal=slr,
                                   Operations=["Decrypt", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo", "CreateGrant"])
group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
check([i["LifecycleState"] for i in group["Instances"]] == ["InService"], "after the grant: %r" % group["Instances"])

try:
    client("ec2", "999988887777").describe_images(ImageIds=[ami])
    check(False, "a third account sees the image")
except ClientError as e:
    check(e.response["Error"]["Code"] == "InvalidAMIID.NotFound", "error code %s" % e.response["Error"]["Code"])
# A test launch's calls, in an account of their own: tags at creation,
# filters by tag, an idempotent launch, versions deleted one by one.
acct = "222233334444"
l_ec2, l_asg = client("ec2", acct), client("autoscaling", acct)
public = l_ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
run_tags = [{"Key": "amigate:run-id", "Value": "b1"}]
tmpl = l_ec2.create_launch_template(LaunchTemplateName="lt-web", LaunchTemplateData={"ImageId": public, "InstanceType": "t3.micro"},
                                    TagSpecifications=[{"ResourceType": "launch-template", "Tags": run_tags}])["LaunchTemplate"]
check(tmpl["Tags"] == run_tags, "CreateLaunchTemplate tags %r" % tmpl.get("Tags"))
found = l_ec2.describe_launch_templates(Filters=[{"Name": "tag:amigate:run-id", "Values": ["b1"]}])["LaunchTemplates"]
check([t["LaunchTemplateId"] for t in found] == [tmpl["LaunchTemplateId"]], "DescribeLaunchTemplates by tag %r" % found)
v2 = l_ec2.create_launch_template_version(LaunchTemplateId=tmpl["LaunchTemplateId"], SourceVersion="1", VersionDescription="b1",
                                          LaunchTemplateData={"ImageId": public})["LaunchTemplateVersion"]
check(v2["VersionNumber"] == 2 and v2["VersionDescription"] == "b1" and v2["LaunchTemplateData"]["InstanceType"] == "t3.micro",
      "CreateLaunchTemplateVersion %r" % v2)
l_asg.create_auto_scaling_group(AutoScalingGroupName="b1", MinSize=0, MaxSize=1, DesiredCapacity=1, AvailabilityZones=["us-east-1a"],
                                LaunchTemplate={"LaunchTemplateId": tmpl["LaunchTemplateId"], "Version": "2"},
                                Tags=[{"Key": "amigate:run-id", "Value": "b1", "PropagateAtLaunch": True}])
groups = l_asg.describe_auto_scaling_groups(Filters=[{"Name": "tag-key", "Values": ["amigate:run-id"]}])["AutoScalingGroups"]
check(len(groups) == 1 and groups[0]["Tags"][0]["ResourceType"] == "auto-scaling-group" and groups[0]["Tags"][0]["PropagateAtLaunch"],
      "DescribeAutoScalingGroups by tag %r" % groups)
tagged = l_ec2.describe_instances(Filters=[{"Name": "tag:amigate:run-id", "Values": ["b1"]}])["Reservations"]
check(len(tagged) == 1 and tagged[0]["Instances"][0]["State"]["Name"] == "running", "the group's instance in EC2 %r" % tagged)
l_asg.delete_auto_scaling_group(AutoScalingGroupName="b1", ForceDelete=True)
first = l_ec2.run_instances(ImageId=public, MinCount=1, MaxCount=1, ClientToken="b1-token", TagSpecifications=[{"ResourceType": "instance", "Tags": run_tags}])
again = l_ec2.run_instances(ImageId=public, MinCount=1, MaxCount=1, ClientToken="b1-token", TagSpecifications=[{"ResourceType": "instance", "Tags": run_tags}])
check(first["ReservationId"] == again["ReservationId"] and first["Instances"][0]["InstanceId"] == again["Instances"][0]["InstanceId"],
      "RunInstances with the same client token")
deleted = l_ec2.delete_launch_template_versions(LaunchTemplateId=tmpl["LaunchTemplateId"], Versions=["1", "2"])
check([v["VersionNumber"] for v in deleted["SuccessfullyDeletedLaunchTemplateVersions"]] == [2] and
      [v["VersionNumber"] for v in deleted["UnsuccessfullyDeletedLaunchTemplateVersions"]] == [1],
      "DeleteLaunchTemplateVersions %r" % deleted)
print("ok")
