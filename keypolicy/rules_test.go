package keypolicy

import (
	"strings"
	"testing"
	"time"
)

// Each test here states one rule of AWS's policy language, named after it,
// with the AWS documentation that decides it.

const (
	targetAccount = "111122223333"
	targetRole    = "arn:aws:iam::111122223333:role/Launcher"
	targetSession = "arn:aws:sts::111122223333:assumed-role/Launcher/build-7"
)

// testEnv is the request environment of a verdict about keyARN at
// testNow.
func testEnv(keyARN ARN) *requestEnv { return newRequestEnv(nil, keyARN, testNow) }

// serviceRequest is the request EC2 (or Auto Scaling through EC2) makes
// to KMS for principal on path p: see actor.
func (e *requestEnv) serviceRequest(principal string, p Path, pa pathAction, org *orgContext) Request {
	return e.newActor(principal, p, org, false).request(pa)
}

// testNow is the time the tests' launches happen.
var testNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func decide(t *testing.T, doc string, req Request) Result {
	t.Helper()
	return mustPolicy(t, doc).Evaluate(req)
}

func instanceVerdict(t *testing.T, doc string) PathVerdict {
	t.Helper()
	v := Check(Key{ARN: testKey, Policy: mustPolicy(t, doc)}, []Target{{Account: targetAccount, Paths: []Path{PathInstance}}})
	return pathVerdict(t, v, targetAccount, PathInstance)
}

func findingFor(pv PathVerdict, code string) (Finding, bool) {
	for _, f := range pv.Findings {
		if f.Code == code {
			return f, true
		}
	}
	return Finding{}, false
}

// IAM User Guide, "IAM JSON policy elements: Version": only a policy whose
// Version is 2012-10-17 substitutes policy variables; in 2008-10-17, which a
// policy without Version also means, ${aws:PrincipalAccount} is the literal
// text it is written as.
func TestPolicyVariablesAreSubstitutedOnlyInVersion20121017(t *testing.T) {
	stmt := `"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"kms:CallerAccount":"${aws:PrincipalAccount}"}}}]}`
	caller := Request{Principal: targetRole, Action: "kms:Decrypt", Resource: testKey,
		Context: map[string][]string{"kms:CallerAccount": {targetAccount}, "aws:PrincipalAccount": {targetAccount}}}
	literal := Request{Principal: targetRole, Action: "kms:Decrypt", Resource: testKey,
		Context: map[string][]string{"kms:CallerAccount": {"${aws:PrincipalAccount}"}, "aws:PrincipalAccount": {targetAccount}}}
	for _, tc := range []struct {
		version        string
		caller, looked Decision
	}{
		{`"Version":"2012-10-17",`, Allowed, ImplicitDeny},
		{`"Version":"2008-10-17",`, ImplicitDeny, Allowed},
		{``, ImplicitDeny, Allowed},
	} {
		doc := "{" + tc.version + stmt
		if got := decide(t, doc, caller).Decision; got != tc.caller {
			t.Errorf("%s: caller of the same account: %v, want %v", doc, got, tc.caller)
		}
		if got := decide(t, doc, literal).Decision; got != tc.looked {
			t.Errorf("%s: request carrying the literal text: %v, want %v", doc, got, tc.looked)
		}
	}
}

// The same rule in Resource, and for a variable the request does not carry:
// in 2008-10-17 it is text, so it is neither substituted nor reported
// unknown (IAM User Guide, "IAM JSON policy elements: Version").
func TestPolicyVariablesInResourceAreLiteralInVersion20081017(t *testing.T) {
	stmt := `"Statement":[{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"arn:aws:kms:*:${aws:PrincipalAccount}:key/*"}]}`
	req := Request{Principal: "arn:aws:iam::444455556666:role/R", Action: "kms:Decrypt", Resource: testKey,
		Context: map[string][]string{"aws:PrincipalAccount": {"444455556666"}}}
	if r := decide(t, `{"Version":"2012-10-17",`+stmt, req); r.Decision != ExplicitDeny {
		t.Errorf("2012-10-17: %+v, want the Deny to apply", r)
	}
	if r := decide(t, `{"Version":"2008-10-17",`+stmt, req); r.Decision != ImplicitDeny || len(r.Unknown) != 0 {
		t.Errorf("2008-10-17: %+v, want no match and nothing unknown", r)
	}
	unknown := `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"k":"${aws:username}"}}}]}`
	if r := decide(t, unknown, Request{Principal: targetRole, Action: "kms:Decrypt", Resource: testKey, Context: map[string][]string{"k": {"x"}}}); len(r.Unknown) != 0 {
		t.Errorf("no Version: %v reported unknown, but it is text", r.Unknown)
	}
}

// The first false green: a 2008-10-17 key policy whose allow for
// everyone is limited with kms:CallerAccount = ${aws:PrincipalAccount}
// allows no one, and the verdict says why.
func TestCheckPolicyVariableInVersion20081017PolicyAllowsNoOne(t *testing.T) {
	doc := func(version string) string {
		return `{"Version":"` + version + `","Statement":[
	  {"Sid":"SameAccount","Effect":"Allow","Principal":"*","Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant"],"Resource":"*",
	   "Condition":{"StringEquals":{"kms:CallerAccount":"${aws:PrincipalAccount}"}}}]}`
	}
	pv := instanceVerdict(t, doc("2008-10-17"))
	if pv.OK {
		t.Fatal("instance path passes on a 2008-10-17 policy whose only allow needs a policy variable")
	}
	if f, ok := findingFor(pv, CodeLiteralVariable); !ok || f.Statement != "SameAccount" || f.Severity != SeverityWarning || !strings.Contains(f.Message, "${aws:PrincipalAccount}") {
		t.Errorf("findings %+v, want a POLICY_VARIABLE_LITERAL warning naming SameAccount", pv.Findings)
	}
	if _, ok := findingFor(pv, CodeKeyPolicyMissing); !ok {
		t.Errorf("findings %+v, want KEY_POLICY_MISSING", pv.Findings)
	}
	if pv := instanceVerdict(t, doc("2012-10-17")); !pv.OK || len(pv.Findings) != 0 {
		t.Errorf("2012-10-17: %+v, want the path to pass", pv)
	}
}

// AWS KMS Developer Guide, "Key policies": Principal is required in every
// key-policy statement (KMS refuses the policy otherwise). A statement
// without Principal or NotPrincipal applies to no one in a key policy, but
// in an identity policy, where no statement names a principal, it applies
// to the identity.
func TestKeyPolicyStatementWithoutPrincipalAppliesToNoOne(t *testing.T) {
	doc := `{"Version":"2012-10-17","Statement":[{"Sid":"NoPrincipal","Effect":"Allow","Action":"kms:*","Resource":"*"}]}`
	req := Request{Principal: targetRole, Action: "kms:Decrypt", Resource: testKey}
	if r := decide(t, doc, req); r.Decision != ImplicitDeny {
		t.Errorf("key policy: %v, want ImplicitDeny", r.Decision)
	}
	if pv := instanceVerdict(t, doc); pv.OK {
		t.Errorf("instance path passes on a key policy whose only allow has no Principal: %+v", pv)
	}
	if r := mustPolicy(t, doc).EvaluateIdentity(req); r.Decision != Allowed {
		t.Errorf("identity policy: %v, want Allowed", r.Decision)
	}
	// Deny without a principal denies no one either: KMS would never hold it.
	deny := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},{"Effect":"Deny","Action":"kms:*","Resource":"*"}]}`
	if r := decide(t, deny, req); r.Decision != Allowed {
		t.Errorf("principal-less Deny: %v", r.Decision)
	}
}

func TestValidateKeyPolicyNamesTheStatementWithoutPrincipal(t *testing.T) {
	for doc, want := range map[string]string{
		`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},{"Sid":"Open","Effect":"Allow","Action":"kms:*","Resource":"*"}]}`: `statement "Open" (#1) has neither Principal nor NotPrincipal`,
		`{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`:                                                                                 "statement #0 has neither Principal nor NotPrincipal",
		`{"Statement":[{"Effect":"Allow","Principal":{"AWS":[]},"Action":"kms:*","Resource":"*"}]}`:                                                          "statement #0 names no principal",
		`{"Statement":[{"Effect":"Deny","NotPrincipal":null,"Action":"kms:*","Resource":"*"}]}`:                                                              "statement #0 names no principal",
	} {
		err := ValidateKeyPolicy(mustPolicy(t, doc))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "MalformedPolicyDocumentException") {
			t.Errorf("%s: %v, want %q", doc, err, want)
		}
	}
	if err := ValidateKeyPolicy(loadPolicy(t, "writeup1-policy.json")); err != nil {
		t.Errorf("the write-up's policy: %v", err)
	}
}

