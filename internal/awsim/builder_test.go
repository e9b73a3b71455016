package awsim

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// The calls the amazon-ebs builder makes for an encrypted AMI, in its
// order: find the source image, key pair and security group, run, stop,
// create the image, copy it encrypted, clean up.
func TestAmazonEBSBuilderCalls(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	ec := ec2.NewFromConfig(config(url, owner))
	src, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"},
		Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-*"}}, {Name: aws.String("state"), Values: []string{"available"}}}})
	if err != nil || len(src.Images) != 1 || !aws.ToBool(src.Images[0].Public) {
		t.Fatalf("source image: %v %+v", err, src)
	}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ec.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("packer_1")}))
	sg, err := ec.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("packer_1"), Description: aws.String("temporary")})
	must(sg, err)
	must(ec.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), CidrIp: aws.String("0.0.0.0/0")}))
	must(ec.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{aws.ToString(sg.GroupId)}}))
	run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: src.Images[0].ImageId, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		KeyName: aws.String("packer_1"), SecurityGroupIds: []string{aws.ToString(sg.GroupId)}, InstanceType: ec2types.InstanceTypeT3Micro})
	must(run, err)
	id := aws.ToString(run.Instances[0].InstanceId)
	if err := ec2.NewInstanceRunningWaiter(ec).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 10e9); err != nil {
		t.Fatalf("InstanceRunning waiter: %v", err)
	}
	vols, err := ec.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{id}}}})
	if err != nil || len(vols.Volumes) != 1 {
		t.Fatalf("DescribeVolumes: %v %+v", err, vols)
	}
	must(ec.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}))
	img, err := ec.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("golden-unencrypted")})
	must(img, err)
	if err := ec2.NewImageAvailableWaiter(ec).Wait(ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(img.ImageId)}}, 10e9); err != nil {
		t.Fatalf("ImageAvailable waiter: %v", err)
	}
	k, err := kms.NewFromConfig(config(url, owner)).CreateKey(ctx, &kms.CreateKeyInput{})
	must(k, err)
	cp, err := ec.CopyImage(ctx, &ec2.CopyImageInput{Name: aws.String("golden"), SourceImageId: img.ImageId, SourceRegion: aws.String(region), Encrypted: aws.Bool(true), KmsKeyId: k.KeyMetadata.Arn})
	must(cp, err)
	out, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(cp.ImageId)}})
	if err != nil || !aws.ToBool(out.Images[0].BlockDeviceMappings[0].Ebs.Encrypted) {
		t.Fatalf("copied image not encrypted: %v", err)
	}
	snapID := aws.ToString((func() *ec2.DescribeImagesOutput {
		o, _ := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(img.ImageId)}})
		return o
	})().Images[0].BlockDeviceMappings[0].Ebs.SnapshotId)
	must(ec.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: img.ImageId}))
	must(ec.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snapID)}))
	must(ec.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}))
	must(ec.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId}))
	must(ec.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String("packer_1")}))
}
