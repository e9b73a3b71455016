package keypolicy

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Accounts of the organization tests, with their organization paths:
// ou-ab12-11111111 holds ou-ab12-22222222; ou-ab12-33333333 is beside it.
const (
	ou1      = "o-abcdefghij/r-ab12/ou-ab12-11111111/"
	ou1child = "o-abcdefghij/r-ab12/ou-ab12-11111111/ou-ab12-22222222/"
	ou3      = "o-abcdefghij/r-ab12/ou-ab12-33333333/"
	rootPath = "o-abcdefghij/r-ab12/"

	memberA   = "111122223333" // in ou1's child OU, a target
	memberB   = "222233334444" // in ou1, a target
	excludedE = "333344445555" // in ou1, excluded from the scope
	joinerJ   = "666677778888" // in ou1, not a target: joins later
	ou3Member = "777788889999" // in ou3
	rootAcct  = "888899990000" // directly under the root
	foreign   = "989898989898" // in another organization
	noOrg     = "121212121212" // in no organization
)

var orgPaths = map[string]string{
	memberA: ou1child, memberB: ou1, excludedE: ou1, joinerJ: ou1,
	ou3Member: ou3, rootAcct: rootPath, foreign: otherOrgPath, noOrg: "",
	"444455556666": ou3, // the key owner's account is in the organization too
}

func orgTarget(account string, paths ...Path) Target {
	return Target{Account: account, OrgPath: orgPaths[account], Paths: paths}
}

// requestsOf are the requests the principals of an account make on the
// instance and asg paths, its direct CreateGrant for grantee, and a direct
// Decrypt with no service in between.
func requestsOf(t *testing.T, keyARN ARN, account, grantee string) []Request {
	t.Helper()
	tg := Target{Account: account, OrgPath: orgPaths[account]}
	var out []Request
	for _, principal := range []string{AnyPrincipal("aws", account), "arn:aws:iam::" + account + ":role/Launcher", RootARN("aws", account), DefaultAutoScalingRole("aws", account)} {
		org := tg.orgFor(principal)
		for _, p := range []Path{PathInstance, PathASG, PathCopy} {
			for _, pa := range pathActions[p] {
				out = append(out, testEnv(keyARN).serviceRequest(principal, p, pa, org))
			}
		}
		out = append(out, testEnv(keyARN).directGrantRequest(principal, grantee, org))
		direct := testEnv(keyARN).directGrantRequest(principal, grantee, org)
		direct.Action = "kms:Decrypt"
		out = append(out, direct)
	}
	return out
}

// gains lists the requests of account that the plan newly allows.
func gains(t *testing.T, before, after Key, account, grantee string) []string {
	t.Helper()
	var out []string
	for _, req := range requestsOf(t, mustKeyARN(t, before.ARN), account, grantee) {
		if Authorize(&before, req, nil).Decision != Allowed && Authorize(&after, req, nil).Decision == Allowed {
			out = append(out, req.Principal+" "+req.Action)
		}
	}
	return out
}

// grantGains lists the direct CreateGrant requests for grantee that the
// key policy newly allows to account's roles (its Auto Scaling role may
// create grants through its own grant, by design).
func grantGains(t *testing.T, before, after Key, account, grantee string) []string {
	t.Helper()
	var out []string
	for _, req := range requestsOf(t, mustKeyARN(t, before.ARN), account, grantee) {
		if req.Context["kms:granteeprincipal"] == nil || req.Action != "kms:CreateGrant" || strings.Contains(req.Principal, ":assumed-role/AWSServiceRoleForAutoScaling") {
			continue
		}
		if Authorize(&before, req, nil).Decision != Allowed && Authorize(&after, req, nil).Decision == Allowed {
			out = append(out, req.Principal)
		}
	}
	return out
}

