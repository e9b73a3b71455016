package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	examples "github.com/amigate/packer-plugin-amigate/example"
	"github.com/amigate/packer-plugin-amigate/internal/awsim"
	"github.com/amigate/packer-plugin-amigate/internal/gate"
)

// orgEnv serves example/sim-world-org.json as simEnv serves the first
// write-up's world.
func orgEnv(t *testing.T) (*awsim.Server, string) {
	t.Helper()
	s := awsim.New()
	if err := s.LoadWorld(bytes.NewReader(examples.SimWorldOrg)); err != nil {
		t.Fatal(err)
	}
	return s, serveEnv(t, s)
}

// `amigate check --target-ou` gates every active account of the OU and the
// OUs below it, through the role --org-role-name names in each; an audit
// afterwards is green and changes nothing.
func TestCheckTargetOU(t *testing.T) {
	s, ami := orgEnv(t)
	args := []string{"--ami", ami, "--target-ou", "ou-ex12-prod0001", "--org-role-name", "amigate", "--format", "json"}
	r := amigate(t, "", append([]string{"check"}, args...)...)
	var rep gate.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); r.code != exitOK || err != nil || !rep.OK {
		t.Fatalf("exit %d %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	var accounts []string
	for _, tr := range rep.Targets {
		accounts = append(accounts, tr.Account)
	}
	if got := strings.Join(accounts, ","); got != "111122223333,777788889999,222233334444" && got != "111122223333,222233334444,777788889999" {
		t.Fatalf("targets %s", got)
	}
	if rep.Organization == nil || rep.Organization.Accounts != 3 || !strings.Contains(r.stderr, "organization o-exampleorg1: 3 account(s) to gate") {
		t.Fatalf("organization %+v\n%s", rep.Organization, r.stderr)
	}
	before := mutating(s)
	if r := amigate(t, "", append([]string{"audit"}, args...)...); r.code != exitOK || mutating(s) != before {
		t.Fatalf("audit: exit %d, %d mutating calls\n%s", r.code, mutating(s)-before, r.stderr)
	}
}

// The organization flags' bad values are exit 2, naming the flag and the
// value, before any AWS call.
func TestCheckOrganizationFlagsBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--target-ou", "ou-1"}, `--target-ou "ou-1": not an organizational unit id`},
		{[]string{"--target-org", "arn:aws:organizations::1:organization/o-x"}, `--target-org "arn:aws:organizations::1:organization/o-x"`},
		{[]string{"--target-org", "o-exampleorg1", "--exclude-account", "12"}, `--exclude-account "12": not a 12-digit AWS account id`},
		{[]string{"--target", "111122223333", "--exclude-account", "777788889999"}, `--exclude-account "777788889999": excludes from target_organizations`},
		{[]string{"--target-org", "o-exampleorg1", "--org-role-name", "a b"}, `--org-role-name "a b": not an IAM role name`},
		{[]string{"--target-org", "o-exampleorg1", "--org-paths", "asg,boat"}, `--org-paths "asg,boat"`},
		{[]string{"--target-org", "o-exampleorg1", "--organizations-role", "nope"}, `--organizations-role "nope"`},
		{[]string{"--target-org", "o-exampleorg1", "--key-policy-principals", "all"}, `--key-policy-principals "all": must be one of auto, accounts, organization`},
		{[]string{"--target", "111122223333", "--org-role-name", "amigate"}, `--org-role-name: is for the accounts of target_organizations`},
	} {
		s, ami := orgEnv(t)
		r := amigate(t, "", append([]string{"check", "--ami", ami}, tc.args...)...)
		if r.code != exitBadInput || !strings.Contains(r.stderr, tc.want) || len(s.Calls()) != 1 { // the test's own DescribeImages
			t.Errorf("%v: exit %d, %d calls\n%s\nwant %q", tc.args, r.code, len(s.Calls()), r.stderr, tc.want)
		}
	}
}