// IAM User Guide, "AWS JSON policy elements: NotPrincipal": a Deny whose
// NotPrincipal lists an account's root ARN exempts the root user only. The
// account's roles and users, which launch instances, are still denied, so
// a target is red however the rest of the policy allows it, and the plan
// reports the path blocked instead of adding anything.
func TestDenyNotPrincipalAccountRootExemptsOnlyTheRootUser(t *testing.T) {
	doc := `{"Version":"2012-10-17","Statement":[
	  {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
	  {"Sid":"Use","Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant"],"Resource":"*"},
	  {"Sid":"OnlyTheseAccounts","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::444455556666:root","arn:aws:iam::111122223333:root"]},"Action":"kms:*","Resource":"*"}]}`
	for principal, want := range map[string]Decision{
		"arn:aws:iam::111122223333:root":       Allowed,
		targetRole:                             ExplicitDeny,
		targetSession:                          ExplicitDeny,
		"arn:aws:iam::111122223333:user/alice": ExplicitDeny,
	} {
		if got := decide(t, doc, Request{Principal: principal, Action: "kms:Decrypt", Resource: testKey}).Decision; got != want {
			t.Errorf("%s: %v, want %v", principal, got, want)
		}
	}
	pv := instanceVerdict(t, doc)
	f, ok := findingFor(pv, CodeKeyPolicyDenies)
	if pv.OK || !ok || f.Statement != "OnlyTheseAccounts" || !strings.Contains(f.Message, "exempts only the root user") {
		t.Fatalf("instance path %+v, want KEY_POLICY_DENIES on OnlyTheseAccounts", pv)
	}
	if pv.Principal != AnyPrincipal("aws", targetAccount) {
		t.Errorf("evaluated as %s, want a role of the target, not its root", pv.Principal)
	}
	plan := checkPlanProperties(t, Key{ARN: testKey, Policy: mustPolicy(t, doc)}, []Target{{Account: targetAccount, Paths: []Path{PathInstance}}}, PlanOptions{})
	if len(plan.Blocked) == 0 || plan.Blocked[0].Statement != "OnlyTheseAccounts" || plan.Changed {
		t.Errorf("plan: blocked %+v, changed %v; want the path blocked and the policy left alone", plan.Blocked, plan.Changed)
	}
}

// NotPrincipal exempts exactly what it lists (IAM User Guide, "AWS JSON
// policy elements: NotPrincipal"): a session ARN that session only, a user
// ARN that user, a role ARN (a service-linked role's too) the role itself
// but none of its sessions, since "principals must always name a specific
// session"; an account id is the account's root user, as its root ARN is.
func TestDenyNotPrincipalExemptsWhatItLists(t *testing.T) {
	slr := DefaultAutoScalingRole("aws", targetAccount)
	slrSession := "arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAutoScaling/AutoScaling"
	for _, tc := range []struct {
		listed    string
		principal string
		exempt    bool
	}{
		{targetRole, targetSession, false},
		{targetRole, targetRole, true},
		{targetRole, "arn:aws:iam::111122223333:role/Other", false},
		{targetRole, "arn:aws:iam::999988887777:role/Launcher", false},
		{targetSession, targetSession, true},
		{targetSession, "arn:aws:sts::111122223333:assumed-role/Launcher/other", false},
		{"arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:user/alice", true},
		{"arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:user/bob", false},
		{slr, slr, true},
		{slr, slrSession, false},
		{slrSession, slrSession, true},
		{slr, targetRole, false},
		{targetAccount, "arn:aws:iam::111122223333:root", true},
		{targetAccount, targetSession, false},
	} {
		doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},
		  {"Effect":"Deny","NotPrincipal":{"AWS":"` + tc.listed + `"},"Action":"kms:*","Resource":"*"}]}`
		got := decide(t, doc, Request{Principal: tc.principal, Action: "kms:Decrypt", Resource: testKey}).Decision
		if (got == Allowed) != tc.exempt {
			t.Errorf("NotPrincipal %s, caller %s: %v, want exempt=%v", tc.listed, tc.principal, got, tc.exempt)
		}
	}
}

// A verdict about "a principal of the target" never rests on the root user
// alone: a key policy that lets only the account's root user use the key
// (aws:PrincipalType = Account, IAM User Guide, "AWS global condition
// context keys") lets no role or user launch.
func TestAnyPrincipalOfTargetIsNotItsRootUser(t *testing.T) {
	doc := `{"Version":"2012-10-17","Statement":[{"Sid":"RootOnly","Effect":"Allow","Principal":{"AWS":"111122223333"},
	  "Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant"],"Resource":"*",
	  "Condition":{"StringEquals":{"aws:PrincipalType":"Account"}}}]}`
	if pv := instanceVerdict(t, doc); pv.OK {
		t.Fatalf("instance path passes when only the root user may use the key: %+v", pv)
	}
	// The planner's fix names the account root, which covers its roles.
	key := Key{ARN: testKey, Policy: mustPolicy(t, doc)}
	plan := checkPlanProperties(t, key, []Target{{Account: targetAccount, Paths: []Path{PathInstance}}}, PlanOptions{})
	if got := strings.Join(plan.Added[SidUseKey], ","); got != RootARN("aws", targetAccount) {
		t.Errorf("plan added %q to %s, want the account root", got, SidUseKey)
	}
}

// IAM User Guide, "AWS JSON policy elements: Principal", AWS service
// principals: {"Service": "ec2.amazonaws.com"} names the service itself,
// not the account's roles, so it does not let a target launch (EC2 calls
// KMS with the launching principal's credentials, kms:ViaService says
// through which service). "*" covers every principal, services included;
// {"AWS": "*"} covers the AWS principals of every account.
func TestServicePrincipalMatchesNoIAMPrincipal(t *testing.T) {
	service := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"kms:*","Resource":"*"}]}`
	for _, p := range []string{targetRole, targetSession, "arn:aws:iam::111122223333:root", "111122223333"} {
		if got := decide(t, service, Request{Principal: p, Action: "kms:Decrypt", Resource: testKey}).Decision; got != ImplicitDeny {
			t.Errorf("Service principal matched %s: %v", p, got)
		}
	}
	if got := decide(t, service, Request{Principal: "ec2.amazonaws.com", Action: "kms:Decrypt", Resource: testKey}).Decision; got != Allowed {
		t.Errorf("Service principal did not match the service: %v", got)
	}
	if pv := instanceVerdict(t, service); pv.OK {
		t.Errorf("instance path passes on a key policy that allows only ec2.amazonaws.com: %+v", pv)
	}
	anyAWS := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*"}]}`
	if got := decide(t, anyAWS, Request{Principal: "ec2.amazonaws.com", Action: "kms:Decrypt", Resource: testKey}).Decision; got != ImplicitDeny {
		t.Errorf(`{"AWS":"*"} matched a service principal: %v`, got)
	}
	star := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}`
	if got := decide(t, star, Request{Principal: "ec2.amazonaws.com", Action: "kms:Decrypt", Resource: testKey}).Decision; got != Allowed {
		t.Errorf(`"*" did not match a service principal: %v`, got)
	}
}

// IAM User Guide, "IAM JSON policy elements: Condition operators": a
// condition on a key the request does not carry is false, except that
// ...IfExists is true, a negated operator is true, ForAllValues: over no
// values is true (so an Allow limited that way allows when the key is
// missing), ForAnyValue: over no values is false, and Null tests presence.
func TestMissingConditionKeyRules(t *testing.T) {
	for _, tc := range []struct {
		name, cond string
		want       bool
	}{
		{"a plain operator on a missing key is false", `{"StringEquals":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}}`, false},
		{"IfExists on a missing key is true", `{"StringEqualsIfExists":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}}`, true},
		{"a negated operator on a missing key is true", `{"StringNotEquals":{"kms:ViaService":"s3.us-east-1.amazonaws.com"}}`, true},
		{"ArnNotLike on a missing key is true", `{"ArnNotLike":{"aws:SourceArn":"arn:aws:s3:::*"}}`, true},
		{"NumericLessThanIfExists on a missing key is true", `{"NumericLessThanIfExists":{"aws:MultiFactorAuthAge":"300"}}`, true},
		{"ForAllValues on a missing key is true", `{"ForAllValues:StringEquals":{"kms:GrantOperations":["Decrypt"]}}`, true},
		{"ForAnyValue on a missing key is false", `{"ForAnyValue:StringEquals":{"kms:GrantOperations":["Decrypt"]}}`, false},
		{"ForAnyValue IfExists on a missing key is false", `{"ForAnyValue:StringEqualsIfExists":{"kms:GrantOperations":["Decrypt"]}}`, false},
		{"Null true: the key is missing", `{"Null":{"kms:GrantOperations":"true"}}`, true},
		{"Null false: the key must be present", `{"Null":{"kms:GrantOperations":"false"}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := conditionPolicy(t, tc.cond).Evaluate(Request{Principal: targetRole, Action: "kms:Decrypt", Resource: testKey, Context: map[string][]string{"aws:SecureTransport": {"true"}}}).Decision == Allowed
			if got != tc.want {
				t.Fatalf("allowed = %v, want %v", got, tc.want)
			}
		})
	}
}

