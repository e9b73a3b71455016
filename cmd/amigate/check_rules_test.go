package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// Issue 12's false greens through check, with the key policy read from the
// simulated KMS (which refuses the third class, a statement without
// principal, at PutKeyPolicy: internal/awsim's tests).

// setGoldenKeyPolicy replaces the example world's key policy, as its owner.
func setGoldenKeyPolicy(t *testing.T, url, policy string) *kms.Client {
	t.Helper()
	kc := kms.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: credentials.NewStaticCredentialsProvider("SIM444455556666", "x", "")})
	if _, err := kc.PutKeyPolicy(context.Background(), &kms.PutKeyPolicyInput{KeyId: aws.String("alias/golden-ami"), PolicyName: aws.String("default"), Policy: aws.String(policy)}); err != nil {
		t.Fatalf("PutKeyPolicy: %v", err)
	}
	return kc
}

func goldenKeyPolicy(t *testing.T, kc *kms.Client) string {
	t.Helper()
	out, err := kc.GetKeyPolicy(context.Background(), &kms.GetKeyPolicyInput{KeyId: aws.String("alias/golden-ami"), PolicyName: aws.String("default")})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Policy)
}

const checkUse = `{"Sid":"Use","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant"],"Resource":"*"}`

// IAM User Guide, "AWS JSON policy elements: NotPrincipal": the target's
// root ARN in a Deny's NotPrincipal exempts its root user only. check says
// no, names the statement, and the patch leaves the policy as it is.
func TestCheckDenyNotPrincipalAccountRootIsRedAndLeftAlone(t *testing.T) {
	_, ami := simEnv(t)
	url := os.Getenv("AWS_ENDPOINT_URL")
	policy := `{"Version":"2012-10-17","Statement":[
	  {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},` + checkUse + `,
	  {"Sid":"OnlyTheseAccounts","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::444455556666:root","arn:aws:iam::111122223333:root"]},"Action":"kms:*","Resource":"*"}]}`
	kc := setGoldenKeyPolicy(t, url, policy)
	for _, mode := range []string{"check", "patch"} {
		r := amigate(t, "", "check", "--ami", ami, "--target", "111122223333", "--key-policy", mode, "--no-grants", "--paths", "instance")
		if r.code != exitGateSaysNo {
			t.Fatalf("--key-policy %s: exit %d, want 1\n%s%s", mode, r.code, r.stdout, r.stderr)
		}
		for _, want := range []string{"KEY_POLICY_DENIES", `"OnlyTheseAccounts"`, "exempts only the root user"} {
			if !strings.Contains(r.stdout+r.stderr, want) {
				t.Errorf("--key-policy %s: output lacks %q\n%s%s", mode, want, r.stdout, r.stderr)
			}
		}
	}
	if got := goldenKeyPolicy(t, kc); got != policy {
		t.Errorf("the key policy was changed although no amigate statement can help:\n%s", got)
	}
}

// IAM User Guide, "IAM JSON policy elements: Version": in a 2008-10-17 key
// policy ${aws:PrincipalAccount} is text, so its only allow allows no one;
// check says no with the warning that names the statement, and the patch
// adds amigate's own statements, which need no variable.
func TestCheckPolicyVariableInVersion20081017PolicyIsRed(t *testing.T) {
	_, ami := simEnv(t)
	url := os.Getenv("AWS_ENDPOINT_URL")
	setGoldenKeyPolicy(t, url, `{"Version":"2008-10-17","Statement":[
	  {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
	  {"Sid":"SameAccount","Effect":"Allow","Principal":"*","Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant"],"Resource":"*",
	   "Condition":{"StringEquals":{"kms:CallerAccount":"${aws:PrincipalAccount}"}}}]}`)
	args := []string{"check", "--ami", ami, "--target", "111122223333", "--no-grants", "--paths", "instance", "--format", "json"}
	r := amigate(t, "", append(args, "--key-policy", "check")...)
	if r.code != exitGateSaysNo || !strings.Contains(r.stdout, `"POLICY_VARIABLE_LITERAL"`) || !strings.Contains(r.stdout, `"statement": "SameAccount"`) {
		t.Fatalf("exit %d, want 1 with POLICY_VARIABLE_LITERAL on SameAccount\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := amigate(t, "", append(args, "--key-policy", "patch")...); r.code != exitOK {
		t.Fatalf("patched: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// IAM User Guide, "AWS JSON policy elements: NotPrincipal": a session is
// exempted only by its own ARN, and Auto Scaling acts as the session
// AWSServiceRoleForAutoScaling/AutoScaling: a Deny whose NotPrincipal lists
// only the role's ARN stops the target's groups. check says no on the asg
// path (the instance path is denied too), and the patch changes nothing.
func TestCheckDenyNotPrincipalNamingTheAutoScalingRoleIsRed(t *testing.T) {
	_, ami := simEnv(t)
	url := os.Getenv("AWS_ENDPOINT_URL")
	role := "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
	policy := `{"Version":"2012-10-17","Statement":[
	  {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},` + checkUse + `,
	  {"Sid":"OnlyAutoScaling","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::444455556666:root","` + role + `"]},"Action":"kms:*","Resource":"*"}]}`
	kc := setGoldenKeyPolicy(t, url, policy)
	r := amigate(t, "", "check", "--ami", ami, "--target", "111122223333", "--key-policy", "patch", "--paths", "asg")
	if r.code != exitGateSaysNo {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"KEY_POLICY_DENIES", `"OnlyAutoScaling"`, "exempts none of the role's sessions", "assumed-role/AWSServiceRoleForAutoScaling/AutoScaling"} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("output lacks %q\n%s%s", want, r.stdout, r.stderr)
		}
	}
	if got := goldenKeyPolicy(t, kc); got != policy {
		t.Errorf("the key policy was changed although no amigate statement can help:\n%s", got)
	}
}

// IAM User Guide, "AWS global condition context keys", aws:PrincipalArn:
// check does not know which of the target's roles launches, so a Deny on
// some of them (here app-*) may stop the launch: red, with the key named.
func TestCheckDenyOnSomeRolesOfTheTargetIsRed(t *testing.T) {
	_, ami := simEnv(t)
	setGoldenKeyPolicy(t, os.Getenv("AWS_ENDPOINT_URL"), `{"Version":"2012-10-17","Statement":[
	  {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},`+checkUse+`,
	  {"Sid":"NoApps","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/app-*"}}}]}`)
	r := amigate(t, "", "check", "--ami", ami, "--target", "111122223333", "--key-policy", "check", "--no-grants", "--paths", "instance")
	if r.code != exitGateSaysNo {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"KEY_POLICY_DENIES", `"NoApps" may deny`, "aws:PrincipalArn"} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("output lacks %q\n%s%s", want, r.stdout, r.stderr)
		}
	}
}
