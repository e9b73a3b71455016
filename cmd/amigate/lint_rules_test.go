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