// IAM User Guide, "IAM JSON policy elements: Condition": condition key
// names are case-insensitive; values are compared case-sensitively except
// by the ...IgnoreCase operators and Bool. Action names are
// case-insensitive; Resource ARNs are case-sensitive.
func TestConditionKeysAreCaseInsensitiveValuesCaseSensitive(t *testing.T) {
	ctx := map[string][]string{"KMS:VIASERVICE": {"ec2.us-east-1.amazonaws.com"}, "kms:GrantIsForAWSResource": {"TRUE"}}
	for _, tc := range []struct {
		cond string
		want bool
	}{
		{`{"StringEquals":{"kms:viaservice":"ec2.us-east-1.amazonaws.com"}}`, true},
		{`{"StringEquals":{"kms:ViaService":"EC2.us-east-1.amazonaws.com"}}`, false},
		{`{"StringEqualsIgnoreCase":{"kms:ViaService":"EC2.US-EAST-1.amazonaws.com"}}`, true},
		{`{"StringLike":{"kms:ViaService":"EC2.*"}}`, false},
		{`{"Bool":{"kms:grantisforawsresource":"true"}}`, true},
	} {
		got := conditionPolicy(t, tc.cond).Evaluate(Request{Principal: targetRole, Action: "kms:Decrypt", Resource: testKey, Context: ctx}).Decision == Allowed
		if got != tc.want {
			t.Errorf("%s: allowed = %v, want %v", tc.cond, got, tc.want)
		}
	}
	upper := strings.ToUpper(testKey[:len("arn:aws:kms:us-east-1:444455556666:key/")]) + testKey[len("arn:aws:kms:us-east-1:444455556666:key/"):]
	p := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"KMS:DECRYPT","Resource":"` + upper + `"}]}`
	if got := decide(t, p, Request{Principal: targetRole, Action: "kms:Decrypt", Resource: testKey}).Decision; got != ImplicitDeny {
		t.Errorf("Resource compared without case: %v", got)
	}
}

// IAM User Guide, "Condition operators", ARN operators and "IAM JSON policy
// elements: Resource": a wildcard may stand for a whole field, the account
// field included; with ArnLike each of the six colon-separated fields is
// matched on its own, so '*' does not reach across a colon.
func TestArnWildcardsInAccountField(t *testing.T) {
	for _, tc := range []struct {
		pattern, arn string
		want         bool
	}{
		{"arn:aws:iam::*:role/Launcher", targetRole, true},
		{"arn:aws:iam::*:role/Launcher", "arn:aws:iam::111122223333:role/team/Launcher", false},
		{"arn:aws:iam::*:role/*Launcher", "arn:aws:iam::111122223333:role/team/Launcher", true},
		{"arn:aws:iam::1111????3333:role/*", targetRole, true},
		{"arn:aws:iam::*", "arn:aws:iam::111122223333:root", false},
		{"arn:aws:iam::*:*", "arn:aws:iam::111122223333:root", true},
		{"arn:aws:*:*:111122223333:*", targetRole, true},
		{"arn:aws:iam::444455556666:*", targetRole, false},
	} {
		cond := `{"ArnLike":{"aws:PrincipalArn":"` + tc.pattern + `"}}`
		got := conditionPolicy(t, cond).Evaluate(Request{Principal: targetRole, Action: "kms:Decrypt", Resource: testKey, Context: map[string][]string{"aws:PrincipalArn": {tc.arn}}}).Decision == Allowed
		if got != tc.want {
			t.Errorf("ArnLike %s vs %s: %v, want %v", tc.pattern, tc.arn, got, tc.want)
		}
	}
	for res, want := range map[string]Decision{
		"arn:aws:kms:us-east-1:*:key/*":            Allowed,
		"arn:aws:kms:*:444455556666:key/*":         Allowed,
		"arn:aws:kms:*:111122223333:key/*":         ImplicitDeny,
		"arn:aws:kms:us-east-1:4444????6666:key/*": Allowed,
	} {
		p := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"` + res + `"}]}`
		if got := decide(t, p, Request{Principal: targetRole, Action: "kms:Decrypt", Resource: testKey}).Decision; got != want {
			t.Errorf("Resource %s: %v, want %v", res, got, want)
		}
	}
}

// AWS KMS Developer Guide, "Multi-Region keys": a replica has the primary's
// key id ("mrk-...") but its own ARN, in its own Region, and its own key
// policy. A Resource naming the primary's ARN does not cover the replica;
// a Region wildcard covers both. KMS supplies kms:MultiRegion = true for
// them (AWS KMS Developer Guide, "AWS KMS condition keys").
func TestMultiRegionKeyReplicaIsItsOwnResource(t *testing.T) {
	const (
		primary = "arn:aws:kms:us-east-1:444455556666:key/mrk-1234abcd12ab34cd56ef1234567890ab"
		replica = "arn:aws:kms:eu-west-1:444455556666:key/mrk-1234abcd12ab34cd56ef1234567890ab"
	)
	for res, want := range map[string]Decision{
		primary: ImplicitDeny,
		"arn:aws:kms:*:444455556666:key/mrk-1234abcd12ab34cd56ef1234567890ab": Allowed,
		replica: Allowed,
	} {
		p := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"` + res + `"}]}`
		if got := decide(t, p, Request{Principal: targetRole, Action: "kms:Decrypt", Resource: replica}).Decision; got != want {
			t.Errorf("Resource %s on the replica: %v, want %v", res, got, want)
		}
	}
	// The replica's launches go through EC2 in the replica's Region, and
	// carry kms:MultiRegion.
	doc := `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant"],"Resource":"*",
	   "Condition":{"StringEquals":{"kms:ViaService":"ec2.eu-west-1.amazonaws.com"}}},
	  {"Sid":"SingleRegionOnly","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"Bool":{"kms:MultiRegion":"false"}}}]}`
	target := []Target{{Account: targetAccount, Paths: []Path{PathInstance}}}
	if v := Check(Key{ARN: replica, Policy: mustPolicy(t, doc)}, target); !v.OK {
		t.Errorf("replica: %+v", pathVerdict(t, v, targetAccount, PathInstance))
	}
	single := "arn:aws:kms:eu-west-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	pv := pathVerdict(t, Check(Key{ARN: single, Policy: mustPolicy(t, doc)}, target), targetAccount, PathInstance)
	if f, ok := findingFor(pv, CodeKeyPolicyDenies); pv.OK || !ok || f.Statement != "SingleRegionOnly" {
		t.Errorf("single-Region key under a Deny on kms:MultiRegion = false: %+v", pv)
	}
}

// Organization paths and ids used by the organization tests: the target's
// account sits in ou-ab12-22222222, a child of ou-ab12-11111111.
const (
	testOrg      = "o-abcdefghij"
	testOrgPath  = "o-abcdefghij/r-ab12/ou-ab12-11111111/ou-ab12-22222222/"
	otherOUPath  = "o-abcdefghij/r-ab12/ou-ab12-33333333/"
	otherOrgPath = "o-zzzzzzzzzz/r-cd34/ou-cd34-44444444/"
)

// orgVerdict checks one path of the target, with the given organization
// path (empty: not known).
func orgVerdict(t *testing.T, doc string, p Path, orgPath string, grants ...Grant) PathVerdict {
	t.Helper()
	key := Key{ARN: testKey, Policy: mustPolicy(t, doc), Grants: grants}
	v := Check(key, []Target{{Account: targetAccount, Paths: []Path{p}, OrgPath: orgPath}})
	return pathVerdict(t, v, targetAccount, p)
}

// useByCondition lets every AWS principal use the key for the instance
// path under one condition block.
func useByCondition(cond string) string {
	return `{"Version":"2012-10-17","Statement":[
	  {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
	  {"Sid":"Org","Effect":"Allow","Principal":{"AWS":"*"},"Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant"],"Resource":"*","Condition":` + cond + `}]}`
}