// checkOrgPlan asserts what every plan guarantees (see checkPlanProperties)
// and, in organization mode, that no account outside the scope, no
// excluded account and no grant for another account's Auto Scaling role
// is let in.
func checkOrgPlan(t *testing.T, key Key, targets []Target, opts PlanOptions) (*Plan, Key) {
	t.Helper()
	plan := checkPlanProperties(t, key, targets, opts)
	after := applyPlan(t, key, plan)
	for _, account := range []string{excludedE, ou3Member, rootAcct, foreign, noOrg} {
		if inTargets(targets, account) || (opts.Organization != nil && inScope(opts.Organization, account)) {
			continue
		}
		if g := gains(t, key, after, account, DefaultAutoScalingRole("aws", account)); len(g) > 0 {
			t.Errorf("account %s, outside the scope, gained: %v", account, g)
		}
	}
	// No account of the scope may create a grant for another account's
	// Auto Scaling role.
	for _, account := range []string{memberA, memberB, joinerJ} {
		for _, other := range []string{foreign, ou3Member, memberB} {
			if other == account {
				continue
			}
			if g := grantGains(t, key, after, account, DefaultAutoScalingRole("aws", other)); len(g) > 0 {
				t.Errorf("account %s may now create a grant for %s's Auto Scaling role: %v", account, other, g)
			}
		}
	}
	return plan, after
}

func inTargets(targets []Target, account string) bool {
	for _, t := range targets {
		if t.Account == account {
			return true
		}
	}
	return false
}

func inScope(s *OrgScope, account string) bool {
	sc, err := s.compile("444455556666")
	return err == nil && sc.covers(Target{Account: account, OrgPath: orgPaths[account]}) != nil
}

func orgStatements(t *testing.T, doc []byte) map[string]Statement {
	t.Helper()
	out := map[string]Statement{}
	for _, s := range mustPolicy(t, string(doc)).Statements {
		if strings.HasPrefix(s.Sid, "amigateOrg") {
			out[s.Sid] = s
		}
	}
	return out
}

func conditionValues(s Statement, op, key string) []string {
	for _, c := range s.Conditions {
		if c.Operator == op && strings.EqualFold(c.Key, key) {
			return c.Values.Items
		}
	}
	return nil
}

func defaultKey(t *testing.T) Key {
	return Key{ARN: writeup1Key, Policy: loadPolicy(t, "writeup3-default-policy.json")}
}

// The whole organization: one statement per purpose, {"AWS": "*"} limited
// with StringEquals aws:PrincipalOrgID and the guards of the account-mode
// statements, and no account named.
func TestPlanOrganizationWholeOrganization(t *testing.T) {
	targets := []Target{orgTarget(memberA), orgTarget(memberB, PathInstance, PathCopy)}
	plan, after := checkOrgPlan(t, defaultKey(t), targets, PlanOptions{Organization: &OrgScope{OrgID: testOrg}})
	if plan.Mode != PlanModeOrganization {
		t.Errorf("mode %q", plan.Mode)
	}
	sts := orgStatements(t, plan.After)
	if len(sts) != 3 || bytes.Contains(plan.After, []byte(":root\"")) && bytes.Count(plan.After, []byte(":root\"")) > 1 {
		t.Fatalf("want the three organization statements and no account root:\n%s", plan.After)
	}
	for sid, s := range sts {
		if s.Principal == nil || len(s.Principal.AWS.Items) != 1 || s.Principal.AWS.Items[0] != "*" {
			t.Errorf("%s: Principal %+v, want {\"AWS\": \"*\"}", sid, s.Principal)
		}
		if got := strings.Join(conditionValues(s, "StringEquals", "aws:PrincipalOrgID"), ","); got != testOrg {
			t.Errorf("%s: aws:PrincipalOrgID %q", sid, got)
		}
		// The key owner's account is never named by "*": there it would
		// not delegate to IAM.
		if got := strings.Join(conditionValues(s, "StringNotEquals", "aws:PrincipalAccount"), ","); got != "444455556666" {
			t.Errorf("%s: excluded %q, want the key owner's account", sid, got)
		}
		if got := strings.Join(plan.Added[sid], ","); got != testOrg {
			t.Errorf("%s: added %q", sid, got)
		}
		if got := strings.Join(plan.OrgAccounts[sid], ","); sid != SidOrgUseKey && got != memberA+","+memberB && got != memberA {
			t.Errorf("%s: accounts %q", sid, got)
		}
	}
	if got := strings.Join(conditionValues(sts[SidOrgUseKey], "StringEquals", "kms:ViaService"), ","); got != "ec2.us-east-1.amazonaws.com" {
		t.Errorf("use statement kms:ViaService %q", got)
	}
	if got := strings.Join(conditionValues(sts[SidOrgEC2Grants], "Bool", "kms:GrantIsForAWSResource"), ","); got != "true" {
		t.Errorf("EC2 grant statement kms:GrantIsForAWSResource %q", got)
	}
	asg := sts[SidOrgAutoScalingGrants]
	for _, c := range asg.Conditions {
		if c.key == "kms:grantisforawsresource" || c.key == "kms:viaservice" {
			t.Errorf("the Auto Scaling grant statement carries %s, which makes the target's direct CreateGrant fail", c.Key)
		}
	}
	if got := strings.Join(conditionValues(asg, "StringLike", "kms:GranteePrincipal"), ","); got != "arn:aws:iam::${aws:PrincipalAccount}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling*" {
		t.Errorf("grantee pattern %q", got)
	}
	if len(conditionValues(asg, "ForAllValues:StringEquals", "kms:GrantOperations")) != len(AutoScalingGrantOperations) {
		t.Errorf("grant operations: %+v", asg.Conditions)
	}
	// An account that joins the organization later is let in: that is
	// what the organization mode means, and why it is not the default.
	if g := gains(t, defaultKey(t), after, joinerJ, DefaultAutoScalingRole("aws", joinerJ)); len(g) == 0 {
		t.Error("an account of the organization that is not a target gained nothing")
	}
}

