package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// The organization of the tests: the source account manages it; prod holds
// two accounts and a nested OU with a third, dev a suspended account.
const (
	orgID    = "o-exampleorg1"
	prodOU   = "ou-ex12-prod0001"
	webOU    = "ou-ex12-web00001"
	devOU    = "ou-ex12-dev00001"
	webAcct  = "222233334444"
	devAcct  = "333344445555"
	prodPath = orgID + "/r-ex12/" + prodOU + "/"
)

func orgWorld(management string) json.RawMessage {
	return json.RawMessage(`[{"id": "` + orgID + `", "root_id": "r-ex12", "management_account": "` + management + `",
		"organizational_units": [
			{"name": "prod", "id": "` + prodOU + `", "accounts": [{"id": "` + target + `"}, {"id": "` + target2 + `"}],
			 "organizational_units": [{"name": "web", "id": "` + webOU + `", "accounts": [{"id": "` + webAcct + `"}]}]},
			{"name": "dev", "id": "` + devOU + `", "accounts": [{"id": "` + devAcct + `", "status": "SUSPENDED"}]}]}]`)
}

// orgOptions gate the AMI for OUs or the organization, assuming the role
// "amigate" in every account found.
func orgOptions(amis map[string]string, orgs, ous []string) Options {
	o := baseOptions(amis)
	o.Targets = nil
	o.TargetOrganizations, o.TargetOrganizationalUnits = orgs, ous
	o.OrganizationTargets = MemberTargets{RoleName: "amigate"}
	return o
}

func (s *sim) launchPermissions(t *testing.T, ami string) []string {
	t.Helper()
	out, err := ec2.NewFromConfig(s.config(owner, "us-east-1")).DescribeImageAttribute(context.Background(), &ec2.DescribeImageAttributeInput{
		ImageId: aws.String(ami), Attribute: ec2types.ImageAttributeNameLaunchPermission})
	if err != nil {
		t.Fatal(err)
	}
	var perms []string
	for _, p := range out.LaunchPermissions {
		perms = append(perms, aws.ToString(p.UserId)+aws.ToString(p.OrganizationArn)+aws.ToString(p.OrganizationalUnitArn))
	}
	slices.Sort(perms)
	return perms
}

func targetAccounts(rep *Report) []string {
	var out []string
	for _, t := range rep.Targets {
		out = append(out, t.Account)
	}
	slices.Sort(out)
	return out
}

// An OU as the target: every active account in it and in the OUs below it
// is gated, the AMI is shared with the OU itself (one launch permission),
// and each account can launch it afterwards; the accounts' organization
// path is known to the verdict.
func TestTargetOUGatesEveryAccountBelowIt(t *testing.T) {
	accounts := []string{target, target2, webAcct, devAcct}
	s := startWorld(t, testWorld{targets: accounts, organizations: orgWorld(owner)})
	amis := s.imageIDs(t)
	rep := run(t, s, orgOptions(amis, nil, []string{prodOU}))
	if !rep.OK {
		t.Fatalf("not green: %s", codesOf(rep))
	}
	if got, want := targetAccounts(rep), []string{target, webAcct, target2}; !slices.Equal(got, []string{target, webAcct, target2}) {
		t.Fatalf("targets %v, want %v", got, want)
	}
	if o := rep.Organization; o == nil || o.ID != orgID || o.Accounts != 3 || len(o.Skipped) != 0 || !slices.Equal(o.Units, []string{prodOU}) {
		t.Fatalf("organization in the report: %+v", rep.Organization)
	}
	ouARN := "arn:aws:organizations::" + owner + ":ou/" + orgID + "/" + prodOU
	if perms := s.launchPermissions(t, amis["us-east-1"]); !slices.Equal(perms, []string{ouARN}) {
		t.Fatalf("launch permissions %v, want the OU's only", perms)
	}
	for _, acct := range []string{target, target2, webAcct} {
		if ok, msg := s.runInstance(t, acct, "us-east-1", amis["us-east-1"]); !ok {
			t.Errorf("%s cannot launch the image: %s", acct, msg)
		}
	}
	if ok, _ := s.runInstance(t, devAcct, "us-east-1", amis["us-east-1"]); ok {
		t.Error("an account of another OU launched the image")
	}
	if n := count(s.mutations(), "kms:CreateGrant"); n != 3 {
		t.Errorf("%d grants, want one per account", n)
	}
}

