package awsim

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// mutatingCalls counts the calls the simulator logged as changing state.
func mutatingCalls(s *Server) int {
	n := 0
	for _, c := range s.Calls() {
		if c.Mutating && c.Status == 200 {
			n++
		}
	}
	return n
}

// KMS "DryRun": the call is authorised and checked as usual; a call that
// would succeed answers DryRunOperationException and changes nothing.
func TestCreateGrantDryRunChecksWithoutGranting(t *testing.T) {
	s, url := startSim(t)
	ctx := context.Background()
	keyARN := createKey(t, kms.NewFromConfig(config(url, owner)))
	// The key policy lets the target's account create grants; the role's
	// own policy does not.
	policy := `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + owner + `:root"},"Action":"kms:*","Resource":"*"},
 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + target + `:root"},"Action":"kms:CreateGrant","Resource":"*"}]}`
	if _, err := kms.NewFromConfig(config(url, owner)).PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(keyARN), PolicyName: aws.String("default"), Policy: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	grant := &kms.CreateGrantInput{KeyId: aws.String(keyARN), GranteePrincipal: aws.String(asgRoleARN(target)),
		Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt}, Name: aws.String("g"), DryRun: aws.Bool(true)}

	noKMS := kms.NewFromConfig(roleWithPolicy(t, url, target, "no-kms", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}`))
	_, err := noKMS.CreateGrant(ctx, grant)
	if apiCode(err) != "AccessDeniedException" || !strings.Contains(err.Error(), "because no identity-based policy allows the kms:CreateGrant action") {
		t.Fatalf("DryRun CreateGrant by a role without kms:CreateGrant: %v, want AWS's identity-based AccessDenied", err)
	}
	withKMS := kms.NewFromConfig(roleWithPolicy(t, url, target, "with-kms", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:CreateGrant","Resource":"*"}]}`))
	before := mutatingCalls(s)
	if _, err := withKMS.CreateGrant(ctx, grant); apiCode(err) != "DryRunOperationException" {
		t.Fatalf("DryRun CreateGrant that would succeed: %v, want DryRunOperationException", err)
	}
	grants, err := kms.NewFromConfig(config(url, owner)).ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(keyARN)})
	if err != nil {
		t.Fatal(err)
	}
	if len(grants.Grants) != 0 || mutatingCalls(s) != before {
		t.Fatalf("a DryRun created %d grant(s), logged %d mutating call(s)", len(grants.Grants), mutatingCalls(s)-before)
	}
}

func asgRoleARN(account string) string {
	return "arn:aws:iam::" + account + ":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
}

// EC2 "DryRun": DryRunOperation when the call would succeed, nothing changed.
func TestModifyImageAttributeDryRun(t *testing.T) {
	s, url := startSim(t)
	ctx := context.Background()
	ec := ec2.NewFromConfig(config(url, owner))
	ami := ownAMI(t, ec, "golden")
	before := mutatingCalls(s)
	_, err := ec.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(ami), DryRun: aws.Bool(true),
		LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{{UserId: aws.String(target)}}}})
	if apiCode(err) != "DryRunOperation" {
		t.Fatalf("DryRun ModifyImageAttribute: %v, want DryRunOperation", err)
	}
	_, err = ec.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(ami), DryRun: aws.Bool(true),
		LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{{UserId: aws.String("12345")}}}})
	if apiCode(err) != "InvalidAMIAttributeItemValue" {
		t.Fatalf("DryRun with a bad account: %v, want the real call's error", err)
	}
	attr, err := ec.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(ami), Attribute: ec2types.ImageAttributeNameLaunchPermission})
	if err != nil {
		t.Fatal(err)
	}
	if len(attr.LaunchPermissions) != 0 || mutatingCalls(s) != before {
		t.Fatalf("a DryRun shared the image: %+v", attr.LaunchPermissions)
	}
}

// IAM's policy simulator evaluates the role's own policies; the caller needs
// iam:SimulatePrincipalPolicy on that role.
func TestSimulatePrincipalPolicy(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	roleARN := "arn:aws:iam::" + target + ":role/launcher"
	cfg := roleWithPolicy(t, url, target, "launcher", `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":["kms:CreateGrant","iam:SimulatePrincipalPolicy"],"Resource":"*"},
 {"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}`)
	out, err := iam.NewFromConfig(cfg).SimulatePrincipalPolicy(ctx, &iam.SimulatePrincipalPolicyInput{
		PolicySourceArn: aws.String(roleARN), ActionNames: []string{"kms:CreateGrant", "kms:Decrypt", "kms:Encrypt"},
		ResourceArns: []string{"arn:aws:kms:us-east-1:" + owner + ":key/k"},
		ContextEntries: []iamtypes.ContextEntry{{ContextKeyName: aws.String("kms:GrantOperations"), ContextKeyType: iamtypes.ContextKeyTypeEnumStringList,
			ContextKeyValues: []string{"Decrypt"}}}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]iamtypes.PolicyEvaluationDecisionType{}
	for _, r := range out.EvaluationResults {
		got[aws.ToString(r.EvalActionName)] = r.EvalDecision
	}
	want := map[string]iamtypes.PolicyEvaluationDecisionType{"kms:CreateGrant": "allowed", "kms:Decrypt": "explicitDeny", "kms:Encrypt": "implicitDeny"}
	for a, d := range want {
		if got[a] != d {
			t.Errorf("%s: %s, want %s", a, got[a], d)
		}
	}
	denied := roleWithPolicy(t, url, target, "plain", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`)
	_, err = iam.NewFromConfig(denied).SimulatePrincipalPolicy(ctx, &iam.SimulatePrincipalPolicyInput{
		PolicySourceArn: aws.String("arn:aws:iam::" + target + ":role/plain"), ActionNames: []string{"kms:CreateGrant"}})
	if apiCode(err) != "AccessDenied" {
		t.Fatalf("SimulatePrincipalPolicy without iam:SimulatePrincipalPolicy: %v, want AccessDenied", err)
	}
}
