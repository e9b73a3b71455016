package awsim

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// bakeImage makes, in the owner account, an AMI whose snapshot is
// encrypted with a new customer managed key, shared with the target.
func bakeImage(t *testing.T, url string) (keyARN, amiID string) { return bakeImageB(t, url) }

func bakeImageB(t testing.TB, url string) (keyARN, amiID string) {
	t.Helper()
	ctx := context.Background()
	kc := kms.NewFromConfig(config(url, owner))
	k, err := kc.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	keyARN = aws.ToString(k.KeyMetadata.Arn)
	ec := ec2.NewFromConfig(config(url, owner))
	vol, err := ec.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(8), Encrypted: aws.Bool(true), KmsKeyId: aws.String(keyARN)})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := ec.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(snap.Encrypted) || aws.ToString(snap.KmsKeyId) != keyARN {
		t.Fatalf("snapshot %+v", snap)
	}
	img, err := ec.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("golden"), RootDeviceName: aws.String("/dev/xvda"),
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &ec2types.EbsBlockDevice{SnapshotId: snap.SnapshotId}}}})
	if err != nil {
		t.Fatal(err)
	}
	amiID = aws.ToString(img.ImageId)
	if _, err := ec.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: img.ImageId,
		LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{{UserId: aws.String(target)}}}}); err != nil {
		t.Fatal(err)
	}
	return keyARN, amiID
}

func runOne(t *testing.T, url, amiID string) ec2types.Instance {
	t.Helper()
	ctx := context.Background()
	ec := ec2.NewFromConfig(config(url, target))
	run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(amiID), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: ec2types.InstanceTypeT3Micro})
	if err != nil {
		t.Fatal(err)
	}
	out, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{aws.ToString(run.Instances[0].InstanceId)}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Reservations[0].Instances[0]
}

// An encrypted AMI shared with another account fails to launch there until
// the key policy lets that account use the key through EC2 — the way AWS
// fails it: accepted, then terminated with Client.InternalError, and a KMS
// AccessDenied event in the target's CloudTrail.
func TestSharedEncryptedImageLaunch(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	keyARN, amiID := bakeImage(t, url)

	// Visible to the target, not to a third account.
	if _, err := ec2.NewFromConfig(config(url, "999988887777")).DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{amiID}}); apiCode(err) != "InvalidAMIID.NotFound" {
		t.Errorf("third account sees the image: %v", err)
	}
	imgs, err := ec2.NewFromConfig(config(url, target)).DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{amiID}})
	if err != nil || len(imgs.Images) != 1 || !aws.ToBool(imgs.Images[0].BlockDeviceMappings[0].Ebs.Encrypted) {
		t.Fatalf("target DescribeImages: %v %+v", err, imgs)
	}

	in := runOne(t, url, amiID)
	if in.State.Name != ec2types.InstanceStateNameTerminated || aws.ToString(in.StateReason.Message) != "Client.InternalError: Client error on launch" {
		t.Fatalf("launch with the default key policy: %s %+v", in.State.Name, in.StateReason)
	}
	events, err := cloudtrail.NewFromConfig(config(url, target)).LookupEvents(ctx, &cloudtrail.LookupEventsInput{
		LookupAttributes: []cttypes.LookupAttribute{{AttributeKey: cttypes.LookupAttributeKeyEventSource, AttributeValue: aws.String("kms.amazonaws.com")}}})
	if err != nil || len(events.Events) == 0 {
		t.Fatalf("LookupEvents: %v %+v", err, events)
	}
	doc := aws.ToString(events.Events[0].CloudTrailEvent)
	for _, want := range []string{`"errorCode":"AccessDenied"`, keyARN, `"invokedBy":"ec2.amazonaws.com"`} {
		if !strings.Contains(doc, want) {
			t.Errorf("CloudTrail event lacks %s: %s", want, doc)
		}
	}

	// The first write-up's policy lets the target's principals launch it.
	if _, err := kms.NewFromConfig(config(url, owner)).PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(keyARN), PolicyName: aws.String("default"), Policy: aws.String(writeup1Policy)}); err != nil {
		t.Fatal(err)
	}
	if in := runOne(t, url, amiID); in.State.Name != ec2types.InstanceStateNameRunning {
		t.Fatalf("launch with the write-up's policy: %s %+v", in.State.Name, in.StateReason)
	}
}

// A key policy whose allow depends on the caller's address does not cover
// the calls EC2 makes from AWS's own addresses.
func TestSourceIPConditionFailsLaunch(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	keyARN, amiID := bakeImage(t, url)
	policy := strings.ReplaceAll(writeup1Policy, `"Resource":"*"}`, `"Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}`)
	policy = strings.Replace(policy, `"Action":"kms:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}`, `"Action":"kms:*","Resource":"*"}`, 1)
	if _, err := kms.NewFromConfig(config(url, owner)).PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(keyARN), PolicyName: aws.String("default"), Policy: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	// The target's direct call from 127.0.0.1 is allowed...
	if _, err := kms.NewFromConfig(config(url, target)).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyARN)}); err != nil {
		t.Fatalf("direct DescribeKey from an allowed address: %v", err)
	}
	// ...but EC2's calls for the launch are not.
	if in := runOne(t, url, amiID); in.State.Name != ec2types.InstanceStateNameTerminated {
		t.Fatalf("launch under an aws:SourceIp condition: %s", in.State.Name)
	}
}