// The whole organization, but one account: suspended accounts are skipped
// and reported, the source account (which owns the AMI) is no target, and
// the excluded account gets nothing: no launch permission (the AMI is
// shared account by account, since sharing with the organization would
// include it), no key-policy statement, no grant.
func TestTargetOrganizationSkipsSuspendedAndExcludedAccounts(t *testing.T) {
	accounts := []string{target, target2, webAcct, devAcct}
	s := startWorld(t, testWorld{targets: accounts, organizations: orgWorld(owner)})
	amis := s.imageIDs(t)
	opts := orgOptions(amis, []string{"arn:aws:organizations::" + owner + ":organization/" + orgID}, nil)
	opts.ExcludeAccounts = []string{target2}
	var said []string
	rep, err := Run(context.Background(), opts, s.sessions(t), func(l string) { said = append(said, l) })
	if err != nil || !rep.OK {
		t.Fatalf("run: %v %s", err, codesOf(rep))
	}
	if got := targetAccounts(rep); !slices.Equal(got, []string{target, webAcct}) {
		t.Fatalf("targets %v", got)
	}
	o := rep.Organization
	if o == nil || o.Accounts != 2 || len(o.Skipped) != 1 || o.Skipped[0].Account != devAcct || o.Skipped[0].State != "SUSPENDED" || !slices.Equal(o.Excluded, []string{target2}) {
		t.Fatalf("organization in the report: %+v", o)
	}
	if !slices.ContainsFunc(said, func(l string) bool { return strings.Contains(l, devAcct) && strings.Contains(l, "SUSPENDED") }) {
		t.Errorf("the suspended account is not reported in the progress: %q", said)
	}
	if perms := s.launchPermissions(t, amis["us-east-1"]); !slices.Equal(perms, []string{target, webAcct}) {
		t.Fatalf("launch permissions %v, want the two targets", perms)
	}
	if ok, _ := s.runInstance(t, target2, "us-east-1", amis["us-east-1"]); ok {
		t.Error("the excluded account launched the image")
	}
	if strings.Contains(s.keyPolicy(t, "us-east-1"), target2) {
		t.Error("the key policy names the excluded account")
	}
}

// Listing the organization needs its management account (or a delegated
// administrator): from a member, the error names organizations_role_arn;
// with a role of the management account there, the targets are found.
func TestOrganizationListedThroughTheManagementAccountsRole(t *testing.T) {
	const management = "999900001111"
	accounts := []string{target, target2, webAcct, devAcct, management}
	w := testWorld{targets: accounts, organizations: json.RawMessage(strings.Replace(string(orgWorld(management)), `"accounts": [{"id": "`+target+`"}`, `"accounts": [{"id": "`+owner+`"}, {"id": "`+target+`"}`, 1))}
	s := startWorld(t, w)
	amis := s.imageIDs(t)
	opts := orgOptions(amis, nil, []string{prodOU})
	_, err := Run(context.Background(), opts, s.sessions(t), nil)
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") || !strings.Contains(err.Error(), "organizations_role_arn") {
		t.Fatalf("listing from a member account: %v, want AccessDenied naming organizations_role_arn", err)
	}
	if m := s.mutations(); len(m) != 0 {
		t.Fatalf("mutating calls before the error: %v", m)
	}
	opts.OrganizationsRoleARN = roleARN(management)
	rep := run(t, s, opts)
	if !rep.OK || !slices.Equal(targetAccounts(rep), []string{target, webAcct, target2}) {
		t.Fatalf("through the management account's role: ok=%v targets %v %s", rep.OK, targetAccounts(rep), codesOf(rep))
	}
}

// Targets that do not exist in the organization are bad input, named, and
// nothing is changed.
func TestOrganizationTargetsThatDoNotExist(t *testing.T) {
	s := startWorld(t, testWorld{targets: []string{target}, organizations: orgWorld(owner)})
	amis := s.imageIDs(t)
	opts := orgOptions(amis, []string{"o-otherorg123"}, []string{"ou-ex12-nosuch01"})
	_, err := Run(context.Background(), opts, s.sessions(t), nil)
	var ie InputErrors
	if !errors.As(err, &ie) || len(ie) != 2 || ie[0].Field != "target_organizations" || ie[0].Value != "o-otherorg123" ||
		ie[1].Field != "target_organizational_units" || ie[1].Value != "ou-ex12-nosuch01" {
		t.Fatalf("err = %v", err)
	}
	if m := s.mutations(); len(m) != 0 {
		t.Fatalf("mutating calls: %v", m)
	}
}

