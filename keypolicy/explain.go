package keypolicy

import (
	"fmt"
	"strings"
)

// explain turns a refused request into a finding: which statement, which
// action, why, and the concrete fix.
func explain(key *Key, env *requestEnv, t Target, p Path, principal string, req Request, auth Authorization) Finding {
	keyARN := env.keyARN
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
		return explainDeny(key, env, t, p, principal, req, auth)
	}
	if p == PathASG {
		f.Code = CodeGrantMissing
		if auth.CrossAccount {
			f.Message = fmt.Sprintf("%s has no grant on the key: a role of another account can use it only through a grant, because the Auto Scaling service-linked role's policy has no KMS permission (a key-policy allow alone is not enough)", principal)
		} else {
			f.Message = fmt.Sprintf("%s has neither a grant nor a key-policy statement naming it, and its own policy has no KMS permission", principal)
		}
		caller := AnyPrincipal(keyARN.Partition, t.Account)
		fromTarget := Authorize(key, env.directGrantRequest(caller, principal, t.orgFor(caller)), nil).Decision == Allowed
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
	if nm, ok := nearMiss(key.Policy, req); ok {
		f.Statement = nm.label
		switch {
		case nm.network != "":
			f.Code = CodeSourceIPCondition
			f.Message = fmt.Sprintf("key-policy statement %q would allow %s to %s, but its %s condition cannot be relied on: EC2 calls KMS for the launch from AWS's own addresses, not from the user's network", f.Statement, action, name, nm.network)
			f.Fix = fmt.Sprintf("in statement %q, replace the %s condition with \"StringEquals\": {\"kms:ViaService\": \"ec2.%s.amazonaws.com\"}", f.Statement, nm.network, keyARN.Region)
			return f
		case nm.viaService:
			f.Code = CodeViaServiceMismatch
			f.Message = fmt.Sprintf("key-policy statement %q would allow %s to %s only through another service: the launch arrives with kms:ViaService = ec2.%s.amazonaws.com", f.Statement, action, name, keyARN.Region)
			f.Fix = fmt.Sprintf("add \"ec2.%s.amazonaws.com\" to the kms:ViaService values of statement %q", keyARN.Region, f.Statement)
			return f
		case nm.orgUnknown != "":
			f.Code = CodeKeyPolicyMissing
			f.Message = fmt.Sprintf("key-policy statement %q would allow %s to %s only for principals of an organization (%s), and account %s's organization is not known: without its organization path amigate cannot tell whether the requests carry aws:PrincipalOrgID and aws:PrincipalOrgPaths, or with which values, so the allow is not counted",
				f.Statement, action, name, nm.orgUnknown, t.Account)
			f.Fix = fmt.Sprintf("if account %s is in that organization, give its organization path (the aws:PrincipalOrgPaths value of its principals, o-ORG/r-ROOT/ou-.../; in amigate lint: --org-path %s=PATH) so the statement can be evaluated; otherwise add the account to the key policy (or let amigate patch it)", t.Account, t.Account)
			return f
		case nm.noSetOperator != nil:
			c := nm.noSetOperator
			f.Code = CodeKeyPolicyMissing
			f.Message = fmt.Sprintf("key-policy statement %q would allow %s to %s, but its %s condition on %s has no ForAnyValue: or ForAllValues: qualifier: %s is multivalued, and AWS matches such a condition only with one",
				f.Statement, action, name, c.Operator, c.Key, c.Key)
			f.Fix = fmt.Sprintf("in statement %q, write %q instead of %q for %s", f.Statement, setOperatorFor(c, false), c.Operator, c.Key)
			return f
		}
	}
	if i, undecided, ok := undecidedAllow(key.Policy, auth.KeyPolicy); ok {
		s := &key.Policy.Statements[i]
		why, fix := undecidableAdvice(s, s.Label(i), undecided, env, t, principal, req, false)
		f.Code = CodeKeyPolicyMissing
		f.Statement = s.Label(i)
		f.Message = fmt.Sprintf("key-policy statement %q would allow %s to %s only if %s, which amigate cannot decide: %s; an allow that may not apply is not counted", f.Statement, action, name, what(undecided), why)
		f.Fix = fix
		return f
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

// undecidedAllow returns the first Allow statement that may apply but
// could not be decided, and what could not be.
func undecidedAllow(p *Policy, r Result) (int, Undecided, bool) {
	if p == nil {
		return 0, Undecided{}, false
	}
	for _, u := range r.Undecided {
		if p.Statements[u.Statement].Effect == Allow {
			return u.Statement, u, true
		}
	}
	return 0, Undecided{}, false
}

// what names what a statement's match depends on, for a message.
func what(u Undecided) string {
	switch u.Reason {
	case UndecidedByNotPrincipal:
		return "its NotPrincipal exempts the principal"
	case UndecidedByVariable:
		return "its policy variable ${" + u.Key + "} has a value that lets it match"
	}
	return "its condition on " + u.Key + " holds"
}

// explainDeny explains the key-policy statement whose Deny refused the
// request, or may have: a Deny amigate cannot rule out counts.
func explainDeny(key *Key, env *requestEnv, t Target, p Path, principal string, req Request, auth Authorization) Finding {
	keyARN := env.keyARN
	action := req.Action
	f := Finding{Severity: SeverityError, Actions: []string{action}}
	name := who(principal)
	// A Deny that surely applies explains best; else one that may.
	i := auth.KeyPolicy.Deciding[0]
	for _, d := range auth.KeyPolicy.Deciding {
		if _, open := auth.KeyPolicy.UndecidedFor(d); !open {
			i = d
			break
		}
	}
	undecided, open := auth.KeyPolicy.UndecidedFor(i)
	s := &key.Policy.Statements[i]
	f.Statement = s.Label(i)
	if keys := networkConditionKeys(s); len(keys) > 0 {
		f.Code = CodeSourceIPCondition
		f.Message = fmt.Sprintf("key-policy statement %q denies %s to %s because of its %s condition, or may: EC2 calls KMS for the launch from AWS's own addresses, not from the user's network, and amigate cannot know them",
			f.Statement, action, name, strings.Join(keys, ", "))
		if p == PathASG {
			f.Fix = fmt.Sprintf("in statement %q, exempt the Auto Scaling role by its ARN: add \"ArnNotLike\": {\"aws:PrincipalArn\": \"arn:%s:iam::*:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling*\"} to its Condition (aws:ViaAWSService does not exempt it: AWS sets it false for a service-linked role)", f.Statement, keyARN.Partition)
		} else {
			f.Fix = fmt.Sprintf("in statement %q, exempt calls made through AWS services: add \"Bool\": {\"aws:ViaAWSService\": \"false\"} to its Condition, or replace the network condition with \"StringEquals\": {\"kms:ViaService\": \"ec2.%s.amazonaws.com\"}", f.Statement, keyARN.Region)
		}
		return f
	}
	f.Code = CodeKeyPolicyDenies
	if open {
		why, fix := undecidableAdvice(s, f.Statement, undecided, env, t, principal, req, true)
		f.Message = fmt.Sprintf("key-policy statement %q may deny %s to %s: it applies if %s, which amigate cannot decide: %s; a Deny that may apply is counted, since an explicit deny wins over every allow and grant", f.Statement, action, name, what(undecided), why)
		f.Fix = fix
		return f
	}
	f.Message = fmt.Sprintf("key-policy statement %q explicitly denies %s to %s; an explicit deny wins over every allow and grant", f.Statement, action, name)
	f.Fix = fmt.Sprintf("the key owner must narrow statement %q so it does not match %s (amigate never edits statements it does not own)", f.Statement, name)
	if s.NotPrincipal != nil {
		c := parseCaller(req.Principal)
		switch {
		case s.NotPrincipal.namesAccount(t.Account) && c.kind != callerRoot:
			f.Message += fmt.Sprintf("; its NotPrincipal names account %s's root, which exempts only the root user, not the account's roles and users", t.Account)
			f.Fix = notPrincipalFix(f.Statement, fmt.Sprintf("\"StringNotEquals\": {\"aws:PrincipalAccount\": \"%s\"}", t.Account))
		case c.kind == callerSession && s.NotPrincipal.namesRole(c.account, c.roleName):
			f.Message += fmt.Sprintf("; its NotPrincipal names the role %s, which exempts none of the role's sessions, and the role acts only through them (here %s)", c.roleName, req.Principal)
			f.Fix = notPrincipalFix(f.Statement, fmt.Sprintf("\"ArnNotEquals\": {\"aws:PrincipalArn\": \"%s\"}", roleARNOf(req, principal)))
		}
	}
	return f
}

// notPrincipalFix is the fix of a Deny whose NotPrincipal does not exempt
// the launching principal: the condition AWS recommends instead.
func notPrincipalFix(statement, condition string) string {
	return fmt.Sprintf("the key owner must exempt the launching principals in statement %q: instead of NotPrincipal, use \"Principal\": \"*\" with a condition such as %s, as AWS recommends (amigate never edits statements it does not own)", statement, condition)
}

// roleARNOf is the role behind the request's session: its aws:PrincipalArn
// when known, else the principal the verdict names.
func roleARNOf(req Request, principal string) string {
	if arns := req.context()["aws:principalarn"]; len(arns) == 1 {
		return arns[0]
	}
	return principal
}

// undecidableAdvice says why the statement's match depends on what
// amigate cannot know (undecided, as Result.Undecided names it) and what
// would let it decide, for a Deny (deny) or an Allow.
func undecidableAdvice(s *Statement, label string, undecided Undecided, env *requestEnv, t Target, principal string, req Request, deny bool) (why, fix string) {
	narrow := "allow the account without that condition (or let amigate patch the key policy: its statements name the account)"
	if deny {
		narrow = "narrow the Deny so that it cannot match the launches (amigate never edits statements it does not own)"
	}
	written := undecided.Key
	key := strings.ToLower(written)
	switch undecided.Reason {
	case UndecidedByNotPrincipal:
		return "AWS may check the principal's account and, for a role session, its role against NotPrincipal before the principal itself, and it denies any principal that has a permissions boundary whatever NotPrincipal lists (IAM User Guide, \"AWS JSON policy elements: NotPrincipal\")",
			notPrincipalFix(label, fmt.Sprintf("\"ArnNotEquals\": {\"aws:PrincipalArn\": \"%s\"}", roleARNOf(req, principal)))
	case UndecidedByBoolCase:
		return fmt.Sprintf("its %s value is not written in lower case, and AWS does not say whether Bool and Null ignore case", conditionOn(s, key)),
			fmt.Sprintf("write \"true\" or \"false\" in lower case in statement %q", label)
	case UndecidedByNoSetOperator:
		c := noSetOperatorCondition(s, written)
		qualified := setOperatorFor(c, deny)
		why = fmt.Sprintf("%s is multivalued, and its %s condition on it has no ForAnyValue: or ForAllValues: qualifier: AWS requires one for a multivalued key and does not document what it makes of a condition without (IAM User Guide, \"Single-valued vs. multivalued context keys\")", c.Key, c.Operator)
		if deny {
			return why, fmt.Sprintf("the key owner must write %q instead of %q for %s in statement %q (amigate never edits statements it does not own)", qualified, c.Operator, c.Key, label)
		}
		return why, fmt.Sprintf("in statement %q, write %q instead of %q for %s", label, qualified, c.Operator, c.Key)
	}
	// The key, or the policy variable's, is undecidable.
	_, anyPrincipal := anyPrincipalAccount(principal)
	switch {
	case anyPrincipal && (key == "aws:principalarn" || key == "aws:userid" || key == "aws:username" || key == "aws:principaltype"):
		why = fmt.Sprintf("the launching principal is not named, so amigate checks any role or user of account %s, whose %s it cannot know", t.Account, written)
		if c := exactARNCondition(s, key); c != "" {
			why += fmt.Sprintf(" (and %s compares the text exactly: no principal's ARN is a pattern)", c)
		}
		fix = fmt.Sprintf("name the launching role (amigate lint --principal %s=ARN; keypolicy.Target.Principal) so that amigate evaluates it, or ", t.Account)
		if deny {
			return why, fix + narrow
		}
		return why, fix + fmt.Sprintf("write the condition so that it holds for every role and user that launches: for aws:PrincipalArn, ArnLike with patterns that cover them, such as \"arn:%s:iam::%s:role/*\" and \"arn:%s:iam::%s:user/*\" (StringEquals compares the text exactly); or %s",
			env.keyARN.Partition, t.Account, env.keyARN.Partition, t.Account, narrow)
	case key == "aws:principalarn":
		return "the role behind a session ARN is not known with its path", "name the launching role by its ARN instead of a session's, or " + narrow
	case strings.HasPrefix(key, "aws:principaltag/"):
		return "amigate does not read the tags of principals", "make sure of the tags by hand, and " + narrow
	case strings.HasPrefix(key, "aws:resourcetag/"):
		return "amigate does not read the key's tags", narrow
	case key == "kms:resourcealiases":
		return "amigate does not read the key's aliases, and its own lock aliases (alias/amigate/lock/...) come and go while it patches the key policy", narrow
	case key == "aws:resourceorgid" || key == "aws:resourceorgpaths":
		return "amigate does not know the key owner's organization", narrow
	case orgKeys[key]:
		return fmt.Sprintf("account %s's organization is not known, so whether its requests carry %s, and with which value, is not known", t.Account, written),
			fmt.Sprintf("give account %s's organization path (the aws:PrincipalOrgPaths value of its principals, o-ORG/r-ROOT/ou-.../; in amigate lint: --org-path %s=PATH), or %s", t.Account, t.Account, narrow)
	case key == "aws:currenttime" || key == "aws:epochtime":
		return "no time of launch was given", "give the time of the launch (keypolicy.CheckOptions.Now; the gate and lint use the current time)"
	case key == "aws:viaawsservice":
		why = "AWS sets aws:ViaAWSService false when a service uses a service-linked role and true when it forwards a principal's credentials, and EC2's calls for an Auto Scaling launch are made with the service-linked role's session"
		if deny {
			return why, fmt.Sprintf("exempt the Auto Scaling role by its ARN instead: \"ArnNotLike\": {\"aws:PrincipalArn\": \"arn:%s:iam::*:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling*\"}", env.keyARN.Partition)
		}
		return why, "let the role use the key through its grant (amigate creates it) instead"
	case key == "aws:calledvia" || key == "aws:calledviafirst" || key == "aws:calledvialast":
		return "AWS documents aws:CalledVia for a list of services that EC2 is not on, and for every forward access session", narrow
	case key == "kms:keyorigin":
		return "the key's origin is not known", "give the key's metadata (amigate lint --key-metadata with the output of aws kms describe-key), or " + narrow
	case key == "kms:multiregionkeytype":
		return "amigate does not know whether this multi-Region key is the primary or a replica", narrow
	case key == "kms:reencryptonsamekey":
		return "whether EC2 re-encrypts under the same key depends on the volume's key", narrow
	case networkKeys[key]:
		return "EC2 calls KMS for the launch from AWS's own addresses, and a direct call comes from wherever the principal runs", narrow
	case strings.HasPrefix(key, "kms:grant") || strings.HasPrefix(key, "kms:retiring") || strings.HasPrefix(key, "kms:encryptioncontext"):
		return "EC2 chooses the grantee, operations and constraints of the grant it creates for the volume",
			"limit EC2's grants with \"Bool\": {\"kms:GrantIsForAWSResource\": \"true\"} alone, as AWS's default key policy does, or " + narrow
	}
	return "it depends on how the launching principal signed in, which amigate cannot know", narrow
}

// noSetOperatorCondition returns the statement's condition on the
// multivalued key (as written) that has no set operator.
func noSetOperatorCondition(s *Statement, key string) *Condition {
	for i := range s.Conditions {
		if c := &s.Conditions[i]; c.Key == key && c.multiValued && c.set == setNone {
			return c
		}
	}
	return &Condition{Operator: "?", Key: key} // not reached: the condition left the statement undecided
}

// setOperatorFor is the condition's operator with the set operator that
// states what it most likely means: ForAllValues: for a negated operator
// in a Deny (it also holds when the key is missing, as such a Deny means),
// ForAnyValue: otherwise (an Allow with ForAllValues: would also hold
// then).
func setOperatorFor(c *Condition, deny bool) string {
	if deny && c.op.negated {
		return "ForAllValues:" + c.Operator
	}
	return "ForAnyValue:" + c.Operator
}

// conditionOn names the statement's condition on key, as written.
func conditionOn(s *Statement, key string) string {
	for _, c := range s.Conditions {
		if c.key == key {
			return c.Operator + " " + c.Key
		}
	}
	return key
}

// exactARNCondition returns the operator of a condition on key that
// compares exactly (StringEquals and its kin) a value with a wildcard in
// it, or "".
func exactARNCondition(s *Statement, key string) string {
	for _, c := range s.Conditions {
		if c.key != key || (c.op.kind != opStringEquals && c.op.kind != opStringEqualsIgnoreCase) {
			continue
		}
		for _, v := range c.Values.Items {
			if strings.ContainsAny(v, "*?") {
				return fmt.Sprintf("%s %q", c.Operator, v)
			}
		}
	}
	return ""
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
// the key, and fails, or cannot be relied on, only because of conditions a
// launch cannot satisfy.
func nearMiss(p *Policy, req Request) (nearMissInfo, bool) {
	if p == nil {
		return nearMissInfo{}, false
	}
	c := parseCaller(req.Principal)
	ctx := req.context()
	action := strings.ToLower(req.Action)
	sc := p.scope(keyPolicy, req.Undecidable)
	for i := range p.Statements {
		s := &p.Statements[i]
		if s.Effect != Allow {
			continue
		}
		failed, applies := s.failedConditions(&c, action, req.Resource, ctx, &sc)
		if !applies || len(failed) == 0 {
			continue
		}
		info := nearMissInfo{label: s.Label(i)}
		for _, fc := range failed {
			_, present := ctx[fc.key]
			switch {
			case networkKeys[fc.key]:
				info.network = originalKey(s, fc.key)
			case fc.key == "kms:viaservice" && fc.result == condFalse:
				info.viaService = true
			case orgKeys[fc.key] && !present:
				info.orgUnknown = fc.Key
			case fc.why == UndecidedByNoSetOperator:
				info.noSetOperator = fc.Condition
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
func literalVariable(p *Policy, req Request) (Finding, bool) {
	if p == nil || p.Version == VersionCurrent {
		return Finding{}, false
	}
	c := parseCaller(req.Principal)
	ctx := req.context()
	sc := p.scope(keyPolicy, req.Undecidable)
	action := strings.ToLower(req.Action)
	for i := range p.Statements {
		s := &p.Statements[i]
		if s.Effect != Allow || !s.matchAction(action) {
			continue
		}
		if pm, _ := s.matchPrincipal(&c, ctx, &sc); pm == noMatch {
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

func originalKey(s *Statement, lower string) string {
	for _, c := range s.Conditions {
		if c.key == lower {
			return c.Key
		}
	}
	return lower
}