// The third write-up: StartInstances leaves an instance stopped when its
// volumes' key can no longer be used through EC2.
func TestStartInstancesWithUnusableKey(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	keyARN, amiID := bakeImage(t, url)
	kc := kms.NewFromConfig(config(url, owner))
	if _, err := kc.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(keyARN), PolicyName: aws.String("default"), Policy: aws.String(writeup1Policy)}); err != nil {
		t.Fatal(err)
	}
	in := runOne(t, url, amiID)
	ec := ec2.NewFromConfig(config(url, target))
	if _, err := ec.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{aws.ToString(in.InstanceId)}}); err != nil {
		t.Fatal(err)
	}
	// The key owner takes the target's CreateGrant away.
	noGrant := strings.Replace(writeup1Policy, `"kms:CreateGrant",`, ``, 1)
	if _, err := kc.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(keyARN), PolicyName: aws.String("default"), Policy: aws.String(noGrant)}); err != nil {
		t.Fatal(err)
	}
	out, err := ec.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{aws.ToString(in.InstanceId)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.StartingInstances[0].CurrentState.Name; got != ec2types.InstanceStateNameStopped {
		t.Fatalf("StartInstances without CreateGrant: %s, want stopped", got)
	}
}

func TestCopyImageNeedsKeyAndSnapshotAccess(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	keyARN, amiID := bakeImage(t, url)
	tec := ec2.NewFromConfig(config(url, target))
	copyIt := func() error {
		_, err := tec.CopyImage(ctx, &ec2.CopyImageInput{Name: aws.String("mine"), SourceImageId: aws.String(amiID), SourceRegion: aws.String(region), Encrypted: aws.Bool(true)})
		return err
	}
	if copyIt() == nil {
		t.Fatal("copied without create-volume permission on the snapshot")
	}
	oec := ec2.NewFromConfig(config(url, owner))
	snaps, _ := oec.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{})
	if _, err := oec.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: snaps.Snapshots[0].SnapshotId, Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission,
		CreateVolumePermission: &ec2types.CreateVolumePermissionModifications{Add: []ec2types.CreateVolumePermission{{UserId: aws.String(target)}}}}); err != nil {
		t.Fatal(err)
	}
	if copyIt() == nil {
		t.Fatal("copied without access to the source key")
	}
	if _, err := kms.NewFromConfig(config(url, owner)).PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(keyARN), PolicyName: aws.String("default"), Policy: aws.String(writeup1Policy)}); err != nil {
		t.Fatal(err)
	}
	if err := copyIt(); err != nil {
		t.Fatalf("copy with access: %v", err)
	}
}

func TestEBSEncryptionByDefault(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	ec := ec2.NewFromConfig(config(url, owner))
	if _, err := ec.EnableEbsEncryptionByDefault(ctx, &ec2.EnableEbsEncryptionByDefaultInput{}); err != nil {
		t.Fatal(err)
	}
	def, err := ec.GetEbsDefaultKmsKeyId(ctx, &ec2.GetEbsDefaultKmsKeyIdInput{})
	if err != nil || aws.ToString(def.KmsKeyId) != "alias/aws/ebs" {
		t.Fatalf("default key: %v %+v", err, def)
	}
	vol, err := ec.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(8)})
	if err != nil || !aws.ToBool(vol.Encrypted) || !strings.Contains(aws.ToString(vol.KmsKeyId), ":key/") {
		t.Fatalf("volume under default encryption: %v %+v", err, vol)
	}
	d, err := kms.NewFromConfig(config(url, owner)).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: vol.KmsKeyId})
	if err != nil || d.KeyMetadata.KeyManager != "AWS" {
		t.Fatalf("the default key is not the AWS managed aws/ebs key: %v", err)
	}
}

func TestRunInstancesPendingThenTerminatedAndPaging(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	_, amiID := bakeImage(t, url)
	ec := ec2.NewFromConfig(config(url, target))
	for i := 0; i < 3; i++ {
		run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(amiID), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
		if err != nil || run.Instances[0].State.Name != ec2types.InstanceStateNamePending {
			t.Fatalf("RunInstances: %v, want the launch accepted as pending", err)
		}
	}
	// ExecutableBy self lists the shared image for the target.
	imgs, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{ExecutableUsers: []string{"self"}})
	if err != nil || len(imgs.Images) != 1 || aws.ToString(imgs.Images[0].ImageId) != amiID {
		t.Fatalf("ExecutableBy self: %v %+v", err, imgs)
	}
	// Each failed launch left a KMS event; LookupEvents pages through them.
	ct := cloudtrail.NewFromConfig(config(url, target))
	var seen int
	p := cloudtrail.NewLookupEventsPaginator(ct, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(1)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if apiCode(err) == "ThrottlingException" {
			time.Sleep(time.Second) // 2 calls/s, as in AWS
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		seen += len(page.Events)
	}
	if seen != 3 {
		t.Fatalf("paged through %d events, want 3", seen)
	}
}
