package keypolicy

import (
	"errors"
	"strings"
	"testing"
)

const testKey = "arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab"

// conditionPolicy allows kms:Decrypt to everyone under one condition block.
func conditionPolicy(t *testing.T, cond string) *Policy {
	t.Helper()
	return mustPolicy(t, `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":`+cond+`}}`)
}

func TestConditionOperators(t *testing.T) {
	type ctx = map[string][]string
	for _, tc := range []struct {
		name string
		cond string
		ctx  ctx
		want bool
	}{
		{"StringEquals match", `{"StringEquals":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}}`, ctx{"kms:ViaService": {"ec2.us-east-1.amazonaws.com"}}, true},
		{"StringEquals is case-sensitive in values", `{"StringEquals":{"kms:ViaService":"EC2.us-east-1.amazonaws.com"}}`, ctx{"kms:viaservice": {"ec2.us-east-1.amazonaws.com"}}, false},
		{"condition keys are case-insensitive", `{"StringEquals":{"KMS:VIASERVICE":"x"}}`, ctx{"kms:ViaService": {"x"}}, true},
		{"StringEquals any of the policy values", `{"StringEquals":{"k":["a","b"]}}`, ctx{"k": {"b"}}, true},
		{"StringEquals missing key", `{"StringEquals":{"k":"a"}}`, ctx{}, false},
		{"StringNotEquals", `{"StringNotEquals":{"k":["a","b"]}}`, ctx{"k": {"c"}}, true},
		{"StringNotEquals matching", `{"StringNotEquals":{"k":["a","b"]}}`, ctx{"k": {"a"}}, false},
		{"StringNotEquals missing key is true", `{"StringNotEquals":{"k":"a"}}`, ctx{}, true},
		{"StringEqualsIgnoreCase", `{"StringEqualsIgnoreCase":{"k":"ABC"}}`, ctx{"k": {"abc"}}, true},
		{"StringNotEqualsIgnoreCase", `{"StringNotEqualsIgnoreCase":{"k":"ABC"}}`, ctx{"k": {"abc"}}, false},
		{"StringLike star", `{"StringLike":{"k":"arn:aws:iam::*:role/x*"}}`, ctx{"k": {"arn:aws:iam::111122223333:role/xyz"}}, true},
		{"StringLike question", `{"StringLike":{"k":"a?c"}}`, ctx{"k": {"abc"}}, true},
		{"StringLike question is one char", `{"StringLike":{"k":"a?c"}}`, ctx{"k": {"abbc"}}, false},
		{"StringNotLike", `{"StringNotLike":{"k":"a*"}}`, ctx{"k": {"b"}}, true},
		{"NumericEquals", `{"NumericEquals":{"k":"10"}}`, ctx{"k": {"10.0"}}, true},
		{"NumericNotEquals", `{"NumericNotEquals":{"k":"10"}}`, ctx{"k": {"11"}}, true},
		{"NumericLessThan", `{"NumericLessThan":{"k":10}}`, ctx{"k": {"9"}}, true},
		{"NumericLessThan equal", `{"NumericLessThan":{"k":10}}`, ctx{"k": {"10"}}, false},
		{"NumericLessThanEquals", `{"NumericLessThanEquals":{"k":"10"}}`, ctx{"k": {"10"}}, true},
		{"NumericGreaterThan", `{"NumericGreaterThan":{"k":"10"}}`, ctx{"k": {"10.5"}}, true},
		{"NumericGreaterThanEquals", `{"NumericGreaterThanEquals":{"k":"10"}}`, ctx{"k": {"9"}}, false},
		{"DateLessThan", `{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}`, ctx{"aws:CurrentTime": {"2026-11-22T10:00:00Z"}}, true},
		{"DateGreaterThan epoch", `{"DateGreaterThan":{"aws:EpochTime":"1700000000"}}`, ctx{"aws:EpochTime": {"1800000000"}}, true},
		{"DateEquals", `{"DateEquals":{"k":"2026-01-01T00:00:00Z"}}`, ctx{"k": {"2026-01-01T01:00:00+01:00"}}, true},
		{"DateNotEquals", `{"DateNotEquals":{"k":"2026-01-01T00:00:00Z"}}`, ctx{"k": {"2026-01-02T00:00:00Z"}}, true},
		{"DateLessThanEquals", `{"DateLessThanEquals":{"k":"2026-01-01"}}`, ctx{"k": {"2026-01-01T00:00:00Z"}}, true},
		{"DateGreaterThanEquals", `{"DateGreaterThanEquals":{"k":"2026-01-01T00:00:00Z"}}`, ctx{"k": {"2025-12-31T23:59:59Z"}}, false},
		{"Bool true", `{"Bool":{"kms:GrantIsForAWSResource":"true"}}`, ctx{"kms:GrantIsForAWSResource": {"true"}}, true},
		{"Bool JSON literal", `{"Bool":{"kms:GrantIsForAWSResource":true}}`, ctx{"kms:GrantIsForAWSResource": {"TRUE"}}, true},
		{"Bool false against true", `{"Bool":{"aws:SecureTransport":"false"}}`, ctx{"aws:SecureTransport": {"true"}}, false},
		{"Bool missing", `{"Bool":{"kms:GrantIsForAWSResource":"true"}}`, ctx{}, false},
		{"BoolIfExists missing", `{"BoolIfExists":{"kms:GrantIsForAWSResource":"true"}}`, ctx{}, true},
		{"BinaryEquals", `{"BinaryEquals":{"k":"QmluYXJ5"}}`, ctx{"k": {"QmluYXJ5"}}, true},
		{"BinaryEquals different", `{"BinaryEquals":{"k":"QmluYXJ5"}}`, ctx{"k": {"QmluYXJz"}}, false},
		{"IpAddress v4", `{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, ctx{"aws:SourceIp": {"203.0.113.7"}}, true},
		{"IpAddress v4 outside", `{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, ctx{"aws:SourceIp": {"198.51.100.7"}}, false},
		{"IpAddress v6", `{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}`, ctx{"aws:SourceIp": {"2001:db8:1::5"}}, true},
		{"IpAddress bare address", `{"IpAddress":{"aws:SourceIp":"203.0.113.7"}}`, ctx{"aws:SourceIp": {"203.0.113.7"}}, true},
		{"IpAddress missing key", `{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}`, ctx{}, false},
		{"NotIpAddress", `{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, ctx{"aws:SourceIp": {"198.51.100.7"}}, true},
		{"NotIpAddress missing key is true", `{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, ctx{}, true},
		{"ArnLike", `{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/aws-service-role/*"}}`, ctx{"aws:PrincipalArn": {"arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"}}, true},
		{"ArnLike star stays in its component", `{"ArnLike":{"k":"arn:aws:iam::*"}}`, ctx{"k": {"arn:aws:iam::111122223333:root"}}, false},
		{"ArnEquals", `{"ArnEquals":{"k":"arn:aws:iam::111122223333:root"}}`, ctx{"k": {"arn:aws:iam::111122223333:root"}}, true},
		{"ArnNotEquals", `{"ArnNotEquals":{"k":"arn:aws:iam::111122223333:root"}}`, ctx{"k": {"arn:aws:iam::444455556666:root"}}, true},
		{"ArnNotLike", `{"ArnNotLike":{"k":"arn:aws:iam::1111*:root"}}`, ctx{"k": {"arn:aws:iam::111122223333:root"}}, false},
		{"Null true on missing", `{"Null":{"kms:GranteePrincipal":"true"}}`, ctx{}, true},
		{"Null false on present", `{"Null":{"kms:GranteePrincipal":"false"}}`, ctx{"kms:GranteePrincipal": {"x"}}, true},
		{"Null true on present", `{"Null":{"kms:GranteePrincipal":"true"}}`, ctx{"kms:GranteePrincipal": {"x"}}, false},
		{"StringEqualsIfExists missing", `{"StringEqualsIfExists":{"k":"a"}}`, ctx{}, true},
		{"StringEqualsIfExists present mismatch", `{"StringEqualsIfExists":{"k":"a"}}`, ctx{"k": {"b"}}, false},
		{"ForAllValues subset", `{"ForAllValues:StringEquals":{"kms:GrantOperations":["Decrypt","CreateGrant"]}}`, ctx{"kms:GrantOperations": {"Decrypt"}}, true},
		{"ForAllValues not subset", `{"ForAllValues:StringEquals":{"kms:GrantOperations":["Decrypt"]}}`, ctx{"kms:GrantOperations": {"Decrypt", "Encrypt"}}, false},
		{"ForAllValues missing key is true", `{"ForAllValues:StringEquals":{"kms:GrantOperations":["Decrypt"]}}`, ctx{}, true},
		{"ForAnyValue overlap", `{"ForAnyValue:StringEquals":{"kms:GrantOperations":["Encrypt"]}}`, ctx{"kms:GrantOperations": {"Decrypt", "Encrypt"}}, true},
		{"ForAnyValue missing key is false", `{"ForAnyValue:StringEquals":{"kms:GrantOperations":["Encrypt"]}}`, ctx{}, false},
		{"ForAnyValue IfExists missing key is false", `{"ForAnyValue:StringEqualsIfExists":{"kms:GrantOperations":["Encrypt"]}}`, ctx{}, false},
		{"ForAllValues IfExists missing key is true", `{"ForAllValues:StringEqualsIfExists":{"kms:GrantOperations":["Encrypt"]}}`, ctx{}, true},
		{"ForAnyValue StringNotEquals", `{"ForAnyValue:StringNotEquals":{"k":["a"]}}`, ctx{"k": {"a", "b"}}, true},
		{"ForAllValues StringNotEquals", `{"ForAllValues:StringNotEquals":{"k":["a"]}}`, ctx{"k": {"a", "b"}}, false},
		{"ForAnyValue StringLike", `{"ForAnyValue:StringLike":{"k":["De*"]}}`, ctx{"k": {"Encrypt", "Decrypt"}}, true},
		{"qualifier and operator case", `{"forallvalues:stringequals":{"k":["a"]}}`, ctx{"k": {"a"}}, true},
		{"every key and operator must hold", `{"StringEquals":{"a":"1","b":"2"},"Bool":{"c":"true"}}`, ctx{"a": {"1"}, "b": {"2"}, "c": {"false"}}, false},
		{"policy variable resolved", `{"StringEquals":{"kms:CallerAccount":"${aws:PrincipalAccount}"}}`, ctx{"kms:CallerAccount": {"111122223333"}, "aws:PrincipalAccount": {"111122223333"}}, true},
		{"policy variable differs", `{"StringEquals":{"kms:CallerAccount":"${aws:PrincipalAccount}"}}`, ctx{"kms:CallerAccount": {"111122223333"}, "aws:PrincipalAccount": {"444455556666"}}, false},
		{"policy variable default", `{"StringEquals":{"k":"${aws:username, 'nobody'}"}}`, ctx{"k": {"nobody"}}, true},
		{"policy variable ${*} is a literal star", `{"StringLike":{"k":"a${*}"}}`, ctx{"k": {"ab"}}, false},
		{"policy variable ${*} matches a star", `{"StringLike":{"k":"a${*}"}}`, ctx{"k": {"a*"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := conditionPolicy(t, tc.cond)
			got := p.Evaluate(Request{Principal: "arn:aws:iam::111122223333:root", Action: "kms:Decrypt", Resource: testKey, Context: tc.ctx}).Decision == Allowed
			if got != tc.want {
				t.Fatalf("allowed = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUnknownPolicyVariableIsReportedNotMatched(t *testing.T) {
	p := conditionPolicy(t, `{"StringEquals":{"aws:PrincipalTag/team":"${aws:username}"}}`)
	r := p.Evaluate(Request{Principal: "arn:aws:iam::111122223333:root", Action: "kms:Decrypt", Resource: testKey, Context: map[string][]string{"aws:PrincipalTag/team": {"x"}}})
	if r.Decision != ImplicitDeny || len(r.Unknown) != 1 || r.Unknown[0] != "aws:username" {
		t.Fatalf("result = %+v", r)
	}
	// Also in Resource.
	p = mustPolicy(t, `{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"arn:aws:kms:*:${aws:PrincipalAccount}:key/*"}}`)
	r = p.Evaluate(Request{Principal: "arn:aws:iam::111122223333:root", Action: "kms:Decrypt", Resource: testKey})
	if r.Decision != ImplicitDeny || len(r.Unknown) != 1 {
		t.Fatalf("resource variable: %+v", r)
	}
}

func TestStatementShapes(t *testing.T) {
	role := "arn:aws:iam::111122223333:role/Launcher"
	session := "arn:aws:sts::111122223333:assumed-role/Launcher/build-42"
	for _, tc := range []struct {
		name      string
		stmt      string
		principal string
		action    string
		want      Decision
	}{
		{"Principal star", `"Principal":"*","Action":"kms:Decrypt"`, role, "kms:Decrypt", Allowed},
		{"Principal AWS star", `"Principal":{"AWS":"*"},"Action":"kms:Decrypt"`, role, "kms:Decrypt", Allowed},
		{"bare account id", `"Principal":{"AWS":"111122223333"},"Action":"kms:Decrypt"`, role, "kms:Decrypt", Allowed},
		{"root ARN names the account", `"Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:Decrypt"`, session, "kms:Decrypt", Allowed},
		{"other account", `"Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"kms:Decrypt"`, role, "kms:Decrypt", ImplicitDeny},
		{"role ARN matches its sessions", `"Principal":{"AWS":"` + role + `"},"Action":"kms:Decrypt"`, session, "kms:Decrypt", Allowed},
		{"role ARN with path matches by name", `"Principal":{"AWS":"arn:aws:iam::111122223333:role/team/Launcher"},"Action":"kms:Decrypt"`, session, "kms:Decrypt", Allowed},
		{"another role", `"Principal":{"AWS":"arn:aws:iam::111122223333:role/Other"},"Action":"kms:Decrypt"`, session, "kms:Decrypt", ImplicitDeny},
		{"service principal does not match a role", `"Principal":{"Service":"ec2.amazonaws.com"},"Action":"kms:Decrypt"`, role, "kms:Decrypt", ImplicitDeny},
		{"service principal", `"Principal":{"Service":"ec2.amazonaws.com"},"Action":"kms:Decrypt"`, "ec2.amazonaws.com", "kms:Decrypt", Allowed},
		{"action list and case", `"Principal":"*","Action":["kms:Encrypt","KMS:decrypt"]`, role, "kms:Decrypt", Allowed},
		{"action wildcard", `"Principal":"*","Action":"kms:ReEncrypt*"`, role, "kms:ReEncryptFrom", Allowed},
		{"action question mark", `"Principal":"*","Action":"kms:De?rypt"`, role, "kms:Decrypt", Allowed},
		{"NotAction", `"Principal":"*","NotAction":"kms:Decrypt"`, role, "kms:Decrypt", ImplicitDeny},
		{"NotAction other", `"Principal":"*","NotAction":["kms:Encrypt"]`, role, "kms:Decrypt", Allowed},
		{"star action", `"Principal":"*","Action":"*"`, role, "kms:Decrypt", Allowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPolicy(t, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",`+tc.stmt+`,"Resource":"*"}]}`)
			if got := p.Evaluate(Request{Principal: tc.principal, Action: tc.action, Resource: testKey}).Decision; got != tc.want {
				t.Fatalf("decision %v, want %v", got, tc.want)
			}
		})
	}
}

func TestResourceAndNotResource(t *testing.T) {
	for _, tc := range []struct {
		res  string
		want Decision
	}{
		{`"Resource":"*"`, Allowed},
		{`"Resource":"` + testKey + `"`, Allowed},
		{`"Resource":["arn:aws:kms:us-east-1:444455556666:key/*"]`, Allowed},
		{`"Resource":"arn:aws:kms:eu-west-1:444455556666:key/*"`, ImplicitDeny},
		{`"NotResource":"arn:aws:kms:eu-west-1:*"`, Allowed},
		{`"NotResource":"` + testKey + `"`, ImplicitDeny},
	} {
		p := mustPolicy(t, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*",`+tc.res+`}]}`)
		if got := p.Evaluate(Request{Principal: "111122223333", Action: "kms:Decrypt", Resource: testKey}).Decision; got != tc.want {
			t.Errorf("%s: %v, want %v", tc.res, got, tc.want)
		}
	}
}

func TestExplicitDenyWins(t *testing.T) {
	p := mustPolicy(t, `{"Version":"2012-10-17","Statement":[
	  {"Sid":"a","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},
	  {"Sid":"d","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:Decrypt","Resource":"*"}]}`)
	r := p.Evaluate(Request{Principal: "arn:aws:iam::111122223333:role/R", Action: "kms:Decrypt", Resource: testKey})
	if r.Decision != ExplicitDeny || len(r.Deciding) != 1 || r.Deciding[0] != 1 {
		t.Fatalf("%+v", r)
	}
	// Grants cannot override an explicit deny.
	key := Key{ARN: testKey, Policy: p, Grants: []Grant{{GranteePrincipal: "arn:aws:iam::111122223333:role/R", Operations: []string{"Decrypt"}}}}
	if a := Authorize(&key, Request{Principal: "arn:aws:iam::111122223333:role/R", Action: "kms:Decrypt", Resource: testKey}, nil); a.Decision != ExplicitDeny {
		t.Fatalf("grant overrode a deny: %+v", a)
	}
}

// NotPrincipal with Deny: naming an account's root exempts only the root
// user, not the account's roles; naming a role exempts none of its
// sessions (IAM User Guide, NotPrincipal).
func TestNotPrincipal(t *testing.T) {
	p := mustPolicy(t, `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},
	  {"Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::111122223333:root","arn:aws:iam::111122223333:role/Keep"]},"Action":"kms:*","Resource":"*"}]}`)
	for principal, want := range map[string]Decision{
		"arn:aws:iam::111122223333:root":                    Allowed,
		"arn:aws:iam::111122223333:role/Keep":               Allowed,
		"arn:aws:sts::111122223333:assumed-role/Keep/s":     ExplicitDeny,
		"arn:aws:iam::111122223333:role/Other":              ExplicitDeny,
		"arn:aws:iam::444455556666:role/Keep":               ExplicitDeny,
		"arn:aws:sts::111122223333:assumed-role/Other/sess": ExplicitDeny,
	} {
		if got := p.Evaluate(Request{Principal: principal, Action: "kms:Decrypt", Resource: testKey}).Decision; got != want {
			t.Errorf("%s: %v, want %v", principal, got, want)
		}
	}
}

func TestGrants(t *testing.T) {
	role := "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
	session := "arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAutoScaling/AutoScaling"
	p := mustPolicy(t, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"}]}`)
	ec := map[string][]string{"kms:EncryptionContext:aws:ebs:id": {"vol-1"}}
	for _, tc := range []struct {
		name      string
		grant     Grant
		principal string
		action    string
		ctx       map[string][]string
		want      Decision
	}{
		{"grantee role", Grant{GranteePrincipal: role, Operations: []string{"Decrypt"}}, role, "kms:Decrypt", nil, Allowed},
		{"grantee session", Grant{GranteePrincipal: role, Operations: []string{"Decrypt"}}, session, "kms:Decrypt", nil, Allowed},
		{"operation missing", Grant{GranteePrincipal: role, Operations: []string{"Encrypt"}}, role, "kms:Decrypt", nil, ImplicitDeny},
		{"other grantee", Grant{GranteePrincipal: "arn:aws:iam::111122223333:role/X", Operations: []string{"Decrypt"}}, role, "kms:Decrypt", nil, ImplicitDeny},
		{"context equals holds", Grant{GranteePrincipal: role, Operations: []string{"Decrypt"}, EncryptionContextEquals: map[string]string{"aws:ebs:id": "vol-1"}}, role, "kms:Decrypt", ec, Allowed},
		{"context equals fails", Grant{GranteePrincipal: role, Operations: []string{"Decrypt"}, EncryptionContextEquals: map[string]string{"aws:ebs:id": "vol-2"}}, role, "kms:Decrypt", ec, ImplicitDeny},
		{"context subset fails without context", Grant{GranteePrincipal: role, Operations: []string{"Decrypt"}, EncryptionContextSubset: map[string]string{"aws:ebs:id": "vol-1"}}, role, "kms:Decrypt", nil, ImplicitDeny},
		{"context subset holds", Grant{GranteePrincipal: role, Operations: []string{"Decrypt"}, EncryptionContextSubset: map[string]string{"aws:ebs:id": "vol-1"}}, role, "kms:Decrypt", ec, Allowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := Key{ARN: testKey, Policy: p, Grants: []Grant{tc.grant}}
			if got := Authorize(&key, Request{Principal: tc.principal, Action: tc.action, Resource: testKey, Context: tc.ctx}, nil).Decision; got != tc.want {
				t.Fatalf("%v, want %v", got, tc.want)
			}
		})
	}
}

func TestAuthorizeAccounts(t *testing.T) {
	p := mustPolicy(t, `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
	  {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:role/Direct"},"Action":"kms:Decrypt","Resource":"*"},
	  {"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:Decrypt","Resource":"*"}]}`)
	key := Key{ARN: testKey, Policy: p}
	noKMS := mustPolicy(t, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}`)
	for _, tc := range []struct {
		name      string
		principal string
		identity  *Policy
		want      Decision
	}{
		{"same account, named directly, no IAM needed", "arn:aws:iam::444455556666:role/Direct", noKMS, Allowed},
		{"same account via root delegation needs IAM", "arn:aws:iam::444455556666:role/Other", noKMS, ImplicitDeny},
		{"same account via root delegation with IAM assumed", "arn:aws:iam::444455556666:role/Other", nil, Allowed},
		{"cross account needs IAM", "arn:aws:iam::111122223333:role/R", noKMS, ImplicitDeny},
		{"cross account with IAM assumed", "arn:aws:iam::111122223333:role/R", nil, Allowed},
		{"cross account not in key policy", "arn:aws:iam::999999999999:role/R", nil, ImplicitDeny},
		{"cross account root", "arn:aws:iam::111122223333:root", nil, Allowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Authorize(&key, Request{Principal: tc.principal, Action: "kms:Decrypt", Resource: testKey}, tc.identity).Decision
			if got != tc.want {
				t.Fatalf("%v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want string
	}{
		{"{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\"Effect\": \"Allow\",}\n  ]\n}", "line 4, column"},
		{`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]`, "unexpected end of input"},
		{`[]`, "must be a JSON object"},
		{`{"Version":2012,"Statement":[]}`, `policy element "Version": want a string, got 2012`},
		{"{\"Statement\":[]}\n  A", "line 2, column 3: unexpected data after the document"},
		{`{"Statement":[]}{}`, "column 17: unexpected data after the document"},
		{`{"Statement":[{"Sid":1,"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}`, "Sid: want a string, got 1"},
		{`{"Statement":[{"Effect":"Allow","Principal":"*","Action":["kms:*",{}],"Resource":"*"}]}`, "Action: want a string or a list of strings, got {}"},
		{`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":"v"}}]}`, "Condition: must be an object of operator"},
		{`{"Version":"2012-10-17"}`, "no Statement"},
		{`{"Version":"2012","Statement":[]}`, `policy element "Version": "2012" is not a policy language version`},
		{`{"Statement":[{"Effect":"Permit","Principal":"*","Action":"kms:*","Resource":"*"}]}`, `Effect "Permit"`},
		{`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","NotAction":"x","Resource":"*"}]}`, "both Action and NotAction"},
		{`{"Statement":[{"Effect":"Allow","Principal":"*","Resource":"*"}]}`, "no Action"},
		{`{"Statement":[{"Effect":"Allow","Principal":"111122223333","Action":"kms:*","Resource":"*"}]}`, `a string principal must be "*"`},
		{`{"Statement":[{"Effect":"Allow","Principal":{"User":"x"},"Action":"kms:*","Resource":"*"}]}`, `unknown principal type "User"`},
		{`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEqual":{"k":"v"}}}]}`, `unknown condition operator "StringEqual"`},
		{`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"ForSomeValues:StringEquals":{"k":"v"}}}]}`, `unknown condition qualifier`},
		{`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}}]}`, `bad value "10.0.0.0/33"`},
		{`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"NumericLessThan":{"k":"ten"}}}]}`, `bad value "ten"`},
		{`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"NullIfExists":{"k":"true"}}}]}`, `unknown condition operator "NullIfExists"`},
		{`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Extra":1}]}`, `unknown statement element "Extra"`},
	} {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s)\n  error %v\n  want it to contain %q", tc.doc, err, tc.want)
		}
	}
	_, err := Parse([]byte("{\n  \"Statement\": [\n    {\"Effect\": \"Allow\",}\n  ]\n}"))
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 3 {
		t.Errorf("syntax error = %#v, want line 3", err)
	}
}

func TestParseMarshalRoundTrip(t *testing.T) {
	for _, name := range []string{"writeup1-policy.json", "writeup2-sourceip-policy.json", "writeup3-default-policy.json", "writeup3-fixed-policy.json"} {
		p := loadPolicy(t, name)
		out, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		q := mustPolicy(t, string(out))
		out2, _ := q.Marshal()
		if string(out) != string(out2) {
			t.Errorf("%s: marshal not stable:\n%s\n---\n%s", name, out, out2)
		}
		if len(q.Statements) != len(p.Statements) {
			t.Errorf("%s: statements %d → %d", name, len(p.Statements), len(q.Statements))
		}
	}
}
