package keypolicy

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// applyPlan returns the key as it is after the plan: new policy, new grants.
func applyPlan(t *testing.T, key Key, plan *Plan) Key {
	t.Helper()
	key.Policy = mustPolicy(t, string(plan.After))
	key.Grants = append(append([]Grant(nil), key.Grants...), plan.Grants...)
	return key
}

// statementTexts returns the original text of every statement not owned by
// amigate.
func statementTexts(p *Policy) []string {
	var out []string
	for i, s := range p.Statements {
		if !OwnedSid(s.Sid) {
			out = append(out, string(p.raw[p.spans[i][0]:p.spans[i][1]]))
		}
	}
	return out
}

// checkPlanProperties asserts what every plan must guarantee.
func checkPlanProperties(t *testing.T, key Key, targets []Target, opts PlanOptions) *Plan {
	t.Helper()
	plan, err := PlanPatch(key, targets, opts)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	after := applyPlan(t, key, plan)

	// 1. Every statement amigate does not own is byte-for-byte untouched.
	before, now := statementTexts(key.Policy), statementTexts(after.Policy)
	if strings.Join(before, "\x00") != strings.Join(now, "\x00") {
		t.Errorf("foreign statements changed:\nbefore %q\nafter  %q", before, now)
	}

	// 2. Applying the plan to its own output changes nothing.
	again, err := PlanPatch(after, targets, opts)
	if err != nil {
		t.Fatalf("re-plan: %v", err)
	}
	if again.Changed || len(again.Grants) > 0 || !bytes.Equal(again.After, plan.After) {
		t.Errorf("second plan not empty: changed=%v grants=%v\n%s", again.Changed, again.Grants, Diff(plan.After, again.After))
	}

	// 3. Every configured path passes, unless the plan reports it blocked.
	v := Check(after, targets)
	for _, tv := range v.Targets {
		for _, pv := range tv.Paths {
			if !pv.OK && len(plan.Blocked) == 0 {
				t.Errorf("after the plan %s/%s still fails: %+v", tv.Account, pv.Path, pv.Findings)
			}
		}
	}

	// 4. No principal outside the targets gains a permission.
	outsiders := []string{"arn:aws:iam::999988887777:root", "arn:aws:iam::999988887777:role/X", "arn:aws:iam::999988887777:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"}
	for _, o := range outsiders {
		for _, act := range []string{"kms:Decrypt", "kms:CreateGrant", "kms:DescribeKey", "kms:ReEncryptFrom", "kms:GenerateDataKeyWithoutPlaintext", "kms:PutKeyPolicy"} {
			for _, req := range []Request{
				testEnv(mustKeyARN(t, key.ARN)).serviceRequest(o, PathInstance, pathAction{action: act, createsGrant: act == "kms:CreateGrant", withContext: true}, nil),
				testEnv(mustKeyARN(t, key.ARN)).directGrantRequest(o, DefaultAutoScalingRole("aws", "999988887777"), nil),
			} {
				req.Action = act
				b, a := Authorize(&key, req, nil).Decision, Authorize(&after, req, nil).Decision
				if a == Allowed && b != Allowed {
					t.Errorf("outsider %s gained %s", o, act)
				}
			}
		}
	}
	return plan
}

