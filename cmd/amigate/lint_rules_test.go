package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The policy-language rules of issue 12, as a user of lint meets them: each
// was a green where AWS refuses.

// writePolicy writes a key-policy document and returns its path.
func writePolicy(t *testing.T, doc string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "key-policy.json")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func lintInstance(t *testing.T, file string) result {
	t.Helper()
	return amigate(t, "", "lint", "--key-policy", file, "--key-arn", exampleKey, "--target", "111122223333", "--paths", "instance")
}

// IAM User Guide, "IAM JSON policy elements: Version": a policy whose
// Version is 2008-10-17, or that has none, does not substitute policy
// variables, so kms:CallerAccount = ${aws:PrincipalAccount} compares the
// caller's account with that text and allows no one.
func TestLintPolicyVariablesAreLiteralUnlessVersion20121017(t *testing.T) {
	policy := func(version string) string {
		return `{` + version + `"Statement":[
  {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
  {"Sid":"SameAccountCallers","Effect":"Allow","Principal":"*","Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant"],"Resource":"*",
   "Condition":{"StringEquals":{"kms:CallerAccount":"${aws:PrincipalAccount}"}}}]}`
	}
	for name, version := range map[string]string{"2008-10-17": `"Version":"2008-10-17",`, "no Version": ""} {
		t.Run(name, func(t *testing.T) {
			r := lintInstance(t, writePolicy(t, policy(version)))
			if r.code != exitGateSaysNo {
				t.Fatalf("exit %d, want 1 (the gate says no)\n%s%s", r.code, r.stdout, r.stderr)
			}
			for _, want := range []string{"✘ 111122223333  instance", "KEY_POLICY_MISSING", "POLICY_VARIABLE_LITERAL", `statement "SameAccountCallers" writes ${aws:PrincipalAccount}`} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, r.stdout)
				}
			}
		})
	}
	if r := lintInstance(t, writePolicy(t, policy(`"Version":"2012-10-17",`))); r.code != exitOK {
		t.Fatalf("Version 2012-10-17 substitutes the variable: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// IAM User Guide, "AWS JSON policy elements: NotPrincipal": a Deny whose
// NotPrincipal lists an account's root ARN exempts that root user only; the
// account's roles and users, which launch instances, are still denied.
func TestLintDenyNotPrincipalAccountRootStillDeniesItsRoles(t *testing.T) {
	doc := `{"Version":"2012-10-17","Statement":[
  {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
  {"Sid":"Use","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant"],"Resource":"*"},
  {"Sid":"OnlyTheseAccounts","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::444455556666:root","arn:aws:iam::111122223333:root"]},"Action":"kms:*","Resource":"*"}]}`
	r := lintInstance(t, writePolicy(t, doc))
	if r.code != exitGateSaysNo {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"✘ 111122223333  instance  arn:aws:iam::111122223333:role/*",
		"KEY_POLICY_DENIES",
		`key-policy statement "OnlyTheseAccounts" explicitly denies`,
		"exempts only the root user, not the account's roles and users",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
}

// AWS KMS Developer Guide, "Key policies": Principal is required in a key
// policy statement, and KMS refuses a policy without one. Such a statement
// is bad input that lint names, never an allow for everyone.
func TestLintKeyPolicyStatementWithoutPrincipalIsBadInput(t *testing.T) {
	file := writePolicy(t, `{"Version":"2012-10-17","Statement":[
  {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
  {"Sid":"EveryoneByMistake","Effect":"Allow","Action":"kms:*","Resource":"*"}]}`)
	r := lintInstance(t, file)
	if r.code != exitBadInput || r.stdout != "" {
		t.Fatalf("exit %d, want 2 with nothing on stdout\n%s%s", r.code, r.stdout, r.stderr)
	}
	want := `--key-policy "` + file + `": statement "EveryoneByMistake" (#1) has neither Principal nor NotPrincipal`
	if !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "MalformedPolicyDocumentException") {
		t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
	}
}

// IAM User Guide, "AWS global condition context keys": aws:PrincipalOrgID
// is in a principal's request only when its account is in an
// organization. lint knows a target's organization from --org-path; without
// it the key is absent, so a key policy that allows by aws:PrincipalOrgID
// is red (never a green AWS would refuse), and the finding says the
// organization is not known and how to give it.
func TestLintAllowByPrincipalOrgIDNeedsTheTargetsOrgPath(t *testing.T) {
	file := writePolicy(t, `{"Version":"2012-10-17","Statement":[
  {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
  {"Sid":"OurOrganization","Effect":"Allow","Principal":{"AWS":"*"},"Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant"],"Resource":"*",
   "Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-abcdefghij","kms:ViaService":"ec2.us-east-1.amazonaws.com"}}}]}`)
	args := []string{"lint", "--key-policy", file, "--key-arn", exampleKey, "--target", "111122223333", "--paths", "instance,copy"}

	r := amigate(t, "", append(args, "--org-path", "111122223333=o-abcdefghij/r-ab12/ou-ab12-11111111")...)
	if r.code != exitOK || !strings.Contains(r.stdout, "every path passes (2)") {
		t.Fatalf("member of the organization: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = amigate(t, "", args...)
	if r.code != exitGateSaysNo {
		t.Fatalf("organization not known: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"✘ 111122223333  instance",
		"KEY_POLICY_MISSING",
		`key-policy statement "OurOrganization" would allow`,
		"account 111122223333's organization is not known",
		"cannot tell whether the requests carry aws:PrincipalOrgID and aws:PrincipalOrgPaths",
		"--org-path 111122223333=PATH",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}

	// In another organization: red, and not for want of the path.
	r = amigate(t, "", append(args, "--org-path", "111122223333=o-zzzzzzzzzz/r-cd34/")...)
	if r.code != exitGateSaysNo || strings.Contains(r.stdout, "organization is not known") {
		t.Errorf("member of another organization: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// IAM User Guide, "AWS global condition context keys", aws:PrincipalArn:
// the ARN of the role or user that launches, which lint cannot know unless
// --principal names it. A Deny on some roles may stop the launch, and an
// allow written with StringEquals on "role/*" (which compares the text
// exactly) stops every role: both are red, saying which key and what to
// do; naming the launching role decides them.
func TestLintPrincipalArnConditionsNeedTheLaunchingPrincipal(t *testing.T) {
	slip := writePolicy(t, `{"Version":"2012-10-17","Statement":[
  {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
  {"Sid":"TargetRoles","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant"],"Resource":"*",
   "Condition":{"StringEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/*"}}}]}`)
	r := lintInstance(t, slip)
	if r.code != exitGateSaysNo {
		t.Fatalf("StringEquals on role/*: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{`statement "TargetRoles" would allow`, "aws:PrincipalArn", "compares the text exactly", "--principal 111122223333=ARN", "ArnLike"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = amigate(t, "", "lint", "--key-policy", slip, "--key-arn", exampleKey, "--target", "111122223333", "--paths", "instance", "--principal", "111122223333=arn:aws:iam::111122223333:role/ci")
	if r.code != exitGateSaysNo {
		t.Fatalf("StringEquals on role/*, the launching role named: exit %d, want 1 (no role's ARN is role/*)\n%s%s", r.code, r.stdout, r.stderr)
	}

	deny := writePolicy(t, `{"Version":"2012-10-17","Statement":[
  {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
  {"Sid":"Use","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant"],"Resource":"*"},
  {"Sid":"NoApps","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/app-*"}}}]}`)
	r = lintInstance(t, deny)
	if r.code != exitGateSaysNo || !strings.Contains(r.stdout, `statement "NoApps" may deny`) || !strings.Contains(r.stdout, "KEY_POLICY_DENIES") {
		t.Fatalf("Deny on app-* roles, launcher not named: exit %d, want 1 with KEY_POLICY_DENIES\n%s%s", r.code, r.stdout, r.stderr)
	}
	for role, code := range map[string]int{"app-x": exitGateSaysNo, "ci": exitOK} {
		r = amigate(t, "", "lint", "--key-policy", deny, "--key-arn", exampleKey, "--target", "111122223333", "--paths", "instance", "--principal", "111122223333=arn:aws:iam::111122223333:role/"+role)
		if r.code != code {
			t.Errorf("Deny on app-* roles, launcher %s: exit %d, want %d\n%s%s", role, r.code, code, r.stdout, r.stderr)
		}
	}
}
