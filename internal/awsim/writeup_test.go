package awsim

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// The first reference write-up, end to end: the key policy lets the target
// account use the key, the AMI is shared, yet the target's Auto Scaling
// group cannot launch it; CloudTrail names AWSServiceRoleForAutoScaling;
// the target creates a grant by key ARN; the launch succeeds.
func TestWriteup1AutoScalingStory(t *testing.T) {
	s, url := startSim(t)
	s.SetRetryBackoff(0)
	ctx := context.Background()
	keyARN, amiID := bakeImage(t, url)
	if _, err := kms.NewFromConfig(config(url, owner)).PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(keyARN), PolicyName: aws.String("default"), Policy: aws.String(writeup1Policy)}); err != nil {
		t.Fatal(err)
	}

	tec2 := ec2.NewFromConfig(config(url, target))
	lt, err := tec2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(amiID), InstanceType: ec2types.InstanceTypeT3Micro}})
	if err != nil {
		t.Fatal(err)
	}
	as := autoscaling.NewFromConfig(config(url, target))
	if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("web"), MinSize: aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(1),
		AvailabilityZones: []string{"us-east-1a"},
		LaunchTemplate:    &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId},
	}); err != nil {
		t.Fatal(err)
	}
	groups, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	slr := aws.ToString(groups.AutoScalingGroups[0].ServiceLinkedRoleARN)
	if slr != "arn:aws:iam::"+target+":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling" || len(groups.AutoScalingGroups[0].Instances) != 0 {
		t.Fatalf("group: %s, %d instances", slr, len(groups.AutoScalingGroups[0].Instances))
	}
	acts, err := as.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("web")})
	if err != nil || len(acts.Activities) == 0 {
		t.Fatalf("activities: %v", err)
	}
	if a := acts.Activities[0]; a.StatusCode != astypes.ScalingActivityStatusCodeFailed || !strings.Contains(aws.ToString(a.StatusMessage), "Client.InternalError: Client error on launch") {
		t.Fatalf("activity %s: %s", a.StatusCode, aws.ToString(a.StatusMessage))
	}

	events, err := cloudtrail.NewFromConfig(config(url, target)).LookupEvents(ctx, &cloudtrail.LookupEventsInput{
		LookupAttributes: []cttypes.LookupAttribute{{AttributeKey: cttypes.LookupAttributeKeyEventSource, AttributeValue: aws.String("kms.amazonaws.com")}}})
	if err != nil || len(events.Events) == 0 {
		t.Fatalf("LookupEvents: %v", err)
	}
	doc := aws.ToString(events.Events[0].CloudTrailEvent)
	for _, want := range []string{`"arn":"arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAutoScaling/AutoScaling"`, `"userName":"AWSServiceRoleForAutoScaling"`, `"invokedBy":"autoscaling.amazonaws.com"`, `"errorCode":"AccessDenied"`} {
		if !strings.Contains(doc, want) {
			t.Errorf("CloudTrail event lacks %s:\n%s", want, doc)
		}
	}

	// The fix: a grant for the service-linked role, created from the target
	// account by key ARN.
	if _, err := kms.NewFromConfig(config(url, target)).CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(keyARN), GranteePrincipal: aws.String(slr),
		Operations: []kmstypes.GrantOperation{"Decrypt", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo", "CreateGrant"}}); err != nil {
		t.Fatal(err)
	}
	groups, err = as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"web"}})
	if err != nil || len(groups.AutoScalingGroups[0].Instances) != 1 || groups.AutoScalingGroups[0].Instances[0].LifecycleState != astypes.LifecycleStateInService {
		t.Fatalf("after the grant: %v %+v", err, groups.AutoScalingGroups[0].Instances)
	}

	// Deleting a group with instances needs ForceDelete.
	if _, err := as.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("web")}); apiCode(err) != "ResourceInUse" {
		t.Errorf("delete without ForceDelete: %v", err)
	}
	if _, err := as.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("web"), ForceDelete: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
}

// CloudTrail delivers events late: with trail_delay_ms they are not in
// LookupEvents until the delay has passed.
func TestTrailDelivery(t *testing.T) {
	s, url := startSim(t)
	s.SetRetryBackoff(0)
	ctx := context.Background()
	_, amiID := bakeImage(t, url) // the default key policy: the target cannot use the key
	s.SetFaults(Faults{Service: "cloudtrail", TrailDelayMS: 300})
	if _, err := ec2.NewFromConfig(config(url, target)).RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(amiID), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	lookup := func() int {
		out, err := cloudtrail.NewFromConfig(config(url, target)).LookupEvents(ctx, &cloudtrail.LookupEventsInput{})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Events)
	}
	if n := lookup(); n != 0 {
		t.Fatalf("%d events before the delivery delay", n)
	}
	time.Sleep(400 * time.Millisecond)
	if n := lookup(); n == 0 {
		t.Fatal("no event after the delivery delay")
	}
}
