package gate

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

func TestPreflight(t *testing.T) {
	ctx := context.Background()
	targets := []Target{{AccountID: target}}

	s := startWorld(t, testWorld{})
	rep, err := Preflight(ctx, PreflightOptions{Region: "us-east-1", KeyID: "alias/golden-ami", Targets: targets}, s.sessions(t), nil)
	if err != nil || !rep.OK || rep.Key.Manager != "CUSTOMER" || len(rep.Planned[keypolicy.SidUseKey]) != 1 || len(rep.Grants) != 1 {
		t.Fatalf("a good key: %v %+v", err, rep)
	}
	if m := s.mutations(); len(m) != 0 {
		t.Fatalf("preflight changed %v", m)
	}

	s = startWorld(t, testWorld{key: "alias/aws/ebs"})
	rep, err = Preflight(ctx, PreflightOptions{Region: "us-east-1", KeyID: "alias/aws/ebs"}, s.sessions(t), nil)
	if err != nil || rep.OK || rep.Findings[0].Code != keypolicy.CodeAWSManagedKey {
		t.Fatalf("aws/ebs: %v %+v", err, rep)
	}

	deny := strings.Replace(defaultPolicy, "\n  ]", `,
    {"Sid": "office only", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*", "Condition": {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}, "StringNotEquals": {"aws:PrincipalAccount": "444455556666"}}}
  ]`, 1)
	s = startWorld(t, testWorld{policy: deny})
	rep, err = Preflight(ctx, PreflightOptions{Region: "us-east-1", KeyID: "alias/golden-ami", Targets: targets}, s.sessions(t), nil)
	if err != nil || rep.OK || !strings.Contains(rep.Findings[0].Message, "office only") {
		t.Fatalf("a Deny no patch can lift: %v %+v", err, rep)
	}

	// A build principal that may not take the key policy lock fails now,
	// not after the bake.
	policy := strings.Replace(defaultPolicy, "\n  ]", `,
    {"Sid": "no aliases", "Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "kms:CreateAlias", "Resource": "*"}
  ]`, 1)
	s = startWorld(t, testWorld{policy: policy})
	rep, err = Preflight(ctx, PreflightOptions{Region: "us-east-1", KeyID: "alias/golden-ami", Targets: targets}, s.sessions(t), nil)
	if err != nil || rep.OK || len(rep.Findings) != 1 || rep.Findings[0].Code != keypolicy.CodePermissionMissing || rep.Findings[0].Actions[0] != "kms:CreateAlias" {
		t.Fatalf("no kms:CreateAlias: %v %+v", err, rep)
	}

	_, err = Preflight(ctx, PreflightOptions{Region: "us-east-1", KeyID: "alias/nope"}, s.sessions(t), nil)
	var ie InputErrors
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), `kms_key_id "alias/nope": no such key in us-east-1`) {
		t.Fatalf("unknown key: %v", err)
	}
}

// Before the bake, the accounts of a target OU are checked like target
// blocks: a Deny that no patch can lift for one of them fails the build in
// seconds, the suspended account is reported, and an OU that does not
// exist is bad input.
func TestPreflightChecksTheAccountsOfAnOU(t *testing.T) {
	ctx := context.Background()
	deny := strings.Replace(defaultPolicy, "\n  ]", `,
    {"Sid": "not this one", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalAccount": "`+webAcct+`"}}}
  ]`, 1)
	s := startWorld(t, testWorld{policy: deny, targets: []string{target, target2, webAcct, devAcct}, organizations: orgWorld(owner)})
	opts := PreflightOptions{Region: "us-east-1", KeyID: "alias/golden-ami", TargetOrganizations: []string{orgID}}
	rep, err := Preflight(ctx, opts, s.sessions(t), nil)
	if err != nil || rep.OK || len(rep.Findings) == 0 || !strings.Contains(rep.Findings[0].Message, "not this one") {
		t.Fatalf("a Deny on an account of the organization: %v %+v", err, rep)
	}
	if o := rep.Organization; o == nil || o.Accounts != 3 || len(o.Skipped) != 1 || o.Skipped[0].Account != devAcct {
		t.Fatalf("organization: %+v", rep.Organization)
	}
	if m := s.mutations(); len(m) != 0 {
		t.Fatalf("preflight changed %v", m)
	}
	opts.ExcludeAccounts = []string{webAcct}
	if rep, err := Preflight(ctx, opts, s.sessions(t), nil); err != nil || !rep.OK {
		t.Fatalf("with the denied account excluded: %v %+v", err, rep)
	}
	opts.TargetOrganizations, opts.TargetOrganizationalUnits = nil, []string{"ou-ex12-nosuch01"}
	_, err = Preflight(ctx, opts, s.sessions(t), nil)
	var ie InputErrors
	if !errors.As(err, &ie) || ie[0].Field != "target_organizational_units" {
		t.Fatalf("unknown OU: %v", err)
	}
}

// A key that fails the key checks fails the build before the organization
// is listed (AWS Organizations answers a few calls a second).
func TestPreflightChecksTheKeyBeforeListingTheOrganization(t *testing.T) {
	s := startWorld(t, testWorld{key: "alias/aws/ebs", organizations: orgWorld(owner)})
	rep, err := Preflight(context.Background(), PreflightOptions{Region: "us-east-1", KeyID: "alias/aws/ebs", TargetOrganizations: []string{orgID}}, s.sessions(t), nil)
	if err != nil || rep.OK || rep.Findings[0].Code != keypolicy.CodeAWSManagedKey {
		t.Fatalf("aws/ebs: %v %+v", err, rep)
	}
	if calls := s.callsOf("organizations"); len(calls) != 0 {
		t.Fatalf("the organization was listed for a key that fails: %v", calls)
	}
}
