package keypolicy

import (
	"fmt"
	"strings"
)

// explain turns a refused request into a finding: which statement, which
// action, why, and the concrete fix.
func explain(key *Key, keyARN ARN, t Target, p Path, principal string, req Request, auth Authorization) Finding {
	action := req.Action
	f := Finding{Severity: SeverityError, Actions: []string{action}}
	name := who(principal)
	if auth.Decision == ExplicitDeny {
		if auth.Identity != nil && auth.Identity.Decision == ExplicitDeny {
			f.Code = CodeIdentityPolicy
			f.Statement = "identity:" + t.Identity.Statements[auth.Identity.Deciding[0]].Label(auth.Identity.Deciding[0])
			f.Message = fmt.Sprintf("%s's identity policy denies %s on the key", name, action)
			f.Fix = "remove or narrow the Deny in the principal's identity policy"
			return f
		}
		return explainDeny(key, keyARN, t, principal, req, auth)
	}
	if p == PathASG {
		f.Code = CodeGrantMissing
		if auth.CrossAccount {
			f.Message = fmt.Sprintf("%s has no grant on the key: a role of another account can use it only through a grant, because the Auto Scaling service-linked role's policy has no KMS permission (a key-policy allow alone is not enough)", principal)
		} else {
			f.Message = fmt.Sprintf("%s has neither a grant nor a key-policy statement naming it, and its own policy has no KMS permission", principal)
		}
		caller := AnyPrincipal(keyARN.Partition, t.Account)
		fromTarget := Authorize(key, directGrantRequest(keyARN, caller, principal, t.orgFor(caller)), nil).Decision == Allowed
		f.Fix = GrantCommand(keyARN, principal, t.Account, fromTarget)
		return f
	}
	if auth.KeyPolicy.Decision == Allowed && !auth.IdentityAllows {
		f.Code = CodeIdentityPolicy
		f.Statement = key.Policy.Statements[auth.KeyPolicy.Deciding[0]].Label(auth.KeyPolicy.Deciding[0])
		f.Message = fmt.Sprintf("the key policy allows %s, but %s's identity policy does not: KMS needs both for this principal", action, name)
		f.Fix = fmt.Sprintf(`add to the principal's identity policy: {"Effect": "Allow", "Action": %q, "Resource": %q}`, action, key.ARN)
		return f
	}
	if nm, ok := nearMiss(key.Policy, principal, req); ok {
		f.Statement = nm.label
		switch {
		case nm.network != "":
			f.Code = CodeSourceIPCondition
			f.Message = fmt.Sprintf("key-policy statement %q would allow %s to %s, but its %s condition cannot match: EC2 calls KMS for the launch from AWS's own addresses", f.Statement, action, name, nm.network)
			f.Fix = fmt.Sprintf("in statement %q, replace the %s condition with \"StringEquals\": {\"kms:ViaService\": \"ec2.%s.amazonaws.com\"}", f.Statement, nm.network, keyARN.Region)
			return f
		case nm.viaService:
			f.Code = CodeViaServiceMismatch
			f.Message = fmt.Sprintf("key-policy statement %q would allow %s to %s only through another service: the launch arrives with kms:ViaService = ec2.%s.amazonaws.com", f.Statement, action, name, keyARN.Region)
			f.Fix = fmt.Sprintf("add \"ec2.%s.amazonaws.com\" to the kms:ViaService values of statement %q", keyARN.Region, f.Statement)
			return f
		case nm.orgUnknown != "":
			f.Code = CodeKeyPolicyMissing
			f.Message = fmt.Sprintf("key-policy statement %q would allow %s to %s only for principals of an organization (%s), and account %s's organization is not known: without its organization path the request carries neither aws:PrincipalOrgID nor aws:PrincipalOrgPaths, and a condition on a missing key is false",
				f.Statement, action, name, nm.orgUnknown, t.Account)
			f.Fix = fmt.Sprintf("if account %s is in that organization, give its organization path (the aws:PrincipalOrgPaths value of its principals, o-ORG/r-ROOT/ou-.../; in amigate lint: --org-path %s=PATH) so the statement can be evaluated; otherwise add the account to the key policy (or let amigate patch it)", t.Account, t.Account)
			return f
		case nm.noSetOperator != nil:
			c := nm.noSetOperator
			f.Code = CodeKeyPolicyMissing
			f.Message = fmt.Sprintf("key-policy statement %q would allow %s to %s, but its %s condition on %s has no ForAnyValue: or ForAllValues: qualifier: %s is multivalued, and AWS matches such a condition only with one",
				f.Statement, action, name, c.Operator, c.Key, c.Key)
			f.Fix = fmt.Sprintf("in statement %q, write \"ForAnyValue:%s\" instead of \"%s\" for %s", f.Statement, c.Operator, c.Operator, c.Key)
			return f
		}
	}
	f.Code = CodeKeyPolicyMissing
	f.Statement = ""
	partition := keyARN.Partition
	var st Statement
	if isCreateGrant(action) {
		f.Message = fmt.Sprintf("no key-policy statement allows %s to call %s for EC2 (with kms:GrantIsForAWSResource = true)", name, action)
		st = ec2GrantStatement([]string{RootARN(partition, t.Account)})
	} else {
		f.Message = fmt.Sprintf("no key-policy statement allows %s to call %s through EC2 (kms:ViaService = ec2.%s.amazonaws.com)", name, action, keyARN.Region)
		st = useKeyStatement([]string{RootARN(partition, t.Account)}, []string{"ec2." + keyARN.Region + ".amazonaws.com"})
	}
	b, _ := st.MarshalJSON()
	f.Fix = addStatementsFix + string(b)
	return f
}