// OUs and exclusions: ForAnyValue:StringLike aws:PrincipalOrgPaths with a
// PATH* pattern per OU (the OU and every OU below it), StringNotEquals
// aws:PrincipalAccount for the excluded accounts. The planned policy,
// evaluated with the package's own evaluator, refuses an account outside
// the OUs, an excluded account, an account of another organization or of
// none, and a grant for another account's Auto Scaling role.
func TestPlanOrganizationNeverWidensBeyondTheScope(t *testing.T) {
	scope := &OrgScope{OrgID: testOrg, Paths: []string{ou1}, ExcludedAccounts: []string{excludedE}}
	targets := []Target{orgTarget(memberA), orgTarget(memberB)}
	plan, after := checkOrgPlan(t, defaultKey(t), targets, PlanOptions{Organization: scope})
	for sid, s := range orgStatements(t, plan.After) {
		if got := strings.Join(conditionValues(s, "ForAnyValue:StringLike", "aws:PrincipalOrgPaths"), ","); got != ou1+"*" {
			t.Errorf("%s: paths %q", sid, got)
		}
		if got := strings.Join(conditionValues(s, "StringNotEquals", "aws:PrincipalAccount"), ","); got != excludedE+",444455556666" {
			t.Errorf("%s: excluded %q", sid, got)
		}
	}
	before := defaultKey(t)
	for _, account := range []string{excludedE, ou3Member, rootAcct, foreign, noOrg} {
		if g := gains(t, before, after, account, DefaultAutoScalingRole("aws", account)); len(g) > 0 {
			t.Errorf("%s gained %v", account, g)
		}
	}
	// A target of the scope may create the grant for its own Auto Scaling
	// roles, the custom-suffix ones included, and for no one else's.
	keyARN := mustKeyARN(t, writeup1Key)
	caller := AnyPrincipal("aws", memberA)
	org := orgTarget(memberA).orgFor(caller)
	for grantee, want := range map[string]Decision{
		DefaultAutoScalingRole("aws", memberA):                           Allowed,
		DefaultAutoScalingRole("aws", memberA) + "_gold":                 Allowed,
		DefaultAutoScalingRole("aws", memberB):                           ImplicitDeny,
		DefaultAutoScalingRole("aws", foreign):                           ImplicitDeny,
		"arn:aws:iam::" + memberA + ":role/Launcher":                     ImplicitDeny,
		"arn:aws:iam::" + memberA + ":role/AWSServiceRoleForAutoScaling": ImplicitDeny,
	} {
		if got := Authorize(&after, testEnv(keyARN).directGrantRequest(caller, grantee, org), nil).Decision; got != want {
			t.Errorf("%s creating a grant for %s: %v, want %v", memberA, grantee, got, want)
		}
	}
	// Not through EC2, the key is not usable.
	direct := testEnv(keyARN).directGrantRequest(caller, "", org)
	direct.Action = "kms:Decrypt"
	if got := Authorize(&after, direct, nil).Decision; got != ImplicitDeny {
		t.Errorf("direct Decrypt by a member: %v", got)
	}
}

