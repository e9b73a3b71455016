package gate

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// auditOptions are `amigate audit`'s: the gate changing nothing.
func auditOptions(amis map[string]string, targets ...Target) Options {
	o := baseOptions(amis, targets...)
	o.Audit, o.ShareImage, o.KeyPolicy, o.CreateGrants = true, false, KeyPolicyCheck, false
	return o
}

// An audit of a released AMI finds each drift that would make a later
// launch fail, in the order a release meets them, and changes nothing: a
// revoked grant, an Auto Scaling role with a custom suffix made since the
// release, a launch permission removed, and the key scheduled for
// deletion.
func TestAuditFindsWhatDriftedSinceTheRelease(t *testing.T) {
	s := startWorld(t, testWorld{groups: map[string]string{target: "web"}})
	amis := s.imageIDs(t)
	tgt := Target{AccountID: target, RoleARN: roleARN(target), AutoScalingGroups: []string{"web"}}
	if rep := run(t, s, baseOptions(amis, tgt)); !rep.OK {
		t.Fatalf("release: %s", codesOf(rep))
	}
	ctx := context.Background()
	source := kms.NewFromConfig(s.config(owner, "us-east-1"))
	audit := func(step, want string) {
		t.Helper()
		before := len(s.mutations())
		rep := run(t, s, auditOptions(amis, tgt))
		if m := s.mutations()[before:]; len(m) != 0 {
			t.Fatalf("%s: the audit changed %v", step, m)
		}
		if !rep.Audit {
			t.Errorf("%s: report does not say it is an audit", step)
		}
		switch got := codesOf(rep); {
		case want == "" && (!rep.OK || got != ""):
			t.Fatalf("%s: audit not green: %s", step, got)
		case want != "" && (rep.OK || !strings.Contains(got, want)):
			t.Fatalf("%s: audit ok=%v %s, want %s", step, rep.OK, got, want)
		}
	}
	audit("right after the release", "")

	grants, err := source.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String("alias/golden-ami")})
	if err != nil || len(grants.Grants) != 1 {
		t.Fatalf("grants after the release: %v %v", grants, err)
	}
	if _, err := source.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: grants.Grants[0].KeyId, GrantId: grants.Grants[0].GrantId}); err != nil {
		t.Fatal(err)
	}
	audit("grant revoked", target+"/asg:"+keypolicy.CodeGrantMissing)
	if rep := run(t, s, baseOptions(amis, tgt)); !rep.OK { // the release again restores it
		t.Fatalf("release again: %s", codesOf(rep))
	}
	audit("grant restored", "")

	if _, err := iam.NewFromConfig(s.config(target, "us-east-1")).CreateServiceLinkedRole(ctx, &iam.CreateServiceLinkedRoleInput{
		AWSServiceName: aws.String("autoscaling.amazonaws.com"), CustomSuffix: aws.String("batch")}); err != nil {
		t.Fatal(err)
	}
	rep := run(t, s, auditOptions(amis, tgt))
	if rep.OK || !strings.Contains(failingPrincipals(rep), asgRole(target, "batch")) {
		t.Fatalf("a new custom-suffix role without a grant: ok=%v failing %s", rep.OK, failingPrincipals(rep))
	}
	if rep := run(t, s, baseOptions(amis, Target{AccountID: target, RoleARN: roleARN(target), ServiceLinkedRoleARNs: []string{asgRole(target, "batch")}})); !rep.OK {
		t.Fatalf("grant the new role: %s", codesOf(rep))
	}
	audit("new role granted", "")

	if _, err := ec2.NewFromConfig(s.config(owner, "us-east-1")).ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amis["us-east-1"]),
		LaunchPermission: &ec2types.LaunchPermissionModifications{Remove: []ec2types.LaunchPermission{{UserId: aws.String(target)}}}}); err != nil {
		t.Fatal(err)
	}
	audit("launch permission removed", target+"/instance:"+keypolicy.CodeImageNotShared)

	if _, err := source.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: grants.Grants[0].KeyId, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	audit("key scheduled for deletion", keypolicy.CodeKeyNotEnabled)
}

// An audit of a target without groups learns from ListRoles whether the
// account's default Auto Scaling role exists, as a release learns it from
// GetRole: one call, and a missing role is SERVICE_LINKED_ROLE_MISSING.
func TestAuditReadsTheDefaultRoleFromTheList(t *testing.T) {
	for _, missing := range []bool{false, true} {
		s := startWorld(t, testWorld{noServiceLinkedRole: missing})
		tgt := Target{AccountID: target, RoleARN: roleARN(target)}
		rep := run(t, s, auditOptions(s.imageIDs(t), tgt))
		iamCalls := s.callsOf("iam")
		if count(iamCalls, "GetRole") != 0 || count(iamCalls, "ListRoles") != 1 {
			t.Fatalf("IAM calls %v, want one ListRoles", iamCalls)
		}
		if got := strings.Contains(codesOf(rep), target+"/asg:"+keypolicy.CodeServiceLinkedRole); got != missing {
			t.Fatalf("role missing %v: %s", missing, codesOf(rep))
		}
	}
}

// failingPrincipals lists the principals of the failing paths.
func failingPrincipals(rep *Report) string {
	var out []string
	for _, tr := range rep.Targets {
		for _, p := range tr.Paths {
			if !p.OK {
				out = append(out, p.Principal)
			}
		}
	}
	return strings.Join(out, ",")
}

// An audit is refused with changes asked for: it would not be an audit.
func TestAuditChangesNothingByDefinition(t *testing.T) {
	o := auditOptions(map[string]string{"us-east-1": "ami-0123456789abcdef0"})
	o.KeyPolicy = KeyPolicyPatch
	errs := o.Validate()
	if len(errs) != 1 || errs[0].Field != "audit" {
		t.Fatalf("errors = %v", errs)
	}
}