// explainDeny explains the key-policy statement whose Deny refused the
// request.
func explainDeny(key *Key, keyARN ARN, t Target, principal string, req Request, auth Authorization) Finding {
	action := req.Action
	f := Finding{Severity: SeverityError, Actions: []string{action}}
	name := who(principal)
	i := auth.KeyPolicy.Deciding[0]
	s := &key.Policy.Statements[i]
	f.Statement = s.Label(i)
	if keys := networkConditionKeys(s); len(keys) > 0 {
		f.Code = CodeSourceIPCondition
		f.Message = fmt.Sprintf("key-policy statement %q denies %s to %s because of its %s condition: EC2 calls KMS for the launch from AWS's own addresses, not from the user's network",
			f.Statement, action, name, strings.Join(keys, ", "))
		f.Fix = fmt.Sprintf("in statement %q, exempt calls made through AWS services: add \"Bool\": {\"aws:ViaAWSService\": \"false\"} to its Condition, or replace the network condition with \"StringEquals\": {\"kms:ViaService\": \"ec2.%s.amazonaws.com\"}", f.Statement, keyARN.Region)
		return f
	}
	f.Code = CodeKeyPolicyDenies
	f.Message = fmt.Sprintf("key-policy statement %q explicitly denies %s to %s; an explicit deny wins over every allow and grant", f.Statement, action, name)
	f.Fix = fmt.Sprintf("the key owner must narrow statement %q so it does not match %s (amigate never edits statements it does not own)", f.Statement, name)
	if k := missingOrgKey(s, req); k != "" {
		f.Message += fmt.Sprintf("; its condition on %s holds because account %s's organization is not known, so the request carries no organization keys, and a negated or ...IfExists condition on a missing key is true", k, t.Account)
		f.Fix = fmt.Sprintf("if account %s is in the organization the statement names, give its organization path (the aws:PrincipalOrgPaths value of its principals, o-ORG/r-ROOT/ou-.../; in amigate lint: --org-path %s=PATH) so the statement can be evaluated; otherwise %s", t.Account, t.Account, f.Fix)
	}
	if s.NotPrincipal != nil && s.NotPrincipal.namesAccount(t.Account) {
		f.Message += fmt.Sprintf("; its NotPrincipal names account %s's root, which exempts only the root user, not the account's roles and users", t.Account)
		f.Fix = fmt.Sprintf("the key owner must exempt the launching roles in statement %q: instead of NotPrincipal, use \"Principal\": \"*\" with a condition such as \"StringNotEquals\": {\"aws:PrincipalAccount\": \"%s\"}, as AWS recommends (amigate never edits statements it does not own)", f.Statement, t.Account)
	}
	return f
}

// who names a principal in a message; AnyPrincipal reads as what it
// stands for.
func who(principal string) string {
	if account, ok := anyPrincipalAccount(principal); ok {
		return "the roles and users of account " + account
	}
	return principal
}

// addStatementsFix starts the fix of KEY_POLICY_MISSING; the statements
// follow it, one per purpose the path lacks.
const addStatementsFix = "add to the key policy (or let amigate patch it): "

func isCreateGrant(action string) bool { return strings.EqualFold(action, "kms:CreateGrant") }

// GrantCommand is the AWS CLI command that creates the grant the Auto
// Scaling service-linked role needs. AWS documents running it in the target
// account, by key ARN; when the key policy does not let the target call
// CreateGrant directly, it says so and how to run it from the key owner or
// which statement lets the target do it.
func GrantCommand(keyARN ARN, role, targetAccount string, fromTarget bool) string {
	cmd := fmt.Sprintf("aws kms create-grant --region %s --key-id %s --grantee-principal %s --operations %s --name %s",
		keyARN.Region, keyARN.String(), role, strings.Join(AutoScalingGrantOperations, " "), GrantName(role))
	if fromTarget {
		return cmd + "   # run in account " + targetAccount + " (or in the key owner's account " + keyARN.Account + ")"
	}
	st := autoScalingGrantStatement([]string{RootARN(keyARN.Partition, targetAccount)}, []string{autoScalingRolePattern(keyARN.Partition, targetAccount)})
	b, _ := st.MarshalJSON()
	return cmd + "   # run in the key owner's account " + keyARN.Account + ": the key policy does not let account " + targetAccount +
		" call CreateGrant directly for this role (a kms:GrantIsForAWSResource or kms:ViaService condition, or no statement at all); to create it from " +
		targetAccount + " instead, first add to the key policy: " + string(b)
}