func mustKeyARN(t *testing.T, s string) ARN {
	t.Helper()
	a, err := ParseKeyARN(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestPlanDefaultPolicy(t *testing.T) {
	key := Key{ARN: writeup1Key, Policy: loadPolicy(t, "writeup3-default-policy.json")}
	targets := []Target{{Account: "111122223333"}, {Account: "222233334444", Paths: []Path{PathInstance, PathCopy}}}
	plan := checkPlanProperties(t, key, targets, PlanOptions{})
	if !plan.Changed {
		t.Fatal("plan made no change to the default policy")
	}
	got := strings.Join(plan.Added[SidUseKey], ",")
	if got != "arn:aws:iam::111122223333:root,arn:aws:iam::222233334444:root" {
		t.Errorf("use-key principals = %s", got)
	}
	if len(plan.Added[SidAutoScalingGrants]) != 1 || len(plan.Grants) != 1 || plan.Grants[0].GranteePrincipal != writeup1SLR {
		t.Errorf("asg: added %v grants %+v", plan.Added[SidAutoScalingGrants], plan.Grants)
	}
	p := mustPolicy(t, string(plan.After))
	for _, s := range p.Statements {
		if s.Sid != SidAutoScalingGrants {
			continue
		}
		for _, c := range s.Conditions {
			if c.key == "kms:grantisforawsresource" || c.key == "kms:viaservice" {
				t.Errorf("the Auto Scaling grant statement carries %s, which makes the target's direct CreateGrant fail", c.Key)
			}
		}
	}
	diff := Diff(plan.Before, plan.After)
	if !strings.Contains(diff, "+ ") || strings.Contains(diff, "- ") {
		t.Errorf("diff should only add lines:\n%s", diff)
	}
}

// The first write-up's policy already lets the target use the key and
// create grants: only the grant is missing, the policy stays as it is.
func TestPlanWriteup1OnlyGrant(t *testing.T) {
	key := Key{ARN: writeup1Key, Policy: loadPolicy(t, "writeup1-policy.json")}
	plan := checkPlanProperties(t, key, []Target{{Account: "111122223333"}}, PlanOptions{})
	if plan.Changed {
		t.Errorf("policy changed although it already allows the target:\n%s", Diff(plan.Before, plan.After))
	}
	if len(plan.Grants) != 1 || plan.Grants[0].Name != "amigate-asg-111122223333-AWSServiceRoleForAutoScaling" {
		t.Errorf("grants = %+v", plan.Grants)
	}
}

func TestPlanMergesIntoOwnedStatements(t *testing.T) {
	key := Key{ARN: writeup1Key, Policy: loadPolicy(t, "writeup3-default-policy.json")}
	first, err := PlanPatch(key, []Target{{Account: "111122223333"}}, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key = applyPlan(t, key, first)
	second := checkPlanProperties(t, key, []Target{{Account: "111122223333"}, {Account: "555566667777"}}, PlanOptions{})
	p := mustPolicy(t, string(second.After))
	count := map[string]int{}
	for _, s := range p.Statements {
		count[s.Sid]++
	}
	for _, sid := range []string{SidUseKey, SidEC2Grants, SidAutoScalingGrants} {
		if count[sid] != 1 {
			t.Errorf("%s appears %d times, want one statement per purpose", sid, count[sid])
		}
	}
	if got := strings.Join(second.Added[SidUseKey], ","); got != "arn:aws:iam::555566667777:root" {
		t.Errorf("second plan added %s", got)
	}
}

func TestPlanLeavesExplicitDenyAlone(t *testing.T) {
	doc := `{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "NoDecryptFor1111", "Effect": "Deny", "Principal": {"AWS": "111122223333"}, "Action": "kms:Decrypt", "Resource": "*"}
  ]
}`
	key := Key{ARN: writeup1Key, Policy: mustPolicy(t, doc)}
	targets := []Target{{Account: "111122223333", Paths: []Path{PathInstance}}}
	plan := checkPlanProperties(t, key, targets, PlanOptions{})
	if len(plan.Blocked) == 0 || plan.Blocked[0].Code != CodeKeyPolicyDenies || plan.Blocked[0].Statement != "NoDecryptFor1111" {
		t.Fatalf("blocked = %+v", plan.Blocked)
	}
	if !strings.Contains(string(plan.After), `"Sid": "NoDecryptFor1111"`) {
		t.Error("the deny was removed")
	}
}

func TestPlanShapesAndSize(t *testing.T) {
	single := `{"Version":"2012-10-17","Statement":{"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"}}`
	key := Key{ARN: writeup1Key, Policy: mustPolicy(t, single)}
	plan := checkPlanProperties(t, key, []Target{{Account: "111122223333", Paths: []Path{PathInstance}}}, PlanOptions{})
	if !plan.Changed || !strings.Contains(string(plan.After), `[{"Sid":"Root"`) {
		t.Errorf("single statement not turned into a list around the original:\n%s", plan.After)
	}
	empty := "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": []\n}"
	key = Key{ARN: writeup1Key, Policy: mustPolicy(t, empty)}
	checkPlanProperties(t, key, []Target{{Account: "111122223333", Paths: []Path{PathInstance}}}, PlanOptions{})

	// Near the limit: many foreign statements, then too many targets.
	var b strings.Builder
	b.WriteString(`{"Version":"2012-10-17","Statement":[{"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"}`)
	for b.Len() < 30*1024 {
		fmt.Fprintf(&b, `,{"Sid":"Filler%d","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:role/R%d"},"Action":"kms:Encrypt","Resource":"*"}`, b.Len(), b.Len())
	}
	b.WriteString("]}")
	key = Key{ARN: writeup1Key, Policy: mustPolicy(t, b.String())}
	checkPlanProperties(t, key, []Target{{Account: "111122223333"}}, PlanOptions{})
	var many []Target
	for i := 0; i < 100; i++ {
		many = append(many, Target{Account: fmt.Sprintf("1000000%05d", i)})
	}
	_, err := PlanPatch(key, many, PlanOptions{})
	if !errors.Is(err, ErrPolicyTooLarge) || !strings.Contains(err.Error(), "aws:PrincipalOrgID") {
		t.Errorf("err = %v, want ErrPolicyTooLarge suggesting aws:PrincipalOrgID", err)
	}
}

func TestPlanGrantFromSource(t *testing.T) {
	key := Key{ARN: writeup1Key, Policy: loadPolicy(t, "writeup3-default-policy.json")}
	plan := checkPlanProperties(t, key, []Target{{Account: "111122223333", Paths: []Path{PathASG}}}, PlanOptions{GrantFromSource: true})
	if plan.Changed || len(plan.Grants) != 1 {
		t.Errorf("grant from source: changed=%v grants=%v", plan.Changed, plan.Grants)
	}
}

func TestPlanCustomSuffixRole(t *testing.T) {
	role := "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling_golden"
	key := Key{ARN: writeup1Key, Policy: loadPolicy(t, "writeup3-default-policy.json")}
	plan := checkPlanProperties(t, key, []Target{{Account: "111122223333", ASGRoles: []string{role}, Paths: []Path{PathASG}}}, PlanOptions{})
	if len(plan.Grants) != 1 || plan.Grants[0].GranteePrincipal != role {
		t.Fatalf("grants = %+v", plan.Grants)
	}
	after := applyPlan(t, key, plan)
	if a := Authorize(&after, testEnv(mustKeyARN(t, writeup1Key)).directGrantRequest("arn:aws:iam::111122223333:root", role, nil), nil); a.Decision != Allowed {
		t.Errorf("target cannot create the grant for its custom-suffix role: %+v", a)
	}
}