// The verdict knows each account's organization path: a key policy that
// allows the organization's prod OU by aws:PrincipalOrgPaths lets its
// accounts launch with no patch, and amigate adds nothing for them.
func TestOrganizationPathReachesTheVerdict(t *testing.T) {
	policy := strings.Replace(defaultPolicy, "\n  ]", `,
    {"Sid": "ProdUse", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant"], "Resource": "*",
     "Condition": {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": ["`+prodPath+`*"]}}}
  ]`, 1)
	s := startWorld(t, testWorld{policy: policy, targets: []string{target, target2, webAcct}, organizations: orgWorld(owner)})
	amis := s.imageIDs(t)
	opts := orgOptions(amis, nil, []string{prodOU})
	opts.OrganizationTargets.Paths = []keypolicy.Path{keypolicy.PathInstance}
	rep := run(t, s, opts)
	if !rep.OK || len(rep.Changes.KeyPolicies) != 0 {
		t.Fatalf("ok=%v %s, key policy changes %+v", rep.OK, codesOf(rep), rep.Changes.KeyPolicies)
	}
}

// bigOrgWorld is an organization of n accounts in the prod OU (ids
// 1000000000NN), managed by the source account, and one account in dev.
func bigOrgWorld(n int) (json.RawMessage, []string) {
	var accounts, entries []string
	for i := range n {
		a := fmt.Sprintf("10%010d", i)
		accounts = append(accounts, a)
		entries = append(entries, `{"id": "`+a+`"}`)
	}
	return json.RawMessage(`[{"id": "` + orgID + `", "root_id": "r-ex12", "management_account": "` + owner + `",
		"organizational_units": [
			{"name": "prod", "id": "` + prodOU + `", "accounts": [` + strings.Join(entries, ",") + `]},
			{"name": "dev", "id": "` + devOU + `", "accounts": [{"id": "` + devAcct + `"}]}]}]`), accounts
}

// 300 accounts of an OU do not fit in a key policy one ARN at a time: the
// automatic mode names the OU instead (aws:PrincipalOrgPaths, the caller's
// own Auto Scaling roles through ${aws:PrincipalAccount}), in one
// PutKeyPolicy well under 32 KiB; every account's Auto Scaling role gets
// its grant (created from the account, which the OU statement lets it do)
// and its instances launch, and an account outside the OU still cannot.
func TestOrganizationModeWhenTheAccountsDoNotFit(t *testing.T) {
	org, accounts := bigOrgWorld(300)
	s := startWorld(t, testWorld{targets: append(accounts, devAcct), organizations: org})
	amis := s.imageIDs(t)
	rep := run(t, s, orgOptions(amis, nil, []string{prodOU}))
	if !rep.OK || len(rep.Targets) != 300 {
		t.Fatalf("ok=%v, %d targets: %.500s", rep.OK, len(rep.Targets), codesOf(rep))
	}
	m := s.mutations()
	if n := count(m, "kms:PutKeyPolicy"); n != 1 {
		t.Fatalf("%d PutKeyPolicy, want 1", n)
	}
	if n := count(m, "kms:CreateGrant"); n != 300 {
		t.Fatalf("%d CreateGrant, want 300", n)
	}
	policy := s.keyPolicy(t, "us-east-1")
	if len(policy) > keypolicy.MaxPolicySize || !strings.Contains(policy, keypolicy.SidOrgAutoScalingGrants) || !strings.Contains(policy, prodPath+"*") {
		t.Fatalf("key policy (%d bytes) is not in the organization mode:\n%.2000s", len(policy), policy)
	}
	for _, acct := range []string{accounts[0], accounts[299]} {
		if ok, msg := s.launchGroup(t, acct, "us-east-1", amis["us-east-1"], "after"); !ok {
			t.Errorf("%s: the group cannot launch: %s", acct, msg)
		}
	}
	if ok, _ := s.runInstance(t, devAcct, "us-east-1", amis["us-east-1"]); ok {
		t.Error("an account outside the OU launched the image")
	}
	before := len(s.mutations())
	if rep := run(t, s, orgOptions(amis, nil, []string{prodOU})); !rep.OK || len(s.mutations()) != before {
		t.Fatalf("second run: ok=%v, %d mutating calls", rep.OK, len(s.mutations())-before)
	}
}

