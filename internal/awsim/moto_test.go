package awsim

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/amigate/packer-plugin-amigate/internal/motoserver"
)

// Where moto and the simulator differ on the calls compared below, and why
// (moto 5.2.1):
//
//	| call                     | moto                                 | simulator, as AWS                     |
//	|--------------------------|--------------------------------------|---------------------------------------|
//	| RegisterImage/DescribeImages | drops Encrypted on the mapping   | keeps the snapshot's encryption       |
//	| RegisterImage            | maps a new snapshot id, not the given one | the given snapshot                |
//	| DescribeSnapshots        | no KmsKeyId                          | the volume's key ARN                  |
//	| CreateGrant (same Name)  | a new GrantId each time              | the same GrantId (idempotent by Name) |
//	| account                  | 123456789012 whatever the key        | the SIM<account> access key's account |
//
// The assertions below hold for both, so they check the response shapes
// the Go SDK parses, not the behaviour only the simulator models.

// singleAccountShapes runs the calls both servers implement and checks
// what the Go SDK parses from them.
func singleAccountShapes(t *testing.T, url string, moto bool) {
	ctx := context.Background()
	cfg := config(url, owner)
	who, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || len(aws.ToString(who.Account)) != 12 || !strings.HasPrefix(aws.ToString(who.Arn), "arn:aws:") {
		t.Fatalf("GetCallerIdentity: %v %+v", err, who)
	}
	account := aws.ToString(who.Account)

	kc := kms.NewFromConfig(cfg)
	k, err := kc.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("shape")})
	if err != nil {
		t.Fatal(err)
	}
	md := k.KeyMetadata
	if md.KeyManager != kmstypes.KeyManagerTypeCustomer || md.KeyState != kmstypes.KeyStateEnabled || aws.ToString(md.AWSAccountId) != account ||
		!strings.HasPrefix(aws.ToString(md.Arn), "arn:aws:kms:us-east-1:"+account+":key/") || md.CreationDate == nil {
		t.Errorf("CreateKey metadata: %+v", md)
	}
	d, err := kc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: md.Arn})
	if err != nil || aws.ToString(d.KeyMetadata.KeyId) != aws.ToString(md.KeyId) {
		t.Errorf("DescribeKey: %v", err)
	}
	pol, err := kc.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: md.KeyId, PolicyName: aws.String("default")})
	if err != nil || !strings.Contains(aws.ToString(pol.Policy), "arn:aws:iam::"+account+":root") {
		t.Errorf("GetKeyPolicy: %v %s", err, aws.ToString(pol.Policy))
	}
	grantee := "arn:aws:iam::" + account + ":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
	g, err := kc.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: md.KeyId, GranteePrincipal: aws.String(grantee), Name: aws.String("shape"),
		Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt, kmstypes.GrantOperationCreateGrant}})
	if err != nil || aws.ToString(g.GrantId) == "" || aws.ToString(g.GrantToken) == "" {
		t.Fatalf("CreateGrant: %v %+v", err, g)
	}
	list, err := kc.ListGrants(ctx, &kms.ListGrantsInput{KeyId: md.KeyId})
	if err != nil || len(list.Grants) != 1 || aws.ToString(list.Grants[0].GranteePrincipal) != grantee || len(list.Grants[0].Operations) != 2 || aws.ToString(list.Grants[0].Name) != "shape" {
		t.Errorf("ListGrants: %v %+v", err, list)
	}
	if _, err := kc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("arn:aws:kms:us-east-1:" + account + ":key/00000000-0000-0000-0000-000000000000")}); apiCode(err) != "NotFoundException" {
		t.Errorf("DescribeKey of a missing key: %v", err)
	}

	ec := ec2.NewFromConfig(cfg)
	vol, err := ec.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(8), Encrypted: aws.Bool(true), KmsKeyId: md.Arn})
	if err != nil || !aws.ToBool(vol.Encrypted) || !strings.HasPrefix(aws.ToString(vol.VolumeId), "vol-") {
		t.Fatalf("CreateVolume: %v %+v", err, vol)
	}
	snap, err := ec.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
	if err != nil || !strings.HasPrefix(aws.ToString(snap.SnapshotId), "snap-") || !aws.ToBool(snap.Encrypted) {
		t.Fatalf("CreateSnapshot: %v %+v", err, snap)
	}
	snaps, err := ec.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(snap.SnapshotId)}})
	if err != nil || len(snaps.Snapshots) != 1 || (!moto && aws.ToString(snaps.Snapshots[0].KmsKeyId) != aws.ToString(md.Arn)) {
		t.Errorf("DescribeSnapshots: %v %+v", err, snaps)
	}
	img, err := ec.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("shape"), RootDeviceName: aws.String("/dev/xvda"),
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &ec2types.EbsBlockDevice{SnapshotId: snap.SnapshotId}}}})
	if err != nil || !strings.HasPrefix(aws.ToString(img.ImageId), "ami-") {
		t.Fatalf("RegisterImage: %v", err)
	}
	imgs, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(img.ImageId)}})
	if err != nil || len(imgs.Images) != 1 || aws.ToString(imgs.Images[0].Name) != "shape" || aws.ToString(imgs.Images[0].OwnerId) != account ||
		(!moto && aws.ToString(imgs.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId) != aws.ToString(snap.SnapshotId)) {
		t.Errorf("DescribeImages: %v %+v", err, imgs)
	}
	if _, err := ec.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: img.ImageId,
		LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{{UserId: aws.String(target)}}}}); err != nil {
		t.Fatal(err)
	}
	attr, err := ec.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: img.ImageId, Attribute: ec2types.ImageAttributeNameLaunchPermission})
	if err != nil || len(attr.LaunchPermissions) != 1 || aws.ToString(attr.LaunchPermissions[0].UserId) != target {
		t.Errorf("DescribeImageAttribute: %v %+v", err, attr)
	}
	if _, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{"ami-0123456789abcdef0"}}); apiCode(err) != "InvalidAMIID.NotFound" {
		t.Errorf("DescribeImages of a missing image: %v", err)
	}
}

func TestShapesAgainstSimulator(t *testing.T) {
	_, url := startSim(t)
	singleAccountShapes(t, url, false)
}

func TestShapesAgainstMoto(t *testing.T) {
	singleAccountShapes(t, motoserver.Start(t), true)
}