// The key owner's account is excluded from every organization statement:
// there {"AWS": "*"} would let a role use the key without its IAM policy,
// where account mode names the root and so delegates to IAM (AWS KMS
// Developer Guide, "Key policies").
func TestPlanOrganizationExcludesTheKeyOwnersAccount(t *testing.T) {
	doc := `{"Version":"2012-10-17","Statement":[{"Sid":"Admin","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:role/Admin"},"Action":"kms:*","Resource":"*"}]}`
	key := Key{ARN: writeup1Key, Policy: mustPolicy(t, doc)}
	plan, err := PlanPatch(key, []Target{orgTarget(memberA, PathInstance)}, PlanOptions{Organization: &OrgScope{OrgID: testOrg}})
	if err != nil {
		t.Fatal(err)
	}
	after := applyPlan(t, key, plan)
	noKMS := mustPolicy(t, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}`)
	owner := Target{Account: "444455556666", OrgPath: ou3}
	role := "arn:aws:iam::444455556666:role/App"
	for _, pa := range pathActions[PathInstance] {
		if a := Authorize(&after, testEnv(mustKeyARN(t, writeup1Key)).serviceRequest(role, PathInstance, pa, owner.orgFor(role)), noKMS); a.Decision == Allowed {
			t.Errorf("a role of the key owner's account, whose IAM policy allows no KMS, may %s", pa.action)
		}
	}
	// And the key owner's account as a target is not covered: it is
	// planned per account, as the root (which delegates to IAM).
	plan = checkPlanProperties(t, key, []Target{owner}, PlanOptions{Organization: &OrgScope{OrgID: testOrg}})
	if len(orgStatements(t, plan.After)) != 0 || plan.Added[SidUseKey] == nil {
		t.Errorf("the key owner's account as a target: added %v", plan.Added)
	}
}

// Targets outside the scope — no organization path, another OU, another
// organization, an excluded account — are planned per account, in the
// account-mode statements; covered targets get nothing per account. The
// account-mode statements already in the policy keep their bytes when no
// target needs them, and so do the foreign ones; a second plan changes
// nothing.
func TestPlanOrganizationTargetsOutsideTheScopeArePlannedPerAccount(t *testing.T) {
	first, err := PlanPatch(defaultKey(t), []Target{{Account: "555566667777"}}, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key := applyPlan(t, defaultKey(t), first)
	ownedBefore := ownedTexts(key.Policy)
	scope := &OrgScope{OrgID: testOrg, Paths: []string{ou1}, ExcludedAccounts: []string{excludedE}}
	plan, _ := checkOrgPlan(t, key, []Target{orgTarget(memberA), orgTarget(memberB)}, PlanOptions{Organization: scope})
	after := mustPolicy(t, string(plan.After))
	for sid, text := range ownedBefore {
		if got := ownedTexts(after)[sid]; got != text {
			t.Errorf("account-mode statement %s changed although no target needs it:\n%s\n---\n%s", sid, text, got)
		}
	}
	for _, sid := range []string{SidUseKey, SidEC2Grants, SidAutoScalingGrants} {
		if len(plan.Added[sid]) != 0 {
			t.Errorf("covered targets added per account to %s: %v", sid, plan.Added[sid])
		}
	}

	mixed := []Target{orgTarget(memberA), orgTarget(noOrg), orgTarget(ou3Member), orgTarget(foreign), orgTarget(excludedE)}
	plan, _ = checkOrgPlan(t, key, mixed, PlanOptions{Organization: scope})
	got := strings.Join(plan.Added[SidUseKey], ",")
	want := strings.Join([]string{RootARN("aws", excludedE), RootARN("aws", noOrg), RootARN("aws", ou3Member), RootARN("aws", foreign)}, ",")
	if got != sortedCSV(want) {
		t.Errorf("per account: %s, want %s", got, sortedCSV(want))
	}
	if got := strings.Join(plan.OrgAccounts[SidOrgUseKey], ","); got != memberA {
		t.Errorf("by organization: %s, want %s", got, memberA)
	}
}

func sortedCSV(s string) string {
	list, _ := union(strings.Split(s, ","), nil)
	return strings.Join(list, ",")
}

// ownedTexts maps each amigate statement's Sid to its text.
func ownedTexts(p *Policy) map[string]string {
	out := map[string]string{}
	for i, s := range p.Statements {
		if OwnedSid(s.Sid) {
			out[s.Sid] = string(p.raw[p.spans[i][0]:p.spans[i][1]])
		}
	}
	return out
}

// A second OU merges into the same statements (the union of the OUs); the
// whole organization then replaces the OU patterns it covers by the
// organization id. Nothing a statement allowed is taken away.
func TestPlanOrganizationSecondOUMergesIntoTheSameStatement(t *testing.T) {
	one := &OrgScope{OrgID: testOrg, Paths: []string{ou1}}
	_, key := checkOrgPlan(t, defaultKey(t), []Target{orgTarget(memberA)}, PlanOptions{Organization: one})
	two := &OrgScope{OrgID: testOrg, Paths: []string{ou1, strings.TrimSuffix(ou3, "/")}}
	plan, key := checkOrgPlan(t, key, []Target{orgTarget(memberA), orgTarget(ou3Member)}, PlanOptions{Organization: two})
	sts := orgStatements(t, plan.After)
	if len(sts) != 3 {
		t.Fatalf("%d organization statements, want one per purpose:\n%s", len(sts), plan.After)
	}
	for sid, s := range sts {
		if got := strings.Join(conditionValues(s, "ForAnyValue:StringLike", "aws:PrincipalOrgPaths"), ","); got != ou1+"*,"+ou3+"*" {
			t.Errorf("%s: paths %q", sid, got)
		}
		if got := strings.Join(plan.Added[sid], ","); got != ou3+"*" {
			t.Errorf("%s: added %q", sid, got)
		}
	}
	// An OU below one already in adds nothing: it is covered.
	child := &OrgScope{OrgID: testOrg, Paths: []string{ou1child}}
	if again, err := PlanPatch(key, []Target{orgTarget(memberA)}, PlanOptions{Organization: child}); err != nil || again.Changed {
		t.Errorf("an OU below one already in: changed=%v err=%v", again.Changed, err)
	}
	whole := &OrgScope{OrgID: testOrg}
	plan, _ = checkOrgPlan(t, key, []Target{orgTarget(rootAcct)}, PlanOptions{Organization: whole})
	for sid, s := range orgStatements(t, plan.After) {
		if got := strings.Join(conditionValues(s, "StringEquals", "aws:PrincipalOrgID"), ","); got != testOrg || conditionValues(s, "ForAnyValue:StringLike", "aws:PrincipalOrgPaths") != nil {
			t.Errorf("%s after the whole organization: %+v", sid, s.Conditions)
		}
	}
}

// Two scopes with different exclusions cannot share a statement: the union
// of their exclusions would take access away from what the first allowed,
// their intersection let in an account the second excluded. The second
// gets its own statements, numbered.
func TestPlanOrganizationOtherExclusionsGetTheirOwnStatement(t *testing.T) {
	first := &OrgScope{OrgID: testOrg, Paths: []string{ou1}, ExcludedAccounts: []string{excludedE}}
	_, key := checkOrgPlan(t, defaultKey(t), []Target{orgTarget(memberA)}, PlanOptions{Organization: first})
	second := &OrgScope{OrgID: testOrg, Paths: []string{ou3}, ExcludedAccounts: []string{joinerJ}}
	plan, after := checkOrgPlan(t, key, []Target{orgTarget(ou3Member)}, PlanOptions{Organization: second})
	sts := orgStatements(t, plan.After)
	for _, sid := range []string{SidOrgUseKey, SidOrgUseKey + "2", SidOrgEC2Grants + "2", SidOrgAutoScalingGrants + "2"} {
		if _, ok := sts[sid]; !ok {
			t.Errorf("no statement %s:\n%s", sid, plan.After)
		}
	}
	if got := strings.Join(conditionValues(sts[SidOrgUseKey], "ForAnyValue:StringLike", "aws:PrincipalOrgPaths"), ","); got != ou1+"*" {
		t.Errorf("the first statement changed: %q", got)
	}
	// The account the second scope excludes keeps what the first allowed.
	for _, req := range requestsOf(t, mustKeyARN(t, writeup1Key), joinerJ, DefaultAutoScalingRole("aws", joinerJ)) {
		if Authorize(&key, req, nil).Decision == Allowed && Authorize(&after, req, nil).Decision != Allowed {
			t.Errorf("%s lost %s", req.Principal, req.Action)
		}
	}
	// The same scope again merges into its own statement.
	third := &OrgScope{OrgID: testOrg, Paths: []string{ou3, rootPath}, ExcludedAccounts: []string{joinerJ}}
	plan, _ = checkOrgPlan(t, after, []Target{orgTarget(rootAcct)}, PlanOptions{Organization: third})
	if n := len(orgStatements(t, plan.After)); n != 6 {
		t.Errorf("%d organization statements, want 6", n)
	}
}

// IAM User Guide, "IAM JSON policy elements: Version": ${aws:PrincipalAccount}
// is substituted only in a 2012-10-17 policy. The Auto Scaling grant
// statement of the organization mode needs it, so a plan that must write
// that statement into a 2008-10-17 policy (or one without Version) is an
// error, never a statement that lets no one.
func TestPlanOrganizationNeedsVersion2012ForTheAutoScalingStatement(t *testing.T) {
	for _, version := range []string{`"Version":"2008-10-17",`, ``} {
		doc := `{` + version + `"Statement":[{"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"}]}`
		key := Key{ARN: writeup1Key, Policy: mustPolicy(t, doc)}
		opts := PlanOptions{Organization: &OrgScope{OrgID: testOrg}}
		_, err := PlanPatch(key, []Target{orgTarget(memberA)}, opts)
		if !errors.Is(err, ErrOrganizationNeedsVersion2012) || !strings.Contains(err.Error(), `"2012-10-17"`) || !strings.Contains(err.Error(), "${aws:PrincipalAccount}") {
			t.Errorf("%s: err = %v", doc, err)
		}
		// Without the Auto Scaling statement no variable is needed.
		opts.GrantFromSource = true
		checkOrgPlan(t, key, []Target{orgTarget(memberA)}, opts)
		checkOrgPlan(t, key, []Target{orgTarget(memberA, PathInstance)}, PlanOptions{Organization: &OrgScope{OrgID: testOrg}})
	}
}

// The organization statements do not grow with the accounts: a thousand
// targets fit where a hundred per account do not.
func TestPlanOrganizationStaysSmallForAnyNumberOfAccounts(t *testing.T) {
	var few, many []Target
	for i := 0; i < 1000; i++ {
		path := ou1
		if i%2 == 1 {
			path = ou3
		}
		tg := Target{Account: fmt.Sprintf("3000000%05d", i), OrgPath: path}
		many = append(many, tg)
		if i < 2 {
			few = append(few, tg)
		}
	}
	scope := PlanOptions{Organization: &OrgScope{OrgID: testOrg, Paths: []string{ou1, ou3}}}
	if _, err := PlanPatch(defaultKey(t), many, PlanOptions{}); !errors.Is(err, ErrPolicyTooLarge) || !strings.Contains(err.Error(), "organization mode (PlanOptions.Organization)") {
		t.Fatalf("per account: %v, want ErrPolicyTooLarge naming the organization mode", err)
	}
	small := checkPlanProperties(t, defaultKey(t), few, scope)
	large, err := PlanPatch(defaultKey(t), many, scope)
	if err != nil {
		t.Fatal(err)
	}
	if len(large.After) != len(small.After) || len(large.After) > MaxPolicySize {
		t.Errorf("1000 targets: %d bytes, 2 targets: %d bytes", len(large.After), len(small.After))
	}
	if v := Check(applyPlan(t, defaultKey(t), large), many); !v.OK {
		t.Errorf("after the organization plan: %+v", v.Targets[0])
	}
}

// PlanPatchAuto plans per account while the policy fits, and uses the
// organization scope only past 32 KiB.
func TestPlanPatchAutoPrefersAccountsAndFallsBackToOrganization(t *testing.T) {
	scope := &OrgScope{OrgID: testOrg}
	var many []Target
	for i := 0; i < 200; i++ {
		many = append(many, Target{Account: fmt.Sprintf("3000000%05d", i), OrgPath: ou1})
	}
	plan, err := PlanPatchAuto(defaultKey(t), many[:3], PlanOptions{Organization: scope})
	if err != nil || plan.Mode != PlanModeAccounts || len(orgStatements(t, plan.After)) != 0 || len(plan.Added[SidUseKey]) != 3 {
		t.Errorf("3 targets: mode %q, err %v, added %v", plan.Mode, err, plan.Added)
	}
	plan, err = PlanPatchAuto(defaultKey(t), many, PlanOptions{Organization: scope})
	if err != nil || plan.Mode != PlanModeOrganization || len(orgStatements(t, plan.After)) != 3 || len(plan.Added[SidUseKey]) != 0 {
		t.Fatalf("200 targets: mode %q, err %v, added %v", plan.Mode, err, plan.Added)
	}
	// Planning again on the result: per account, nothing to add.
	again, err := PlanPatchAuto(applyPlan(t, defaultKey(t), plan), many, PlanOptions{Organization: scope})
	if err != nil || again.Changed || again.Mode != PlanModeAccounts {
		t.Errorf("again: changed %v, mode %q, err %v", again.Changed, again.Mode, err)
	}
	if _, err := PlanPatchAuto(defaultKey(t), many, PlanOptions{}); !errors.Is(err, ErrPolicyTooLarge) {
		t.Errorf("no scope: %v", err)
	}
	old := Key{ARN: writeup1Key, Policy: mustPolicy(t, `{"Version":"2008-10-17","Statement":[{"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"}]}`)}
	_, err = PlanPatchAuto(old, many, PlanOptions{Organization: scope})
	if !errors.Is(err, ErrPolicyTooLarge) || !errors.Is(err, ErrOrganizationNeedsVersion2012) {
		t.Errorf("2008-10-17 policy past the limit: %v", err)
	}
}

func TestPlanOrganizationScopeErrors(t *testing.T) {
	for _, tc := range []struct {
		scope OrgScope
		want  string
	}{
		{OrgScope{OrgID: "o-ABC"}, `organization id "o-ABC"`},
		{OrgScope{OrgID: testOrg, Paths: []string{otherOrgPath}}, "is not in organization o-abcdefghij"},
		{OrgScope{OrgID: testOrg, Paths: []string{"o-abcdefghij/ou-ab12-11111111/"}}, "is not a root id"},
		{OrgScope{OrgID: testOrg, ExcludedAccounts: []string{"1234"}}, `excluded account "1234"`},
	} {
		_, err := PlanPatch(defaultKey(t), []Target{orgTarget(memberA)}, PlanOptions{Organization: &tc.scope})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.scope, err, tc.want)
		}
	}
}
