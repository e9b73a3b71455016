package reliability_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Bad input exits 2, names the flag (or option) and the value as typed, and
// changes nothing in AWS.
func TestBadInputIsNamedAndChangesNothing(t *testing.T) {
	w := newWorld(t, 1)
	acct := w.targets[0]
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policy, []byte(keyPolicy(nil)), 0o600); err != nil {
		t.Fatal(err)
	}
	keyARN := "arn:aws:kms:us-east-1:" + source + ":key/1234abcd-12ab-34cd-56ef-1234567890ab"
	lint := func(extra ...string) []string {
		return append([]string{"lint", "--key-policy", policy, "--key-arn", keyARN, "--target", acct}, extra...)
	}
	check := func(extra ...string) []string {
		return append([]string{"check", "--ami", w.ami, "--target", acct}, extra...)
	}
	cleanup := func(extra ...string) []string {
		return append([]string{"cleanup", "--older-than", "2h", "--region", region}, extra...)
	}
	role := acct + "=" + roleARN(acct)
	cases := []struct {
		args        []string
		flag, value string
	}{
		{[]string{"check", "--ami", w.ami, "--target", "12345"}, "--target", "12345"},
		{[]string{"check", "--ami", "ami-nope", "--target", acct}, "--ami", "ami-nope"},
		{[]string{"check", "--ami", "mars-1=" + w.ami, "--target", acct}, "--ami", "mars-1"},
		{[]string{"check", "--ami", "ami-0123456789abcdef0", "--target", acct}, "--ami", "ami-0123456789abcdef0"},
		{[]string{"check", "--ami", w.ami, "--target", source}, "--target", source},
		{check("--key-policy", "rewrite"), "--key-policy", "rewrite"},
		{check("--target-role", acct+"=arn:aws:iam::999999999999:role/x"), "--target-role", "arn:aws:iam::999999999999:role/x"},
		{check("--target-role", acct+"=not-an-arn"), "--target-role", "not-an-arn"},
		{check("--target-role", "no-equals-sign"), "--target-role", "no-equals-sign"},
		{check("--asg", "222222222222=web"), "--asg", "222222222222=web"},
		{check("--target-role", role, "--asg", acct+"=nope"), "--asg", "nope"},
		{check("--paths", "lambda"), "--paths", "lambda"},
		{check("--launch-timeout", "soon"), "--launch-timeout", "soon"},
		{check("--launch-timeout", "-5m"), "--launch-timeout", "-5m"},
		{check("--grant-wait", "-1s"), "--grant-wait", "-1s"},
		{check("--lock-timeout", "0"), "--lock-timeout", "0"},
		{check("--lock-timeout", "forever"), "--lock-timeout", "forever"},
		{check("--region", "us-east-99"), "--region", "us-east-99"},
		{check("--report", "/nonexistent/dir/r.json"), "--report", "/nonexistent/dir/r.json"},
		{check("--junit", dir), "--junit", dir},
		{check("--format", "yaml"), "--format", "yaml"},
		{check("--test-launch", "lambda"), "--test-launch", "lambda"},
		{check("--grant-from", "elsewhere"), "--grant-from", "elsewhere"},
		{check("--subnet", "sub-1"), "--subnet", "sub-1"},
		{check("--target-org", "o-abc"), "--target-org", "o-abc"},
		{check("--target-ou", "ou-abc"), "--target-ou", "ou-abc"},
		{lint("--paths", "nope"), "--paths", "nope"},
		{lint("--format", "xml"), "--format", "xml"},
		{[]string{"lint", "--key-policy", filepath.Join(dir, "missing.json"), "--key-arn", keyARN, "--target", acct}, "--key-policy", filepath.Join(dir, "missing.json")},
		{[]string{"lint", "--key-policy", policy, "--key-arn", "not-an-arn", "--target", acct}, "--key-arn", "not-an-arn"},
		{[]string{"lint", "--key-policy", policy, "--key-arn", keyARN, "--target", "1234"}, "--target", "1234"},
		{cleanup("--format", "xml"), "--format", "xml"},
		{[]string{"cleanup", "--older-than", "0", "--region", region}, "--older-than", "0"},
		{[]string{"cleanup", "--older-than", "2h", "--region", "mars-1"}, "--region", "mars-1"},
		{cleanup("--target", "12"), "--target", "12"},
		{[]string{"diagnose", "--cloudtrail", filepath.Join(dir, "none")}, "--cloudtrail", filepath.Join(dir, "none")},
	}
	before := w.mutations()
	named := 0
	for _, tc := range cases {
		r := w.amigate(t, w.env(t), tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.flag) || !strings.Contains(r.stderr, tc.value) {
			t.Errorf("amigate %s: exit %d, stderr %q; want exit 2 naming %s and %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.flag, tc.value)
			continue
		}
		named++
	}
	mutations := w.mutations() - before
	if mutations != 0 {
		t.Errorf("bad input made %d mutating AWS calls", mutations)
	}
	report("bad input: %d cases: %d exit 2 naming the flag and the value; %d mutating AWS calls", len(cases), named, mutations)
}
