package awsim

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// The condition keys AWS sends with every request, or with the calls EC2
// and Auto Scaling make for a launch, as the simulator supplies them; and
// how NotPrincipal treats the Auto Scaling role's session. Each was a
// blind spot keypolicy shared (see keypolicy/rules_test.go).

const slrARN = "arn:aws:iam::" + target + ":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"

// withTargetUse is the first write-up's key policy plus statements.
func withTargetUse(statements ...string) string {
	return strings.TrimSuffix(writeup1Policy, "]}") + strings.Join(append([]string{""}, statements...), ",") + "]}"
}

func putPolicy(t *testing.T, url, keyARN, policy string) {
	t.Helper()
	if _, err := kms.NewFromConfig(config(url, owner)).PutKeyPolicy(context.Background(), &kms.PutKeyPolicyInput{KeyId: aws.String(keyARN), PolicyName: aws.String("default"), Policy: aws.String(policy)}); err != nil {
		t.Fatalf("PutKeyPolicy: %v", err)
	}
}

// asgLaunches puts policy on the key, grants the target's Auto Scaling
// role what AWS's Auto Scaling guide lists, and reports whether a new
// group launches the image.
func asgLaunches(t *testing.T, url, keyARN, amiID, policy string) bool {
	t.Helper()
	ctx := context.Background()
	_, _ = iam.NewFromConfig(config(url, target)).CreateServiceLinkedRole(ctx, &iam.CreateServiceLinkedRoleInput{AWSServiceName: aws.String("autoscaling.amazonaws.com")})
	putPolicy(t, url, keyARN, policy)
	if _, err := kms.NewFromConfig(config(url, owner)).CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(keyARN), GranteePrincipal: aws.String(slrARN), Name: aws.String("asg"),
		Operations: []kmstypes.GrantOperation{"Decrypt", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo", "CreateGrant"}}); err != nil {
		t.Fatalf("CreateGrant: %v", err)
	}
	name := "web-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	lt, err := ec2.NewFromConfig(config(url, target)).CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String(name),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(amiID), InstanceType: ec2types.InstanceTypeT3Micro}})
	if err != nil {
		t.Fatal(err)
	}
	as := autoscaling.NewFromConfig(config(url, target))
	if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(name), MinSize: aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(1),
		AvailabilityZones: []string{"us-east-1a"},
		LaunchTemplate:    &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId},
	}); err != nil {
		t.Fatal(err)
	}
	groups, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	in := groups.AutoScalingGroups[0].Instances
	return len(in) == 1 && in[0].LifecycleState == astypes.LifecycleStateInService
}

// IAM User Guide, "AWS JSON policy elements: NotPrincipal": a session is
// exempted only by its own ARN. Auto Scaling launches as the session
// AWSServiceRoleForAutoScaling/AutoScaling, so a Deny whose NotPrincipal
// lists the role's ARN stops the launch; one listing the session does not.
func TestSimDenyNotPrincipalNamingTheAutoScalingRoleStillDeniesItsSession(t *testing.T) {
	_, url := startSim(t)
	keyARN, amiID := bakeImage(t, url)
	deny := func(listed string) string {
		return withTargetUse(`{"Sid":"OnlyAutoScaling","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::444455556666:root",` + listed + `]},"Action":"kms:*","Resource":"*"}`)
	}
	if asgLaunches(t, url, keyARN, amiID, deny(`"`+slrARN+`"`)) {
		t.Error("launched under a Deny whose NotPrincipal lists only the Auto Scaling role")
	}
	session := "arn:aws:sts::" + target + ":assumed-role/AWSServiceRoleForAutoScaling/AutoScaling"
	if !asgLaunches(t, url, keyARN, amiID, deny(`"`+session+`","`+slrARN+`","arn:aws:iam::`+target+`:root"`)) {
		t.Error("no launch under a Deny whose NotPrincipal lists the session, its role and its account")
	}
}

// IAM User Guide, "AWS global condition context keys": aws:CurrentTime and
// aws:EpochTime are always in the request context, and work with the date
// operators (ISO 8601 or epoch seconds) and, for aws:EpochTime, the numeric
// ones. The simulator's clock is the request's time.
func TestSimCurrentTimeAndEpochTimeAreAlwaysInTheRequest(t *testing.T) {
	s, url := startSim(t)
	for _, cond := range []func(later time.Time) string{
		func(later time.Time) string {
			return `{"DateGreaterThan":{"aws:CurrentTime":"` + later.Format(time.RFC3339) + `"}}`
		},
		func(later time.Time) string {
			return `{"DateGreaterThan":{"aws:CurrentTime":"` + strconv.FormatInt(later.Unix(), 10) + `"}}`
		},
		func(later time.Time) string {
			return `{"DateGreaterThan":{"aws:EpochTime":"` + later.Format(time.RFC3339) + `"}}`
		},
		func(later time.Time) string {
			return `{"NumericGreaterThan":{"aws:EpochTime":"` + strconv.FormatInt(later.Unix(), 10) + `"}}`
		},
	} {
		c := cond(s.now().Add(time.Hour).UTC())
		keyARN := newKeyWith(t, url, `{"Version":"2012-10-17","Statement":[`+ownerRootStatement+`,
		  {"Sid":"AfterTheHour","Effect":"Deny","Principal":"*","Action":"kms:DescribeKey","Resource":"*","Condition":`+c+`}]}`)
		if err := describeKey(config(url, owner), keyARN); err != nil {
			t.Errorf("%s, before: %v", c, err)
		}
		s.Advance(2 * time.Hour)
		if err := describeKey(config(url, owner), keyARN); apiCode(err) != "AccessDeniedException" {
			t.Errorf("%s, two hours on: %v, want AccessDeniedException", c, err)
		}
	}
}