// key_policy_principals = "organization" names the OU even for a few
// accounts, and leaves the excluded account out of it.
func TestOrganizationModeAskedFor(t *testing.T) {
	s := startWorld(t, testWorld{targets: []string{target, target2, webAcct, devAcct}, organizations: orgWorld(owner)})
	amis := s.imageIDs(t)
	opts := orgOptions(amis, nil, []string{prodOU})
	opts.KeyPolicyPrincipals, opts.ExcludeAccounts = PrincipalsOrganization, []string{target2}
	rep := run(t, s, opts)
	if !rep.OK || !slices.Equal(targetAccounts(rep), []string{target, webAcct}) {
		t.Fatalf("ok=%v targets %v %s", rep.OK, targetAccounts(rep), codesOf(rep))
	}
	policy := s.keyPolicy(t, "us-east-1")
	if !strings.Contains(policy, keypolicy.SidOrgUseKey) || strings.Contains(policy, "arn:aws:iam::"+target+":root") {
		t.Fatalf("key policy not in the organization mode:\n%s", policy)
	}
	if ok, _ := s.runInstance(t, target2, "us-east-1", amis["us-east-1"]); ok {
		t.Error("the excluded account launched the image")
	}
	if ok, msg := s.runInstance(t, webAcct, "us-east-1", amis["us-east-1"]); !ok {
		t.Errorf("%s cannot launch: %s", webAcct, msg)
	}
}

// A key policy that cannot be patched (here it names a deleted role) is
// said once however many batches of accounts the organization walk hands
// the run, and each account's grant is tried once (a review found the
// finding three or four times and every grant tried once per batch).
func TestOrganizationRunReportsAnUnpatchablePolicyOnce(t *testing.T) {
	s := startWorld(t, testWorld{targets: []string{target, target2, webAcct, devAcct}, organizations: orgWorld(owner)})
	s.nameDeletedRole(t)
	opts := orgOptions(s.imageIDs(t), nil, []string{prodOU})
	opts.KeyPolicyPrincipals = PrincipalsOrganization
	rep := run(t, s, opts)
	stale := 0
	for _, f := range rep.Findings {
		if f.Code == keypolicy.CodeStalePrincipal {
			stale++
		}
	}
	if rep.OK || stale != 1 {
		t.Fatalf("ok=%v, %d %s findings, want 1: %s", rep.OK, stale, keypolicy.CodeStalePrincipal, codesOf(rep))
	}
	if n := count(s.callsOf("kms"), "CreateGrant"); n != 3 {
		t.Fatalf("%d CreateGrant calls for 3 accounts", n)
	}
}

// The organization walk and the stream that works on its targets wait on
// other jobs of the run's pool: they take no slot of it, so even one slot
// is enough (holding one while waiting would starve the jobs they wait on).
func TestOrganizationRunWithOneSlot(t *testing.T) {
	s := startWorld(t, testWorld{targets: []string{target, target2, webAcct, devAcct}, organizations: orgWorld(owner)})
	opts := orgOptions(s.imageIDs(t), nil, []string{prodOU})
	opts.KeyPolicyPrincipals = PrincipalsOrganization
	r := newRun(opts, s.sessions(t), nil)
	r.parallelism = 1
	done := make(chan error, 1)
	var rep *Report
	go func() {
		var err error
		rep, err = r.run(context.Background())
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil || !rep.OK {
			t.Fatalf("one slot: %v %s", err, codesOf(rep))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run with one slot is stuck")
	}
}

// Listing the organization needs the source account, which STS names: a
// run (not a dry run) as a role makes no IAM call in the source account to
// read its own role (the dry run's policy simulator needs that, nothing
// else does).
func TestOrganizationRunAsARoleReadsOnlyItsAccount(t *testing.T) {
	s := startWorld(t, testWorld{targets: []string{target, target2, webAcct, devAcct}, organizations: orgWorld(owner)})
	sess := s.builderSession(t, `["*"]`)
	s.setup = len(s.Calls())
	rep, err := Run(context.Background(), orgOptions(s.imageIDs(t), nil, []string{prodOU}), sess, nil)
	if err != nil || !rep.OK {
		t.Fatalf("run: %v %s", err, codesOf(rep))
	}
	for _, c := range s.Calls()[s.setup:] {
		if c.Service == "iam" && c.Account == owner {
			t.Errorf("the run called iam:%s in the source account", c.Action)
		}
	}
}
