package gate

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/awsapi"
)

// The acceptance test runs the gate against real AWS accounts. It changes
// them (launch permission, key policy, grants): see docs/acceptance.md for
// the setup, what it changes and how to undo it. Never run in CI.

// accMutatingCalls are the API calls, as the report counts them, that change
// an account.
var accMutatingCalls = []string{
	"ec2:ModifyImageAttribute",
	"ec2:ModifySnapshotAttribute",
	"kms:PutKeyPolicy",
	"kms:CreateGrant",
}

func TestAcceptance(t *testing.T) {
	if os.Getenv("PACKER_ACC") != "1" {
		t.Skip("set PACKER_ACC=1 to run against real AWS (docs/acceptance.md)")
	}
	var missing []string
	env := func(name string) string {
		v := strings.TrimSpace(os.Getenv(name))
		if v == "" {
			missing = append(missing, name)
		}
		return v
	}
	region := env("AMIGATE_ACC_REGION")
	ami := env("AMIGATE_ACC_AMI")
	account := env("AMIGATE_ACC_TARGET_ACCOUNT")
	roleARN := env("AMIGATE_ACC_TARGET_ROLE_ARN")
	if len(missing) > 0 {
		t.Fatalf("%s not set (docs/acceptance.md)", strings.Join(missing, ", "))
	}
	var groups []string
	for _, g := range strings.Split(os.Getenv("AMIGATE_ACC_TARGET_ASG"), ",") {
		if g = strings.TrimSpace(g); g != "" {
			groups = append(groups, g)
		}
	}

	opts := Options{
		AMIs: map[string]string{region: ami},
		Targets: []Target{{
			AccountID:         account,
			RoleARN:           roleARN,
			ExternalID:        os.Getenv("AMIGATE_ACC_TARGET_EXTERNAL_ID"),
			AutoScalingGroups: groups,
		}},
		ShareImage:        true,
		KeyPolicy:         KeyPolicyPatch,
		CreateGrants:      true,
		TestLaunch:        TestLaunchNone,
		TestLaunchTimeout: 10 * time.Minute,
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	// run runs the gate once, with sessions of its own so that the report's
	// API call counts are this run's only.
	run := func(name string, dryRun bool) *Report {
		t.Helper()
		sess, err := awsapi.New(ctx, awsapi.Settings{Region: region})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		o := opts
		o.DryRun = dryRun
		t.Logf("=== %s", name)
		report, err := Run(ctx, o, sess, func(l string) { t.Log(l) })
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: ok=%v, %d change(s), API calls %v", name, report.OK, report.Changes.Count(), report.APICalls)
		return report
	}

	// 1. Dry run: every change is planned, none is made.
	dry := run("dry run", true)
	if !dry.DryRun {
		t.Error("dry run: the report does not say dry_run")
	}
	for _, what := range accApplied(dry.Changes) {
		t.Errorf("dry run: applied %s", what)
	}
	for _, call := range accMutatingCalls {
		if n := dry.APICalls[call]; n > 0 {
			t.Errorf("dry run: made %d %s call(s)", n, call)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// 2. For real: share, patch and grant; every path must then pass.
	apply := run("apply", false)
	accLogChanges(t, apply)
	if path := os.Getenv("AMIGATE_ACC_REPORT"); path != "" {
		accWriteReport(t, path, apply)
	}
	if !apply.OK {
		t.Errorf("apply: the gate says no:\n  %s", strings.Join(apply.Failures(), "\n  "))
	}
	for _, c := range apply.Changes.LaunchPermissions {
		if !c.Applied {
			t.Errorf("apply: launch permission of %s for %v not applied", c.Resource, c.Added)
		}
	}
	for _, c := range apply.Changes.KeyPolicies {
		if !c.Applied {
			t.Errorf("apply: key policy of %s not applied", c.Key)
		}
	}
	for _, c := range apply.Changes.Grants {
		if !c.Applied {
			t.Errorf("apply: grant %s for %s not applied", c.Name, c.Grantee)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// 3. Again: nothing left to do.
	again := run("again", false)
	if !again.OK {
		t.Errorf("again: the gate says no:\n  %s", strings.Join(again.Failures(), "\n  "))
	}
	if n := again.Changes.Count(); n != 0 {
		b, _ := json.MarshalIndent(again.Changes, "", "  ")
		t.Errorf("again: %d change(s), want none (not idempotent):\n%s", n, b)
	}
	for _, call := range accMutatingCalls {
		if n := again.APICalls[call]; n > 0 {
			t.Errorf("again: made %d %s call(s), want none", n, call)
		}
	}
}

// accApplied lists the changes marked applied.
func accApplied(c Changes) []string {
	var out []string
	for _, p := range c.LaunchPermissions {
		if p.Applied {
			out = append(out, "launch permission of "+p.Resource)
		}
	}
	for _, p := range c.SnapshotPermissions {
		if p.Applied {
			out = append(out, "create-volume permission of "+p.Resource)
		}
	}
	for _, k := range c.KeyPolicies {
		if k.Applied {
			out = append(out, "key policy of "+k.Key)
		}
	}
	for _, g := range c.Grants {
		if g.Applied {
			out = append(out, "grant "+g.Name+" on "+g.Key)
		}
	}
	return out
}

// accLogChanges logs what the run changed, with what undoing it needs: the
// image, the grant ids and the key policies as they were.
func accLogChanges(t *testing.T, r *Report) {
	t.Helper()
	for _, c := range r.Changes.LaunchPermissions {
		t.Logf("changed: launch permission of %s in %s for %v", c.Resource, c.Region, c.Added)
	}
	for _, g := range r.Changes.Grants {
		t.Logf("changed: grant %s (id %s) on %s for %s, created from %s", g.Name, g.GrantID, g.Key, g.Grantee, g.From)
	}
	for _, k := range r.Changes.KeyPolicies {
		t.Logf("changed: key policy of %s; the policy before:\n%s", k.Key, k.Before)
	}
}

func accWriteReport(t *testing.T, path string, r *Report) {
	t.Helper()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatalf("encode report: %v", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatalf("write report: %v", err)
	}
	t.Logf("report written to %s", path)
}