// IAM User Guide, "AWS global condition context keys", aws:ResourceAccount:
// the account that owns the resource. The perimeter pattern
// StringNotEquals aws:PrincipalAccount ${aws:ResourceAccount} keeps out
// every other account, on a direct call and on EC2's calls for a launch.
func TestSimResourceAccountIsTheKeyOwnersAccount(t *testing.T) {
	_, url := startSim(t)
	keyARN, amiID := bakeImage(t, url)
	putPolicy(t, url, keyARN, withTargetUse(`{"Sid":"Perimeter","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalAccount":"${aws:ResourceAccount}"}}}`))
	if err := describeKey(config(url, target), keyARN); apiCode(err) != "AccessDeniedException" {
		t.Errorf("the target, outside the perimeter: %v", err)
	}
	if err := describeKey(config(url, owner), keyARN); err != nil {
		t.Errorf("the key owner: %v", err)
	}
	if in := runOne(t, url, amiID); in.State.Name != ec2types.InstanceStateNameTerminated {
		t.Errorf("launch outside the perimeter: %s", in.State.Name)
	}
}

// IAM User Guide, "AWS global condition context keys",
// aws:MultiFactorAuthPresent: present, and false unless MFA was used, on a
// request made with temporary credentials: a role session's, and those a
// service uses when it forwards a principal's call; absent on a request
// signed with long-term keys, such as the root user's direct call.
func TestSimMultiFactorAuthPresentOnTemporaryCredentials(t *testing.T) {
	s, url := startSim(t)
	keyARN, amiID := bakeImage(t, url)
	session := targetRoleSession(t, s, url, "Launcher")
	putPolicy(t, url, keyARN, withTargetUse(`{"Sid":"NoMFA","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"false"},"StringEquals":{"aws:PrincipalAccount":"`+target+`"}}}`))
	if err := describeKey(session, keyARN); apiCode(err) != "AccessDeniedException" {
		t.Errorf("a role session without MFA: %v", err)
	}
	if err := describeKey(config(url, target), keyARN); err != nil {
		t.Errorf("the root user's direct call (long-term keys): %v", err)
	}
	if in := runOne(t, url, amiID); in.State.Name != ec2types.InstanceStateNameTerminated {
		t.Errorf("launch whose forwarded calls carry aws:MultiFactorAuthPresent = false: %s", in.State.Name)
	}
}

// IAM User Guide, "AWS global condition context keys", aws:ViaAWSService:
// true when a service forwards a principal's credentials, false when it
// uses a service-linked role. A network Deny that exempts service calls
// with Bool aws:ViaAWSService false lets a user's launch through, and
// stops Auto Scaling's; exempting the role by aws:PrincipalArn lets it.
func TestSimViaAWSServiceIsFalseForTheAutoScalingRole(t *testing.T) {
	_, url := startSim(t)
	keyARN, amiID := bakeImage(t, url)
	network := `{"Sid":"OfficeOnly","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"},"Bool":{"aws:ViaAWSService":"false"},"StringEquals":{"aws:PrincipalAccount":"` + target + `"}}}`
	putPolicy(t, url, keyARN, withTargetUse(network))
	if in := runOne(t, url, amiID); in.State.Name != ec2types.InstanceStateNameRunning {
		t.Errorf("a user's launch under the network Deny: %s", in.State.Name)
	}
	if asgLaunches(t, url, keyARN, amiID, withTargetUse(network)) {
		t.Error("Auto Scaling launched under the network Deny")
	}
	exempt := strings.Replace(network, `"Bool"`, `"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling*"},"Bool"`, 1)
	if !asgLaunches(t, url, keyARN, amiID, withTargetUse(exempt)) {
		t.Error("Auto Scaling did not launch with its role exempt by ARN")
	}
}

// IAM User Guide, "IAM policy elements: Variables and tags", policy
// variables with no value: they match nothing, so StringEquals on one
// fails and StringNotEquals holds; a Resource or NotResource entry with one
// names no resource.
func TestSimPolicyVariableWithNoValueMatchesNothing(t *testing.T) {
	_, url := startSim(t)
	for stmt, denied := range map[string]bool{
		`{"Effect":"Deny","Principal":"*","Action":"kms:DescribeKey","Resource":"*","Condition":{"StringEquals":{"kms:CallerAccount":["${aws:username}","x"]}}}`: false,
		`{"Effect":"Deny","Principal":"*","Action":"kms:DescribeKey","NotResource":"arn:aws:kms:*:*:key/${aws:PrincipalTag/keyid}"}`:                             true,
		`{"Effect":"Deny","Principal":"*","Action":"kms:DescribeKey","Resource":"arn:aws:kms:*:*:key/${aws:PrincipalTag/keyid}"}`:                                false,
	} {
		keyARN := newKeyWith(t, url, `{"Version":"2012-10-17","Statement":[`+ownerRootStatement+`,`+stmt+`]}`)
		if err := describeKey(config(url, owner), keyARN); (apiCode(err) == "AccessDeniedException") != denied {
			t.Errorf("%s: %v, want denied=%v", stmt, err, denied)
		}
	}
}