// GrantName is the deterministic grant name amigate uses for a role, so
// that CreateGrant is idempotent.
func GrantName(role string) string {
	a, err := ParseARN(role)
	name := role
	if err == nil {
		name = a.Account + "-" + a.Resource[strings.LastIndexByte(a.Resource, '/')+1:]
	}
	return "amigate-asg-" + name
}

func networkConditionKeys(s *Statement) []string {
	var keys []string
	for _, c := range s.Conditions {
		if networkKeys[c.key] {
			keys = appendUnique(keys, c.Key)
		}
	}
	return keys
}

type nearMissInfo struct {
	label      string
	network    string
	viaService bool
	// orgUnknown is an organization key (as written) that a condition
	// needs and the request lacks: the target's organization is not known.
	orgUnknown string
	// noSetOperator is a condition on a multivalued key without
	// ForAnyValue: or ForAllValues:, which never matches.
	noSetOperator *Condition
}

// nearMiss finds an Allow statement that names the caller, the action and
// the key, and fails only on conditions that a launch cannot satisfy.
func nearMiss(p *Policy, principal string, req Request) (nearMissInfo, bool) {
	if p == nil {
		return nearMissInfo{}, false
	}
	c := parseCaller(principal)
	ctx := lowerKeys(req.Context)
	action := strings.ToLower(req.Action)
	sc := p.scope(keyPolicy)
	for i := range p.Statements {
		s := &p.Statements[i]
		if s.Effect != Allow {
			continue
		}
		failed, applies := s.failedConditions(&c, action, req.Resource, ctx, sc)
		if !applies || len(failed) == 0 {
			continue
		}
		info := nearMissInfo{label: s.Label(i)}
		for _, c := range failed {
			_, present := ctx[c.key]
			switch {
			case networkKeys[c.key]:
				info.network = originalKey(s, c.key)
			case c.key == "kms:viaservice":
				info.viaService = true
			case orgKeys[c.key] && !present:
				info.orgUnknown = c.Key
			case multiValuedKeys[c.key] && present && c.set == setNone && c.op.kind != opNull:
				info.noSetOperator = c
			}
		}
		if info.network != "" || info.viaService || info.orgUnknown != "" || info.noSetOperator != nil {
			return info, true
		}
	}
	return nearMissInfo{}, false
}

// literalVariable explains an Allow statement that names the caller and
// the action but writes a policy variable in a policy whose Version reads
// it as literal text (IAM User Guide, "IAM JSON policy elements: Version"):
// the statement looks right and does not apply.
func literalVariable(p *Policy, principal string, req Request) (Finding, bool) {
	if p == nil || p.scope(keyPolicy).variables {
		return Finding{}, false
	}
	c := parseCaller(principal)
	action := strings.ToLower(req.Action)
	for i := range p.Statements {
		s := &p.Statements[i]
		if s.Effect != Allow || s.matchPrincipal(&c, keyPolicy) == noMatch || !s.matchAction(action) {
			continue
		}
		v := s.firstVariable()
		if v == "" {
			continue
		}
		label := s.Label(i)
		return Finding{Code: CodeLiteralVariable, Severity: SeverityWarning, Actions: []string{req.Action}, Statement: label,
			Message: fmt.Sprintf("statement %q writes %s, but the key policy's Version is %s: AWS substitutes policy variables only in a %q policy, so it compares the text %s as it is written and the statement does not allow %s",
				label, v, versionName(p.Version), VersionCurrent, v, req.Action),
			Fix: fmt.Sprintf("write the value instead of %s, or set \"Version\": %q in the key policy (that changes what every statement with ${...} means: check them)", v, VersionCurrent)}, true
	}
	return Finding{}, false
}

func versionName(v string) string {
	if v == "" {
		return "missing (which means " + VersionOld + ")"
	}
	return fmt.Sprintf("%q", v)
}

// firstVariable returns the first ${...} the statement writes in Resource
// or a condition value, or "".
func (s *Statement) firstVariable() string {
	for _, r := range s.Resource.Items {
		if v := variableIn(r); v != "" {
			return v
		}
	}
	for _, c := range s.Conditions {
		for _, val := range c.Values.Items {
			if v := variableIn(val); v != "" {
				return v
			}
		}
	}
	return ""
}

func variableIn(s string) string {
	i := strings.Index(s, "${")
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(s[i:], '}')
	if j < 0 {
		return ""
	}
	return s[i : i+j+1]
}

// missingOrgKey returns an organization key (as written) that one of the
// statement's conditions tests and the request lacks, or "".
func missingOrgKey(s *Statement, req Request) string {
	ctx := lowerKeys(req.Context)
	for _, c := range s.Conditions {
		if _, present := ctx[c.key]; orgKeys[c.key] && !present {
			return c.Key
		}
	}
	return ""
}

func originalKey(s *Statement, lower string) string {
	for _, c := range s.Conditions {
		if c.key == lower {
			return c.Key
		}
	}
	return lower
}
