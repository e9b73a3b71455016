package gate

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amigate/packer-plugin-amigate/internal/awsapi"
	"github.com/amigate/packer-plugin-amigate/internal/motoserver"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// The gate's AWS calls against moto, an emulator written independently of
// ours (moto 5.2.1). Where moto cannot follow, the test says so instead of
// asserting:
//
//	| moto                                              | so                                                  |
//	|---------------------------------------------------|-----------------------------------------------------|
//	| RegisterImage drops the snapshot's encryption     | the image path runs with allow_unencrypted; the     |
//	|                                                   | key path runs the gate's key steps on a moto key    |
//	| CreateGrant from another account fails (HTTP 500) | grants are created from the source                  |
//	| key policies are not enforced                     | nothing here depends on an authorisation            |
func TestGateAgainstMoto(t *testing.T) {
	url := motoserver.Start(t)
	ctx := context.Background()
	sess, err := awsapi.New(ctx, awsapi.Settings{Region: "us-east-1", AccessKey: "AKIAMOTOSOURCE", SecretKey: "x", Endpoint: url})
	if err != nil {
		t.Fatal(err)
	}
	src := sess.Source("us-east-1")
	ec2c := ec2.NewFromConfig(src)
	vol, err := ec2c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(8)})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := ec2c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	img, err := ec2c.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("golden"), RootDeviceName: aws.String("/dev/xvda"),
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &ec2types.EbsBlockDevice{SnapshotId: snap.SnapshotId}}}})
	if err != nil {
		t.Fatal(err)
	}
	ami := aws.ToString(img.ImageId)

	role := roleARN(target)
	tgt := sess.Role(role, "", "us-east-1")
	lt, err := ec2.NewFromConfig(tgt).CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami), InstanceType: ec2types.InstanceTypeT3Micro}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := autoscaling.NewFromConfig(tgt).CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("web"),
		MinSize: aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(0), AvailabilityZones: []string{"us-east-1a"},
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId}}); err != nil {
		t.Fatal(err)
	}

	// The image path: inspect (with the target's groups read through its
	// role), share, verify; a dry run first, a second run last.
	opts := baseOptions(map[string]string{"us-east-1": ami}, Target{AccountID: target, RoleARN: role, AutoScalingGroups: []string{"web"}})
	opts.AllowUnencrypted = true
	launchPermissions := func() []string {
		out, err := ec2c.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: img.ImageId, Attribute: ec2types.ImageAttributeNameLaunchPermission})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range out.LaunchPermissions {
			ids = append(ids, aws.ToString(p.UserId))
		}
		return ids
	}
	dry := opts
	dry.DryRun = true
	rep, err := Run(ctx, dry, sess, func(l string) { t.Log(l) })
	if err != nil || len(rep.Changes.LaunchPermissions) != 1 || rep.Changes.LaunchPermissions[0].Applied || len(launchPermissions()) != 0 {
		t.Fatalf("dry run: %v %+v %v", err, rep.Changes, launchPermissions())
	}
	rep, err = Run(ctx, opts, sess, func(l string) { t.Log(l) })
	if err != nil || !rep.OK || strings.Join(launchPermissions(), ",") != target {
		t.Fatalf("run: %v ok=%v %s, launch permissions %v", err, rep.OK, codesOf(rep), launchPermissions())
	}
	if rep, err = Run(ctx, opts, sess, nil); err != nil || rep.Changes.Count() != 0 {
		t.Fatalf("second run: %v %+v", err, rep.Changes)
	}

	// The key path, on a moto key: read, plan, patch (read back), grant
	// (from the source) and evaluate again; then nothing is left to do.
	key, err := kms.NewFromConfig(src).CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	opts.GrantFrom = GrantFromSource
	r := newRun(opts, sess, func(l string) { t.Log(l) })
	ks := &keyState{region: "us-east-1", key: keypolicy.Key{ARN: aws.ToString(key.KeyMetadata.Arn)}}
	if err := r.readKey(ctx, ks); err != nil || ks.key.Manager != "CUSTOMER" || ks.key.State != "Enabled" || ks.key.Policy == nil {
		t.Fatalf("read key: %v %+v", err, ks.key)
	}
	original := ks.policyText
	ks.targets = r.keyTargets("us-east-1")
	if err := ks.replan(ks.key.Policy); err != nil || !ks.plan.Changed || len(ks.plan.Grants) != 1 {
		t.Fatalf("plan: %v %+v", err, ks.plan)
	}
	if err := r.patchKey(ctx, ks); err != nil {
		t.Fatalf("patch: %v", err)
	}
	if err := r.grantKey(ctx, ks); err != nil {
		t.Fatalf("grant: %v", err)
	}
	policy, err := kms.NewFromConfig(src).GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: key.KeyMetadata.KeyId, PolicyName: aws.String("default")})
	if err != nil || !strings.Contains(aws.ToString(policy.Policy), keypolicy.SidUseKey) || !strings.HasPrefix(aws.ToString(policy.Policy), kept(original)) {
		t.Fatalf("patched policy (%v):\n%s", err, aws.ToString(policy.Policy))
	}
	if v := keypolicy.Check(ks.key, ks.targets); !v.OK {
		t.Fatalf("after patch and grant: %+v", v)
	}
	again := &keyState{region: "us-east-1", key: keypolicy.Key{ARN: ks.key.ARN}, targets: ks.targets}
	if err := r.readKey(ctx, again); err != nil {
		t.Fatal(err)
	}
	if err := again.replan(again.key.Policy); err != nil || again.plan.Changed || len(again.plan.Grants) != 0 {
		t.Fatalf("a second plan should be empty: %v %+v", err, again.plan)
	}
	if g := again.key.Grants; len(g) != 1 || g[0].Name != keypolicy.GrantName(asgRole(target, "")) {
		t.Fatalf("grants in moto: %+v", g)
	}

}

// kept is what a patch keeps of a policy byte for byte: everything up to
// the end of its last statement.
func kept(policy string) string {
	return strings.TrimRight(policy[:strings.LastIndex(policy, "]")], " \n")
}