// IAM User Guide, "AWS global condition context keys": aws:PrincipalOrgPaths
// is multivalued (Value type), and "Single-valued vs. multivalued context
// keys": a multivalued key requires a set operator. A condition on it
// without ForAnyValue: or ForAllValues: does not match when the key is
// present, negated or not (iam-simulate evaluates it so, as its authors
// confirmed with AWS IAM); with ForAnyValue:StringLike it matches the
// principal's path. The same holds for the other multivalued keys, such
// as kms:GrantOperations.
func TestPrincipalOrgPathsIsMultiValuedSoItNeedsForAnyValue(t *testing.T) {
	ctx := map[string][]string{"aws:PrincipalOrgPaths": {testOrgPath}, "aws:PrincipalOrgID": {testOrg}, "kms:GrantOperations": {"Decrypt"}}
	for _, tc := range []struct {
		cond string
		want bool
	}{
		{`{"StringLike":{"aws:PrincipalOrgPaths":"o-abcdefghij/*"}}`, false},
		{`{"StringEquals":{"aws:PrincipalOrgPaths":"` + testOrgPath + `"}}`, false},
		{`{"StringLikeIfExists":{"aws:PrincipalOrgPaths":"o-abcdefghij/*"}}`, false},
		{`{"StringNotLike":{"aws:PrincipalOrgPaths":"o-zzzzzzzzzz/*"}}`, false},
		{`{"ForAnyValue:StringLike":{"aws:PrincipalOrgPaths":"o-abcdefghij/*"}}`, true},
		{`{"ForAnyValue:StringLike":{"aws:PrincipalOrgPaths":"o-abcdefghij/r-ab12/ou-ab12-11111111/*"}}`, true},
		{`{"ForAnyValue:StringEquals":{"aws:PrincipalOrgPaths":"o-abcdefghij/r-ab12/ou-ab12-11111111/"}}`, false},
		{`{"ForAnyValue:StringLike":{"aws:PrincipalOrgPaths":"` + otherOUPath + `*"}}`, false},
		{`{"ForAllValues:StringLike":{"aws:PrincipalOrgPaths":"o-abcdefghij/*"}}`, true},
		{`{"ForAnyValue:StringNotLike":{"aws:PrincipalOrgPaths":"o-abcdefghij/*"}}`, false},
		{`{"Null":{"aws:PrincipalOrgPaths":"false"}}`, true},
		{`{"StringEquals":{"kms:GrantOperations":"Decrypt"}}`, false},
		{`{"ForAnyValue:StringEquals":{"kms:GrantOperations":"Decrypt"}}`, true},
		// aws:PrincipalOrgID is single-valued: no set operator needed.
		{`{"StringEquals":{"aws:PrincipalOrgID":"o-abcdefghij"}}`, true},
	} {
		got := conditionPolicy(t, tc.cond).Evaluate(Request{Principal: targetRole, Action: "kms:Decrypt", Resource: testKey, Context: ctx}).Decision == Allowed
		if got != tc.want {
			t.Errorf("%s: allowed = %v, want %v", tc.cond, got, tc.want)
		}
	}
	// What AWS makes of a condition on a multivalued key without a set
	// operator is not documented: an Allow on one does not count (above),
	// and a Deny on one does, so that no green rests on the reading.
	for _, cond := range []string{`{"StringNotLike":{"aws:PrincipalOrgPaths":"o-zzzzzzzzzz/*"}}`, `{"StringLike":{"aws:PrincipalOrgPaths":"o-zzzzzzzzzz/*"}}`} {
		deny := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},
	  {"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":` + cond + `}]}`
		if got := decide(t, deny, Request{Principal: targetRole, Action: "kms:Decrypt", Resource: testKey, Context: ctx}).Decision; got != ExplicitDeny {
			t.Errorf("Deny %s without a set operator: %v, want ExplicitDeny (it may apply)", cond, got)
		}
	}
	// The verdict says why a statement written that way allows no one.
	pv := orgVerdict(t, useByCondition(`{"StringLike":{"aws:PrincipalOrgPaths":"o-abcdefghij/*"}}`), PathInstance, testOrgPath)
	f, ok := findingFor(pv, CodeKeyPolicyMissing)
	if pv.OK || !ok || f.Statement != "Org" || !strings.Contains(f.Message, "no ForAnyValue: or ForAllValues: qualifier") || !strings.Contains(f.Fix, `"ForAnyValue:StringLike"`) {
		t.Errorf("verdict %+v, want KEY_POLICY_MISSING on Org explaining the missing ForAnyValue:", pv)
	}
}

// A Deny on a multivalued key without a set operator may apply (above);
// the finding says so, and what to write instead: ForAllValues: for a
// negated operator in a Deny (it then also holds when the key is missing,
// as the Deny means), ForAnyValue: otherwise. It is not the advice for a
// Bool value written in upper case.
func TestDenyOnMultiValuedKeyWithoutSetOperatorSaysSo(t *testing.T) {
	for cond, qualified := range map[string]string{
		`{"StringNotLike":{"aws:PrincipalOrgPaths":"o-abcdefghij/*"}}`:                                           `"ForAllValues:StringNotLike"`,
		`{"StringLike":{"aws:PrincipalOrgPaths":"` + otherOUPath + `*"}}`:                                        `"ForAnyValue:StringLike"`,
		`{"StringEquals":{"aws:PrincipalOrgPaths":"` + otherOUPath + `"},"Bool":{"aws:SecureTransport":"true"}}`: `"ForAnyValue:StringEquals"`,
	} {
		pv := orgVerdict(t, denyByCondition(cond), PathInstance, testOrgPath)
		wantFinding(t, pv, CodeKeyPolicyDenies, "Guard", "may deny", "no ForAnyValue: or ForAllValues: qualifier", "aws:PrincipalOrgPaths is multivalued", qualified)
		if f, _ := findingFor(pv, CodeKeyPolicyDenies); strings.Contains(f.Message+f.Fix, "lower case") {
			t.Errorf("%s: the advice for a Bool value not in lower case:\n%s\nfix: %s", cond, f.Message, f.Fix)
		}
	}
}

// IAM User Guide, "AWS global condition context keys": aws:PrincipalOrgID
// and aws:PrincipalOrgPaths are in the request of a principal whose account
// is in an organization; the id is the path's first part. Requests EC2
// makes for the principal carry them too (IAM User Guide, "Forward access
// sessions": the principal's identity and session attributes are passed).
// So a target whose organization path is given is checked with both keys,
// on the instance and copy paths ("a principal of the target").
func TestRequestsOfATargetCarryItsOrganizationKeys(t *testing.T) {
	for _, tc := range []struct {
		cond, orgPath string
		want          bool
	}{
		{`{"StringEquals":{"aws:PrincipalOrgID":"o-abcdefghij"}}`, testOrgPath, true},
		{`{"StringEquals":{"aws:PrincipalOrgID":"o-abcdefghij"}}`, otherOrgPath, false},
		{`{"ForAnyValue:StringLike":{"aws:PrincipalOrgPaths":"o-abcdefghij/r-ab12/ou-ab12-11111111/*"}}`, testOrgPath, true},
		{`{"ForAnyValue:StringLike":{"aws:PrincipalOrgPaths":"o-abcdefghij/r-ab12/ou-ab12-11111111/*"}}`, otherOUPath, false},
		{`{"ForAnyValue:StringEquals":{"aws:PrincipalOrgPaths":"` + testOrgPath + `"}}`, testOrgPath, true},
		// Without a trailing '/', the path is read as AWS writes it.
		{`{"ForAnyValue:StringEquals":{"aws:PrincipalOrgPaths":"` + testOrgPath + `"}}`, strings.TrimSuffix(testOrgPath, "/"), true},
	} {
		for _, p := range []Path{PathInstance, PathCopy} {
			if pv := orgVerdict(t, useByCondition(tc.cond), p, tc.orgPath); pv.OK != tc.want {
				t.Errorf("%s, org path %s, %s: ok = %v, want %v: %+v", tc.cond, tc.orgPath, p, pv.OK, tc.want, pv.Findings)
			}
		}
	}
}

// IAM User Guide, "AWS global condition context keys", Availability: the
// organization keys are absent when the principal's account is in no
// organization, and carry its organization otherwise. For a target whose
// organization is not known, either may be so: conditions on them are
// undecided, so an allow by aws:PrincipalOrgID is not counted and a Deny
// with StringNotEquals on it is: a red at worst, never a green AWS would
// refuse. The finding says the organization is unknown.
func TestUnknownOrganizationMakesOrgConditionsUndecidedNeverGreen(t *testing.T) {
	allow := useByCondition(`{"StringEquals":{"aws:PrincipalOrgID":"o-abcdefghij"}}`)
	pv := orgVerdict(t, allow, PathInstance, "")
	f, ok := findingFor(pv, CodeKeyPolicyMissing)
	if pv.OK || !ok || f.Statement != "Org" || !strings.Contains(f.Message, "organization is not known") ||
		!strings.Contains(f.Message, "aws:PrincipalOrgID") || !strings.Contains(f.Fix, "--org-path 111122223333=PATH") {
		t.Errorf("unknown organization, allow by aws:PrincipalOrgID: %+v", pv)
	}
	// An OrgPath that is not a path is not known either.
	if pv := orgVerdict(t, allow, PathInstance, "o-abcdefghij"); pv.OK {
		t.Errorf("an organization path without a root counted: %+v", pv)
	}
	deny := `{"Version":"2012-10-17","Statement":[
	  {"Sid":"Use","Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant"],"Resource":"*"},
	  {"Sid":"OrgOnly","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalOrgID":"o-abcdefghij"}}}]}`
	pv = orgVerdict(t, deny, PathInstance, "")
	f, ok = findingFor(pv, CodeKeyPolicyDenies)
	if pv.OK || !ok || f.Statement != "OrgOnly" || !strings.Contains(f.Message, "organization is not known") || !strings.Contains(f.Fix, "--org-path") {
		t.Errorf("unknown organization, Deny StringNotEquals aws:PrincipalOrgID: %+v", pv)
	}
	if pv := orgVerdict(t, deny, PathInstance, testOrgPath); !pv.OK {
		t.Errorf("member of the organization under the Deny: %+v", pv)
	}
	if pv := orgVerdict(t, deny, PathInstance, otherOrgPath); pv.OK || strings.Contains(pv.Findings[0].Message, "not known") {
		t.Errorf("member of another organization under the Deny: %+v", pv)
	}
}

// A service-linked role is an IAM role of the account (IAM User Guide,
// "Service-linked roles"), and aws:PrincipalOrgPaths describes any IAM
// role's account ("AWS global condition context keys": the principal "can
// be an IAM user, IAM role, federated user, or AWS account root user");
// AWS lists no exception for service-linked roles, as it does for
// aws:CalledVia and aws:ViaAWSService. So the Auto Scaling role's requests
// carry the target's organization keys: under a Deny for principals
// outside the organization it still uses its grant.
func TestServiceLinkedRoleRequestsCarryTheAccountsOrgKeys(t *testing.T) {
	doc := `{"Version":"2012-10-17","Statement":[
	  {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
	  {"Sid":"OrgOnly","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*",
	   "Condition":{"StringNotEquals":{"aws:PrincipalOrgID":["o-abcdefghij"]},"Bool":{"aws:PrincipalIsAWSService":"false"}}}]}`
	grant := Grant{GranteePrincipal: DefaultAutoScalingRole("aws", targetAccount), Operations: AutoScalingGrantOperations}
	if pv := orgVerdict(t, doc, PathASG, testOrgPath, grant); !pv.OK {
		t.Errorf("member's Auto Scaling role with its grant: %+v", pv)
	}
	pv := orgVerdict(t, doc, PathASG, "", grant)
	if f, ok := findingFor(pv, CodeKeyPolicyDenies); pv.OK || !ok || f.Statement != "OrgOnly" {
		t.Errorf("Auto Scaling role of an account whose organization is unknown: %+v", pv)
	}
	// The target's own CreateGrant for the role carries the keys too.
	keyARN := mustKeyARN(t, testKey)
	caller := AnyPrincipal("aws", targetAccount)
	target := Target{Account: targetAccount, OrgPath: testOrgPath}
	key := Key{ARN: testKey, Policy: mustPolicy(t, useByCondition(`{"StringEquals":{"aws:PrincipalOrgID":"o-abcdefghij"}}`))}
	if a := Authorize(&key, testEnv(keyARN).directGrantRequest(caller, grant.GranteePrincipal, target.orgFor(caller)), nil); a.Decision != Allowed {
		t.Errorf("the target's own CreateGrant: %v", a.Decision)
	}
}

// The organization keys describe the principal's own account: a launching
// principal named in another account does not get the target's.
func TestOrganizationKeysAreOnlyForThePrincipalsOfTheAccount(t *testing.T) {
	target := Target{Account: targetAccount, OrgPath: testOrgPath}
	if target.orgFor("arn:aws:iam::999988887777:role/Launcher") != nil {
		t.Error("a principal of another account got the target's organization keys")
	}
	for _, p := range []string{targetRole, targetSession, DefaultAutoScalingRole("aws", targetAccount), AnyPrincipal("aws", targetAccount)} {
		if o := target.orgFor(p); o == nil || o.id[0] != testOrg || o.paths[0] != testOrgPath {
			t.Errorf("%s: organization context %+v", p, o)
		}
	}
}

func TestParseOrgPath(t *testing.T) {
	for in, want := range map[string]string{
		testOrgPath:            testOrgPath,
		"o-abcdefghij/r-ab12":  "o-abcdefghij/r-ab12/",
		"o-abcdefghij/r-ab12/": "o-abcdefghij/r-ab12/",
		"o-a1b2c3d4e5/r-f6g7h8i9j0/ou-f6g7-awsabcde/": "o-a1b2c3d4e5/r-f6g7h8i9j0/ou-f6g7-awsabcde/",
	} {
		path, id, err := ParseOrgPath(in)
		if err != nil || path != want || id != strings.Split(want, "/")[0] {
			t.Errorf("ParseOrgPath(%q) = %q, %q, %v; want %q", in, path, id, err, want)
		}
	}
	for in, want := range map[string]string{
		"":                                  "is not an organization path",
		"o-abcdefghij":                      "is not an organization path",
		"o-abcdefghij/":                     "is not an organization path",
		"o-ABCDEFGHIJ/r-ab12/":              `"o-ABCDEFGHIJ" is not an organization id`,
		"o-abc/r-ab12/":                     `"o-abc" is not an organization id`,
		"o-abcdefghij/ou-ab12-11111111/":    `"ou-ab12-11111111" is not a root id`,
		"o-abcdefghij/r-ab12/ou-ab12/":      `"ou-ab12" is not an organizational unit id`,
		"o-abcdefghij/r-ab12//":             `"" is not an organizational unit id`,
		"o-abcdefghij/r-ab12/111122223333/": `"111122223333" is not an organizational unit id`,
		"o-abcdefghij/r-ab12/ou-ab12-1111*": "is not an organizational unit id",
	} {
		if _, _, err := ParseOrgPath(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseOrgPath(%q): %v, want %q", in, err, want)
		}
	}
}

// launchVerdict checks one path of target against doc at now (the zero
// time: not known), with the grants.
func launchVerdict(t *testing.T, doc string, target Target, p Path, now time.Time, grants ...Grant) PathVerdict {
	t.Helper()
	if target.Account == "" {
		target.Account = targetAccount
	}
	target.Paths = []Path{p}
	key := Key{ARN: testKey, Policy: mustPolicy(t, doc), Grants: grants}
	return pathVerdict(t, CheckWith(key, []Target{target}, CheckOptions{Now: now}), target.Account, p)
}

// withUse is a key policy that lets the target's account use the key for
// a launch, plus the given statements.
func withUse(statements ...string) string {
	return `{"Version":"2012-10-17","Statement":[
	  {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
	  {"Sid":"Use","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant"],"Resource":"*"}` +
		strings.Join(append([]string{""}, statements...), ",\n") + `]}`
}

// allowByCondition lets the target's account use the key only under cond.
func allowByCondition(cond string) string {
	return `{"Version":"2012-10-17","Statement":[
	  {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
	  {"Sid":"Limited","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*","kms:CreateGrant"],"Resource":"*","Condition":` + cond + `}]}`
}

// denyByCondition is withUse plus a Deny of every KMS action under cond.
func denyByCondition(cond string) string {
	return withUse(`{"Sid":"Guard","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":` + cond + `}`)
}

func wantFinding(t *testing.T, pv PathVerdict, code, statement string, texts ...string) {
	t.Helper()
	f, ok := findingFor(pv, code)
	if pv.OK || !ok || f.Statement != statement {
		t.Fatalf("verdict %+v, want %s on %q", pv, code, statement)
	}
	for _, s := range texts {
		if !strings.Contains(f.Message+"\n"+f.Fix, s) {
			t.Errorf("%s finding lacks %q:\n%s\nfix: %s", code, s, f.Message, f.Fix)
		}
	}
}

// IAM User Guide, "AWS global condition context keys", aws:PrincipalArn:
// every signed request carries the ARN of the role (or user) that makes
// it. The verdict about "any role or user of the target" cannot know that
// ARN, so a condition on it is decided only when it holds, or fails, for
// every role and user of the account: otherwise an Allow is not counted
// and a Deny is. StringEquals compares exactly ("IAM JSON policy
// elements: Condition operators"), so "role/*" written with it is no
// role's ARN. A named launching role is evaluated as itself.
func TestPrincipalArnOfAnUnnamedLaunchingPrincipalIsUndecided(t *testing.T) {
	any := Target{}
	for _, tc := range []struct {
		name, doc string
		target    Target
		ok        bool
		code      string
		texts     []string
	}{
		{"Allow with StringEquals on role/* (a slip for ArnLike)", allowByCondition(`{"StringEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/*"}}`), any, false,
			CodeKeyPolicyMissing, []string{"aws:PrincipalArn", "compares the text exactly", "--principal 111122223333=ARN", "ArnLike"}},
		{"Allow with ArnLike on the account's roles only", allowByCondition(`{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/*"}}`), any, false,
			CodeKeyPolicyMissing, []string{"any role or user of account 111122223333"}},
		{"Allow with ArnLike on its roles and users", allowByCondition(`{"ArnLike":{"aws:PrincipalArn":["arn:aws:iam::111122223333:role/*","arn:aws:iam::111122223333:user/*"]}}`), any, true, "", nil},
		{"Allow with ArnLike on the whole account", allowByCondition(`{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:*"}}`), any, true, "", nil},
		{"Allow with StringLike on another account", allowByCondition(`{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::999988887777:*"}}`), any, false, CodeKeyPolicyMissing, nil},
		{"Deny StringLike on some of its roles", denyByCondition(`{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/app-*"}}`), any, false,
			CodeKeyPolicyDenies, []string{"may deny", "aws:PrincipalArn", "name the launching role"}},
		{"Deny ArnNotLike outside the two accounts (a perimeter)", denyByCondition(`{"ArnNotLike":{"aws:PrincipalArn":["arn:aws:iam::444455556666:*","arn:aws:iam::111122223333:*"]}}`), any, true, "", nil},
		{"Deny ArnLike on another account's roles", denyByCondition(`{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::999988887777:role/*"}}`), any, true, "", nil},
		{"Deny the root user by aws:PrincipalType", denyByCondition(`{"StringEquals":{"aws:PrincipalType":"Account"}}`), any, true, "", nil},
		{"Deny roles by aws:PrincipalType", denyByCondition(`{"StringEquals":{"aws:PrincipalType":"AssumedRole"}}`), any, false, CodeKeyPolicyDenies, []string{"aws:PrincipalType"}},
		{"Deny by aws:userid", denyByCondition(`{"StringLike":{"aws:userid":"AROA*"}}`), any, false, CodeKeyPolicyDenies, []string{"aws:userid"}},
		{"Deny by aws:username", denyByCondition(`{"StringEquals":{"aws:username":"alice"}}`), any, false, CodeKeyPolicyDenies, []string{"aws:username"}},
		// The launching role named: decided.
		{"named role app-x under the Deny on app-*", denyByCondition(`{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/app-*"}}`),
			Target{Principal: "arn:aws:iam::111122223333:role/app-x"}, false, CodeKeyPolicyDenies, []string{"explicitly denies"}},
		{"named role ci under the Deny on app-*", denyByCondition(`{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/app-*"}}`),
			Target{Principal: "arn:aws:iam::111122223333:role/ci"}, true, "", nil},
		{"named role ci, allowed by its ARN", allowByCondition(`{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/ci"}}`),
			Target{Principal: "arn:aws:iam::111122223333:role/ci"}, true, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pv := launchVerdict(t, tc.doc, tc.target, PathInstance, testNow)
			if tc.ok {
				if !pv.OK {
					t.Fatalf("red: %+v", pv.Findings)
				}
				return
			}
			statement := "Limited"
			if tc.code == CodeKeyPolicyDenies {
				statement = "Guard"
			}
			if tc.name == "Allow with StringLike on another account" {
				statement = ""
			}
			wantFinding(t, pv, tc.code, statement, tc.texts...)
		})
	}
}

// IAM User Guide, "AWS global condition context keys": aws:PrincipalTag/*
// is in the request of a principal that has the tag, aws:ResourceTag/* of
// a resource that has it, and KMS adds kms:ResourceAliases, the key's
// aliases (AWS KMS Developer Guide, "AWS KMS condition keys"). amigate
// reads none of them, so any condition on them, Null included, is
// undecided: an Allow is not counted and a Deny is.
func TestTagsAndAliasesAreNotReadSoConditionsOnThemAreUndecided(t *testing.T) {
	for _, cond := range []string{
		`{"StringEquals":{"aws:PrincipalTag/team":"platform"}}`,
		`{"Null":{"aws:PrincipalTag/team":"false"}}`,
		`{"StringEquals":{"aws:ResourceTag/share":"yes"}}`,
		`{"ForAnyValue:StringLike":{"kms:ResourceAliases":"alias/golden-*"}}`,
		`{"StringEquals":{"aws:SourceIdentity":"pipeline"}}`,
		`{"DateGreaterThan":{"aws:TokenIssueTime":"2026-01-01T00:00:00Z"}}`,
	} {
		if pv := launchVerdict(t, allowByCondition(cond), Target{}, PathInstance, testNow); pv.OK {
			t.Errorf("allow by %s counted", cond)
		} else if f, _ := findingFor(pv, CodeKeyPolicyMissing); f.Statement != "Limited" || !strings.Contains(f.Message, "cannot decide") {
			t.Errorf("allow by %s: %+v", cond, pv.Findings)
		}
		if pv := launchVerdict(t, denyByCondition(cond), Target{}, PathInstance, testNow); pv.OK {
			t.Errorf("deny by %s not counted", cond)
		} else if f, _ := findingFor(pv, CodeKeyPolicyDenies); f.Statement != "Guard" || !strings.Contains(f.Message, "may deny") {
			t.Errorf("deny by %s: %+v", cond, pv.Findings)
		}
	}
}

// IAM User Guide, "AWS global condition context keys": aws:CurrentTime
// and aws:EpochTime are always in the request context. They are the time
// the check is made for (CheckOptions.Now), compared with the date
// operators (ISO 8601 or epoch seconds) and, for aws:EpochTime, the
// numeric ones; with no time given they are undecided.
func TestCurrentTimeAndEpochTimeAreAlwaysInTheRequest(t *testing.T) {
	before, after := time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	for _, cond := range []string{
		`{"DateGreaterThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"}}`,
		`{"DateGreaterThan":{"aws:CurrentTime":"1767225600"}}`,
		`{"DateGreaterThan":{"aws:EpochTime":"2026-01-01T00:00:00Z"}}`,
		`{"NumericGreaterThan":{"aws:EpochTime":"1767225600"}}`,
	} {
		if pv := launchVerdict(t, denyByCondition(cond), Target{}, PathInstance, after); pv.OK {
			t.Errorf("Deny %s after the date: green", cond)
		}
		if pv := launchVerdict(t, denyByCondition(cond), Target{}, PathInstance, before); !pv.OK {
			t.Errorf("Deny %s before the date: %+v", cond, pv.Findings)
		}
		pv := launchVerdict(t, denyByCondition(cond), Target{}, PathInstance, time.Time{})
		wantFinding(t, pv, CodeKeyPolicyDenies, "Guard", "may deny", "no time of launch was given")
		// An allow until the date: green before it only.
		until := strings.Replace(cond, "GreaterThan", "LessThan", 1)
		if pv := launchVerdict(t, allowByCondition(until), Target{}, PathInstance, before); !pv.OK {
			t.Errorf("Allow %s before the date: %+v", until, pv.Findings)
		}
		for _, at := range []time.Time{after, {}} {
			if pv := launchVerdict(t, allowByCondition(until), Target{}, PathInstance, at); pv.OK {
				t.Errorf("Allow %s at %v: green", until, at)
			}
		}
	}
}

// IAM User Guide, "AWS global condition context keys",
// aws:MultiFactorAuthPresent: present when temporary credentials make the
// request, which a service forwarding a principal's call uses; false
// unless MFA was used. Auto Scaling's session was not authenticated with
// MFA (its CloudTrail records show mfaAuthenticated false), so a Deny for
// requests without MFA stops it; a Deny for requests lacking the key
// (Null true) stops neither it nor a forwarded call.
func TestMultiFactorAuthPresentIsInEveryForwardedRequest(t *testing.T) {
	grant := Grant{GranteePrincipal: DefaultAutoScalingRole("aws", targetAccount), Operations: AutoScalingGrantOperations}
	noMFA := denyByCondition(`{"Bool":{"aws:MultiFactorAuthPresent":"false"}}`)
	wantFinding(t, launchVerdict(t, noMFA, Target{}, PathASG, testNow, grant), CodeKeyPolicyDenies, "Guard", "explicitly denies")
	wantFinding(t, launchVerdict(t, noMFA, Target{}, PathInstance, testNow), CodeKeyPolicyDenies, "Guard", "may deny", "aws:MultiFactorAuthPresent")
	absent := denyByCondition(`{"Null":{"aws:MultiFactorAuthPresent":"true"}}`)
	if pv := launchVerdict(t, absent, Target{}, PathASG, testNow, grant); !pv.OK {
		t.Errorf("asg under a Deny when the key is missing: %+v", pv.Findings)
	}
	if pv := launchVerdict(t, absent, Target{}, PathInstance, testNow); !pv.OK {
		t.Errorf("instance under a Deny when the key is missing: %+v", pv.Findings)
	}
}

// IAM User Guide, "AWS global condition context keys", aws:ResourceAccount:
// the account that owns the resource, here the key's. The perimeter
// pattern StringNotEquals aws:PrincipalAccount ${aws:ResourceAccount}
// denies every other account, so a target of another account is red for
// certain, and a Deny by aws:ResourceAccount of another account applies
// to no launch.
func TestResourceAccountIsTheKeyOwnersAccount(t *testing.T) {
	perimeter := denyByCondition(`{"StringNotEquals":{"aws:PrincipalAccount":"${aws:ResourceAccount}"}}`)
	wantFinding(t, launchVerdict(t, perimeter, Target{}, PathInstance, testNow), CodeKeyPolicyDenies, "Guard", "explicitly denies")
	if pv := launchVerdict(t, denyByCondition(`{"StringNotEquals":{"aws:ResourceAccount":"444455556666"}}`), Target{}, PathInstance, testNow); !pv.OK {
		t.Errorf("Deny for keys outside the owner's account: %+v", pv.Findings)
	}
}

// IAM User Guide, "IAM policy elements: Variables and tags", policy
// variables with no value: a variable the request does not carry matches
// nothing, so StringEquals on it fails, StringNotEquals holds, and a
// Resource or NotResource entry with it names no resource. A variable
// whose key amigate cannot know leaves its statement undecided: an Allow
// is not counted, a Deny is.
func TestPolicyVariableWithNoValueMatchesNothing(t *testing.T) {
	req := Request{Principal: targetRole, Action: "kms:Decrypt", Resource: testKey, Context: map[string][]string{"aws:PrincipalAccount": {targetAccount}}}
	for stmt, want := range map[string]Decision{
		`{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalAccount":"${aws:username}"}}}`:                        ExplicitDeny,
		`{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":["${aws:username}","x"]}}}`:                     Allowed,
		`{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":["${aws:username}","` + targetAccount + `"]}}}`: ExplicitDeny,
		`{"Effect":"Deny","Principal":"*","Action":"kms:*","NotResource":"arn:aws:kms:us-east-1:444455556666:key/${aws:PrincipalTag/keyid}"}`:                                 ExplicitDeny,
		`{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"arn:aws:kms:us-east-1:444455556666:key/${aws:PrincipalTag/keyid}"}`:                                    Allowed,
	} {
		doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},` + stmt + `]}`
		if r := decide(t, doc, req); r.Decision != want || len(r.Unknown) != 1 {
			t.Errorf("%s: %v (unknown %v), want %v", stmt, r.Decision, r.Unknown, want)
		}
	}
	// In a verdict: ${aws:PrincipalTag/owner} is undecidable.
	deny := denyByCondition(`{"StringNotEquals":{"aws:PrincipalAccount":"${aws:PrincipalTag/owner}"}}`)
	wantFinding(t, launchVerdict(t, deny, Target{}, PathInstance, testNow), CodeKeyPolicyDenies, "Guard", "may deny", "${aws:principaltag/owner}")
	allow := allowByCondition(`{"StringEquals":{"aws:PrincipalAccount":"${aws:PrincipalTag/owner}"}}`)
	wantFinding(t, launchVerdict(t, allow, Target{}, PathInstance, testNow), CodeKeyPolicyMissing, "Limited", "cannot decide")
	// ${aws:username} is absent for the Auto Scaling role's session: the
	// Deny applies for certain, and the warning names the variable.
	grant := Grant{GranteePrincipal: DefaultAutoScalingRole("aws", targetAccount), Operations: AutoScalingGrantOperations}
	pv := launchVerdict(t, denyByCondition(`{"StringNotEquals":{"kms:CallerAccount":"${aws:username}"}}`), Target{}, PathASG, testNow, grant)
	wantFinding(t, pv, CodeKeyPolicyDenies, "Guard", "explicitly denies")
	if f, ok := findingFor(pv, CodeUnknownVariable); !ok || !strings.Contains(f.Message, "no value") {
		t.Errorf("no POLICY_VARIABLE_UNKNOWN warning: %+v", pv.Findings)
	}
}

// IAM User Guide, "AWS JSON policy elements: NotPrincipal": a session is
// exempted only by its own ARN ("principals must always name a specific
// session"), so a Deny whose NotPrincipal lists the Auto Scaling role's
// ARN still denies the session Auto Scaling acts as
// (arn:aws:sts::ACCOUNT:assumed-role/AWSServiceRoleForAutoScaling/AutoScaling,
// as CloudTrail records it). AWS may also check the account and the role
// before the session, so the exemption is certain only when NotPrincipal
// lists all three, as the guide's example does; a service-linked role
// cannot have a permissions boundary, which would void it.
func TestDenyNotPrincipalNamingTheAutoScalingRoleStillDeniesItsSession(t *testing.T) {
	role := DefaultAutoScalingRole("aws", targetAccount)
	session := "arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAutoScaling/AutoScaling"
	grant := Grant{GranteePrincipal: role, Operations: AutoScalingGrantOperations}
	deny := func(listed ...string) string {
		return withUse(`{"Sid":"OnlyAutoScaling","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::444455556666:root","` + strings.Join(listed, `","`) + `"]},"Action":"kms:*","Resource":"*"}`)
	}
	pv := launchVerdict(t, deny(role), Target{}, PathASG, testNow, grant)
	wantFinding(t, pv, CodeKeyPolicyDenies, "OnlyAutoScaling", "exempts none of the role's sessions", session, `"ArnNotEquals": {"aws:PrincipalArn": "`+role+`"}`)
	if pv.Principal != role {
		t.Errorf("verdict names %s, want the role", pv.Principal)
	}
	wantFinding(t, launchVerdict(t, deny(session), Target{}, PathASG, testNow, grant), CodeKeyPolicyDenies, "OnlyAutoScaling", "may deny", "NotPrincipal")
	if pv := launchVerdict(t, deny(session, role, RootARN("aws", targetAccount)), Target{}, PathASG, testNow, grant); !pv.OK {
		t.Errorf("NotPrincipal listing the session, its role and its account: %+v", pv.Findings)
	}
}

// IAM User Guide, "AWS JSON policy elements: NotPrincipal": a Deny with
// NotPrincipal always denies a principal that has a permissions boundary,
// whatever NotPrincipal lists. amigate does not know whether a named
// launching user or role has one, so their exemption is never certain.
func TestDenyNotPrincipalMayStillDenyAPrincipalWithAPermissionsBoundary(t *testing.T) {
	alice := "arn:aws:iam::111122223333:user/alice"
	doc := withUse(`{"Sid":"OnlyAlice","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::444455556666:root","arn:aws:iam::111122223333:root","` + alice + `"]},"Action":"kms:*","Resource":"*"}`)
	wantFinding(t, launchVerdict(t, doc, Target{Principal: alice}, PathInstance, testNow), CodeKeyPolicyDenies, "OnlyAlice", "may deny", "permissions boundary", "ArnNotEquals")
	// Evaluated on its own, the request of alice is exempt.
	if r := decide(t, doc, Request{Principal: alice, Action: "kms:Decrypt", Resource: testKey}); r.Decision != Allowed {
		t.Errorf("alice's own request: %v", r.Decision)
	}
}

// IAM User Guide, "AWS global condition context keys", aws:ViaAWSService:
// false when a service uses a service-linked role, true when it forwards a
// principal's credentials. EC2's calls for an Auto Scaling launch are made
// with the service-linked role's session, so the key is undecided there:
// the usual exemption of service calls (Bool aws:ViaAWSService false)
// from a network Deny holds for the instance path, not for the asg path,
// whose fix exempts the role by its ARN.
func TestViaAWSServiceIsUndecidedForAutoScalingsServiceLinkedRole(t *testing.T) {
	grant := Grant{GranteePrincipal: DefaultAutoScalingRole("aws", targetAccount), Operations: AutoScalingGrantOperations}
	network := denyByCondition(`{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"},"Bool":{"aws:ViaAWSService":"false"}}`)
	if pv := launchVerdict(t, network, Target{}, PathInstance, testNow); !pv.OK {
		t.Errorf("instance path under a network Deny that exempts service calls: %+v", pv.Findings)
	}
	wantFinding(t, launchVerdict(t, network, Target{}, PathASG, testNow, grant), CodeSourceIPCondition, "Guard", `"ArnNotLike": {"aws:PrincipalArn"`)
	exempt := denyByCondition(`{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"},"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling*"},"Bool":{"aws:ViaAWSService":"false"}}`)
	if pv := launchVerdict(t, exempt, Target{}, PathASG, testNow, grant); !pv.OK {
		t.Errorf("asg path exempt by its ARN: %+v", pv.Findings)
	}
	// aws:CalledVia is documented both ways for EC2's forwarded calls.
	wantFinding(t, launchVerdict(t, denyByCondition(`{"ForAnyValue:StringEquals":{"aws:CalledVia":"ec2.amazonaws.com"}}`), Target{}, PathInstance, testNow), CodeKeyPolicyDenies, "Guard", "may deny", "aws:CalledVia")
}

// IAM User Guide, "AWS global condition context keys", aws:SourceIp: the
// address a request comes from; EC2 calls KMS for a launch from AWS's own
// addresses, which amigate cannot know. So an allow by the user's range,
// even with ...IfExists, is not counted, and says why.
func TestSourceIpOfEC2sCallsIsNotTheUsers(t *testing.T) {
	for _, cond := range []string{`{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, `{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}`} {
		wantFinding(t, launchVerdict(t, allowByCondition(cond), Target{}, PathInstance, testNow), CodeSourceIPCondition, "Limited", "AWS's own addresses")
	}
}

// IAM User Guide, "IAM JSON policy elements: Condition operators", Boolean
// condition operators: AWS compares "true" or "false" and does not say
// whether the comparison ignores case, so a value written "True" leaves
// the condition undecided.
func TestBoolValueNotInLowerCaseIsUndecided(t *testing.T) {
	doc := `{"Version":"2012-10-17","Statement":[
	  {"Sid":"Use","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*"],"Resource":"*"},
	  {"Sid":"Grants","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:CreateGrant","Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"True"}}}]}`
	wantFinding(t, launchVerdict(t, doc, Target{}, PathInstance, testNow), CodeKeyPolicyMissing, "Grants", "lower case", `write "true"`)
	if pv := launchVerdict(t, strings.Replace(doc, `"True"`, `"true"`, 1), Target{}, PathInstance, testNow); !pv.OK {
		t.Errorf("lower case: %+v", pv.Findings)
	}
}

// IAM User Guide, "Single-valued vs. multivalued context keys": a key
// whose values resolve to an empty set is no value: ForAllValues: holds,
// ForAnyValue: does not, even with ...IfExists.
func TestEmptySetOfValuesIsNoValue(t *testing.T) {
	ctx := map[string][]string{"kms:GrantOperations": {}}
	for cond, want := range map[string]bool{
		`{"ForAllValues:StringEquals":{"kms:GrantOperations":"Decrypt"}}`:        true,
		`{"ForAnyValue:StringEquals":{"kms:GrantOperations":"Decrypt"}}`:         false,
		`{"ForAnyValue:StringNotEquals":{"kms:GrantOperations":"Decrypt"}}`:      false,
		`{"ForAnyValue:StringEqualsIfExists":{"kms:GrantOperations":"Decrypt"}}`: false,
		`{"Null":{"kms:GrantOperations":"true"}}`:                                true,
	} {
		if got := conditionPolicy(t, cond).Evaluate(Request{Principal: targetRole, Action: "kms:Decrypt", Resource: testKey, Context: ctx}).Decision == Allowed; got != want {
			t.Errorf("%s on an empty set: %v, want %v", cond, got, want)
		}
	}
}

// Service Authorization Reference, AWS KMS, CreateGrant: its request
// carries kms:GrantOperations, kms:GranteePrincipal, kms:RetiringPrincipal
// and the grant's constraints. For the grant EC2 creates for a launch,
// EC2 chooses them, so an allow that depends on them is not counted.
func TestConditionsOnEC2sOwnGrantAreUndecided(t *testing.T) {
	doc := `{"Version":"2012-10-17","Statement":[
	  {"Sid":"Use","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*"],"Resource":"*"},
	  {"Sid":"Grants","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:CreateGrant","Resource":"*",
	   "Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"},"ForAllValues:StringEquals":{"kms:GrantOperations":["Decrypt","Encrypt"]}}}]}`
	wantFinding(t, launchVerdict(t, doc, Target{}, PathInstance, testNow), CodeKeyPolicyMissing, "Grants", "EC2 chooses", "kms:GrantIsForAWSResource")
}

// AWS KMS Developer Guide, "AWS KMS condition keys": KMS supplies
// kms:KeySpec, kms:KeyUsage and kms:KeyOrigin, the key's own properties,
// for every operation on it. The first two come from the key's metadata
// (the defaults of a key whose launch can work at all), the origin only
// when known.
func TestKeyPropertiesAreInEveryRequest(t *testing.T) {
	if pv := launchVerdict(t, denyByCondition(`{"StringNotEquals":{"kms:KeySpec":"SYMMETRIC_DEFAULT","kms:KeyUsage":"ENCRYPT_DECRYPT"}}`), Target{}, PathInstance, testNow); !pv.OK {
		t.Errorf("Deny for other key specs: %+v", pv.Findings)
	}
	deny := denyByCondition(`{"StringEquals":{"kms:KeyOrigin":"EXTERNAL"}}`)
	wantFinding(t, launchVerdict(t, deny, Target{}, PathInstance, testNow), CodeKeyPolicyDenies, "Guard", "may deny", "--key-metadata")
	key := Key{ARN: testKey, Policy: mustPolicy(t, deny), Origin: "AWS_KMS"}
	if v := CheckWith(key, []Target{{Account: targetAccount, Paths: []Path{PathInstance}}}, CheckOptions{Now: testNow}); !v.OK {
		t.Errorf("origin AWS_KMS under a Deny for EXTERNAL: %+v", v.Targets)
	}
}

// undecidableTable is an Undecidable given as a table: Keys maps
// lower-cased keys to the values they may take (nil: nothing is known);
// nothing is known of a key under one of Prefixes.
type undecidableTable struct {
	Keys     map[string][]string
	Prefixes []string
}

func (u *undecidableTable) Values(key string) ([]string, bool) {
	if v, ok := u.Keys[key]; ok {
		return v, true
	}
	for _, p := range u.Prefixes {
		if strings.HasPrefix(key, p) {
			return nil, true
		}
	}
	return nil, false
}

// A caller that builds its own requests names what it cannot know with an
// Undecidable: a condition on such a key decides only when it comes out
// the same for every value the key may take.
func TestUndecidableKeysTable(t *testing.T) {
	und := &undecidableTable{
		Keys:     map[string][]string{"aws:principalarn": {"arn:aws:iam::111122223333:role/*"}, "aws:sourceidentity": nil},
		Prefixes: []string{"aws:principaltag/"},
	}
	for cond, want := range map[string]Decision{
		`{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/*"}}`:  Allowed,
		`{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::999988887777:*"}}`:       ImplicitDeny,
		`{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/a*"}}`: ImplicitDeny,
		`{"Null":{"aws:PrincipalArn":"false"}}`:                                Allowed,
		`{"Null":{"aws:SourceIdentity":"true"}}`:                               ImplicitDeny,
		`{"StringEquals":{"aws:PrincipalTag/team":"x"}}`:                       ImplicitDeny,
	} {
		r := conditionPolicy(t, cond).Evaluate(Request{Principal: targetRole, Action: "kms:Decrypt", Resource: testKey, Undecidable: und})
		if r.Decision != want {
			t.Errorf("%s: %v, want %v", cond, r.Decision, want)
		}
		if undecided := r.Decision == ImplicitDeny && !strings.Contains(cond, "999988887777"); undecided != (len(r.Undecided) == 1) {
			t.Errorf("%s: undecided %+v", cond, r.Undecided)
		}
	}
}

// A KMS call a principal makes itself (amigate's dry run checks its own
// calls so) carries what AWS sends with every request to KMS: the key's
// properties (AWS KMS Developer Guide, "AWS KMS condition keys"), the
// principal's account, ARN and type, that no service signs or forwards it
// (IAM User Guide, "AWS global condition context keys"); and the keys its
// caller knows, such as the grant's parameters and a session's role. What
// it cannot know stays undecidable: where the call comes from, and
// whether a multi-Region key is the primary or a replica.
func TestDirectRequestCarriesWhatAWSSends(t *testing.T) {
	const (
		mrk     = "arn:aws:kms:us-east-1:444455556666:key/mrk-1234abcd12ab34cd56ef1234567890ab"
		session = "arn:aws:sts::111122223333:assumed-role/builder/me"
		role    = "arn:aws:iam::111122223333:role/ci/builder"
	)
	req, err := DirectRequest(&Key{ARN: mrk, Origin: "AWS_KMS"}, session, "kms:CreateGrant", testNow,
		map[string][]string{"aws:PrincipalArn": {role}, "kms:GranteePrincipal": {targetRole}})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"kms:multiregion": "true", "kms:keyspec": "SYMMETRIC_DEFAULT", "kms:keyusage": "ENCRYPT_DECRYPT", "kms:keyorigin": "AWS_KMS",
		"aws:principaltype": "AssumedRole", "aws:principalisawsservice": "false", "aws:viaawsservice": "false",
		"aws:principalaccount": "111122223333", "aws:resourceaccount": "444455556666", "aws:principalarn": role,
		"kms:granteeprincipal": targetRole, "aws:currenttime": testNow.UTC().Format(time.RFC3339),
	} {
		if got := req.Context[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %v, want %s", k, got, want)
		}
	}
	for k, want := range map[string]bool{"kms:multiregionkeytype": true, "aws:sourceip": true, "aws:principalarn": false, "kms:granteeprincipal": false} {
		if _, got := req.Undecidable.Values(k); got != want {
			t.Errorf("%s undecidable = %v, want %v", k, got, want)
		}
	}
	// The session's role, with its path, decides a Deny by role ARN.
	deny := mustPolicy(t, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},
	  {"Effect":"Deny","Principal":"*","Action":"kms:CreateGrant","Resource":"*","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/ci/*"}}}]}`)
	if r := deny.Evaluate(req); r.Decision != ExplicitDeny || len(r.Undecided) != 0 {
		t.Errorf("Deny of role/ci/* to a session of role/ci/builder: %+v", r)
	}
	if _, err := DirectRequest(&Key{ARN: "alias/golden"}, session, "kms:CreateGrant", testNow, nil); err == nil {
		t.Error("an alias taken for a key ARN")
	}
}
