package keypolicy

import (
	"strings"
)

// Request is one KMS API call to authorise.
type Request struct {
	// Principal is the caller: an account id or root ARN, a role or user ARN,
	// an assumed-role session ARN, or a service principal.
	Principal string
	// Action such as "kms:Decrypt"; case-insensitive.
	Action string
	// Resource is the key ARN.
	Resource string
	// Context holds the request's condition keys (any case) and values.
	// A key it lacks is absent from the request, unless Undecidable names
	// it.
	Context map[string][]string
	// Undecidable names what AWS sends with the request that the caller
	// cannot know (nil: nothing; Context is the whole request context). A
	// statement whose match depends on it may or may not apply: a Deny is
	// counted as applying, an Allow is not (Result.Undecided).
	Undecidable Undecidable

	// lowerCase: Context's keys are lower-case already (the requests a
	// verdict builds), so evaluating needs no pass over them.
	lowerCase bool
}

// context is the request context with lower-cased keys.
func (r *Request) context() map[string][]string {
	if r.lowerCase {
		return r.Context
	}
	return lowerKeys(r.Context)
}

// Undecidable tells which condition keys of a request carry values AWS
// sends, or may send, that the evaluator cannot know: the tags of the
// principal, the ARN of "any role of the account", the time when none is
// given. A condition on such a key is decided only when it comes out the
// same for every value the key may take.
//
// A request with an Undecidable also leaves open how AWS checks a Deny's
// NotPrincipal: AWS may check the caller's account and, for a role
// session, its role against NotPrincipal before the caller itself, and it
// denies a principal that has a permissions boundary whatever NotPrincipal
// lists (IAM User Guide, "AWS JSON policy elements: NotPrincipal"). The
// exemption is then certain only when NotPrincipal lists the caller, its
// account and, for a session, its role, and the caller cannot have a
// permissions boundary (the root user, a service-linked role); otherwise
// the Deny may apply.
type Undecidable interface {
	// Values reports whether key (lower-cased) is undecidable and what is
	// known of it: nil when nothing is (the key may also be absent), else
	// the values it may take, in each of which '*' stands for any text
	// ("arn:aws:iam::111122223333:role/*": some role of the account); the
	// key is then present.
	Values(key string) (values []string, undecidable bool)
}

// Decision is the outcome of an evaluation.
type Decision int

// The three outcomes of AWS's policy evaluation.
const (
	ImplicitDeny Decision = iota
	Allowed
	ExplicitDeny
)

func (d Decision) String() string {
	switch d {
	case Allowed:
		return "Allow"
	case ExplicitDeny:
		return "ExplicitDeny"
	default:
		return "ImplicitDeny"
	}
}

// Result is the outcome of evaluating one policy.
type Result struct {
	Decision Decision
	// Deciding holds the indexes of the statements that decided: the
	// matching Deny statements (those that may apply among them), else the
	// matching Allow statements.
	Deciding []int
	// Direct is true when an Allow statement names the caller itself (or
	// "*"), not only its account: within the key's account, an allow for
	// the account delegates to IAM instead.
	Direct bool
	// Unknown lists the policy variables the request does not carry. AWS
	// reads each as no value: it matches nothing, so a condition with a
	// positive operator fails on it and a negated one holds, and a
	// Resource or NotResource entry with it names no resource (IAM User
	// Guide, "IAM policy elements: Variables and tags", policy variables
	// with no value).
	Unknown []string
	// Undecided lists the statements that apply or not depending on what
	// Request.Undecidable names. An undecided Deny is counted as applying
	// (it is in Deciding when the decision is ExplicitDeny); an undecided
	// Allow is not counted.
	Undecided []Undecided
}

// Undecided is a statement whose match could not be decided, and why.
type Undecided struct {
	// Statement is the statement's index.
	Statement int
	// Reason is what kept the match from being decided.
	Reason UndecidedReason
	// Key is what Reason names: a condition key as the statement writes
	// it (UndecidedByKey, UndecidedByBoolCase, UndecidedByNoSetOperator),
	// the key of a policy variable, lower-cased (UndecidedByVariable), or
	// "" (UndecidedByNotPrincipal).
	Key string
}

// UndecidedReason is why a statement's match could not be decided.
type UndecidedReason int

// The reasons a match may not be decided.
const (
	// UndecidedByKey: a condition's key is one the request's Undecidable
	// names.
	UndecidedByKey UndecidedReason = iota + 1
	// UndecidedByVariable: a policy variable in Resource or in a
	// condition's values has a key the request's Undecidable names.
	UndecidedByVariable
	// UndecidedByBoolCase: a Bool or Null value is not written in lower
	// case (see lowerBool).
	UndecidedByBoolCase
	// UndecidedByNoSetOperator: a condition on a multivalued key has
	// neither ForAnyValue: nor ForAllValues: (see multiValuedKeys).
	UndecidedByNoSetOperator
	// UndecidedByNotPrincipal: a Deny's NotPrincipal lists the caller, but
	// that may not exempt it (see Undecidable).
	UndecidedByNotPrincipal
)

// UndecidedFor returns what kept statement i from being decided, if
// anything did.
func (r *Result) UndecidedFor(i int) (Undecided, bool) {
	for _, u := range r.Undecided {
		if u.Statement == i {
			return u, true
		}
	}
	return Undecided{}, false
}

// Evaluate decides the request against this policy as a key policy (a
// resource-based policy): a matching Deny wins, else a matching Allow
// allows, else the request is implicitly denied.
func (p *Policy) Evaluate(req Request) Result {
	return p.evaluate(req.Principal, strings.ToLower(req.Action), req.Resource, req.context(), req.Undecidable, keyPolicy)
}

// EvaluateIdentity decides the request against this policy as the caller's
// identity-based policy, whose statements name no principal: each applies
// to the identity the policy is attached to.
func (p *Policy) EvaluateIdentity(req Request) Result {
	return p.evaluate(req.Principal, strings.ToLower(req.Action), req.Resource, req.context(), req.Undecidable, identityPolicy)
}

// policyKind says where a policy is attached, which decides what a
// statement without Principal means.
type policyKind int

const (
	// keyPolicy: a resource-based policy. KMS requires Principal or
	// NotPrincipal in every statement (AWS KMS Developer Guide, "Key
	// policies": "Principal (required)"), so one without either applies to
	// no one.
	keyPolicy policyKind = iota
	// identityPolicy: attached to the caller; its statements have no
	// Principal and apply to the caller.
	identityPolicy
)

// scope is what evaluating a statement needs to know about the policy that
// holds it.
type scope struct {
	kind policyKind
	// variables: the policy's language version substitutes policy
	// variables. Only "2012-10-17" does; in "2008-10-17", which a policy
	// without Version also means, ${...} is literal text (IAM User Guide,
	// "IAM JSON policy elements: Version").
	variables bool
	// und is the request's Undecidable, or nil.
	und Undecidable
}

func (p *Policy) scope(kind policyKind, und Undecidable) scope {
	return scope{kind: kind, variables: p.Version == VersionCurrent, und: und}
}

func (p *Policy) evaluate(principal, action, resource string, ctx map[string][]string, und Undecidable, kind policyKind) Result {
	var r Result
	if p == nil {
		return r
	}
	c := parseCaller(principal)
	sc := p.scope(kind, und)
	var allows, denies []int
	for i := range p.Statements {
		s := &p.Statements[i]
		m, undecided := s.match(&c, action, resource, ctx, &sc, &r)
		if m == noMatch {
			continue
		}
		if undecided {
			// It may apply: a Deny counts, an Allow does not.
			r.Undecided[len(r.Undecided)-1].Statement = i
			if s.Effect == Deny {
				denies = append(denies, i)
			}
			continue
		}
		if s.Effect == Deny {
			denies = append(denies, i)
			continue
		}
		allows = append(allows, i)
		if m == matchDirect {
			r.Direct = true
		}
	}
	switch {
	case len(denies) > 0:
		r.Decision, r.Deciding, r.Direct = ExplicitDeny, denies, false
	case len(allows) > 0:
		r.Decision, r.Deciding = Allowed, allows
	}
	return r
}

// match reports how the statement applies to the request (noMatch when it
// does not), and whether that depends on what the request's Undecidable
// names: then what could not be decided is added to r.Undecided, for the
// caller to set its Statement. (Neither the index nor an Undecided passes
// through the call: evaluate makes it for every statement, and one more
// argument no longer fits in registers.) Policy variables the request does
// not carry are added to r.Unknown.
func (s *Statement) match(c *caller, action, resource string, ctx map[string][]string, sc *scope, r *Result) (pm principalMatch, undecided bool) {
	pm, uncertain := s.matchPrincipal(c, ctx, sc)
	if pm == noMatch || !s.matchAction(action) {
		return noMatch, false
	}
	var why Undecided
	if uncertain {
		why.Reason = UndecidedByNotPrincipal
	}
	switch res, variable := s.matchResource(resource, ctx, sc, r); res {
	case condFalse:
		return noMatch, false
	case condUndecided:
		if why.Reason == 0 {
			why.Reason, why.Key = UndecidedByVariable, variable
		}
	}
	for i := range s.Conditions {
		switch res, cw := s.Conditions[i].eval(ctx, sc, r); res {
		case condFalse:
			return noMatch, false
		case condUndecided:
			if why.Reason == 0 {
				why = cw
			}
		}
	}
	if why.Reason == 0 {
		return pm, false
	}
	r.Undecided = append(r.Undecided, why)
	return pm, true
}

// matchPrincipal evaluates Principal or NotPrincipal. A statement with
// neither applies to its principal in an identity policy, and to no one in
// a key policy, where KMS would have refused it. uncertain is true when a
// Deny's NotPrincipal exempts the caller but, the request having an
// Undecidable, not for certain (see Undecidable).
func (s *Statement) matchPrincipal(c *caller, ctx map[string][]string, sc *scope) (pm principalMatch, uncertain bool) {
	switch {
	case s.Principal != nil:
		return s.Principal.match(c, false), false
	case s.NotPrincipal != nil:
		if s.NotPrincipal.match(c, true) == noMatch {
			return matchDirect, false
		}
		if sc.und != nil && !s.NotPrincipal.surelyExempts(c, ctx) {
			return matchDirect, true
		}
		return noMatch, false
	case sc.kind == identityPolicy:
		return matchDirect, false
	}
	return noMatch, false
}

func (s *Statement) matchAction(action string) bool {
	found := false
	for _, a := range s.actions {
		if wildcardMatch(a, action) {
			found = true
			break
		}
	}
	return found != s.NotAction
}

// matchResource matches Resource or NotResource. An entry whose policy
// variable has no value names no resource; one whose variable is
// undecidable may name the key or not (condUndecided, and the variable).
func (s *Statement) matchResource(resource string, ctx map[string][]string, sc *scope, r *Result) (conditionResult, string) {
	found, undecided := false, ""
	for _, pattern := range s.Resource.Items {
		if sc.variables && hasVariable(pattern) {
			sub, missing, und := substitute(pattern, ctx, sc.und, true)
			switch {
			case und != "":
				undecided = und
				continue
			case missing != "":
				r.addUnknown(missing)
				continue
			}
			pattern = sub
		}
		if wildcardMatch(pattern, resource) {
			found = true
			break
		}
	}
	switch {
	case !found && undecided != "":
		return condUndecided, undecided
	case found != s.NotResource:
		return condTrue, ""
	}
	return condFalse, ""
}

func (r *Result) addUnknown(variable string) {
	if r != nil {
		r.Unknown = appendUnique(r.Unknown, variable)
	}
}

// failedConditions lists the conditions that keep a statement, which
// otherwise applies to the request, from matching, each with its result
// (condFalse, or condUndecided when it depends on what the request's
// Undecidable names). It explains near misses.
func (s *Statement) failedConditions(c *caller, action, resource string, ctx map[string][]string, sc *scope) ([]failedCondition, bool) {
	if pm, _ := s.matchPrincipal(c, ctx, sc); pm == noMatch || !s.matchAction(action) {
		return nil, false
	}
	if res, _ := s.matchResource(resource, ctx, sc, nil); res == condFalse {
		return nil, false
	}
	var failed []failedCondition
	for i := range s.Conditions {
		if res, why := s.Conditions[i].eval(ctx, sc, nil); res != condTrue {
			failed = append(failed, failedCondition{&s.Conditions[i], res, why.Reason})
		}
	}
	return failed, true
}

type failedCondition struct {
	*Condition
	result conditionResult
	// why is the reason of an undecided result.
	why UndecidedReason
}

func lowerKeys(ctx map[string][]string) map[string][]string {
	for k := range ctx {
		if hasUpper(k) {
			out := make(map[string][]string, len(ctx))
			for k, v := range ctx {
				out[strings.ToLower(k)] = v
			}
			return out
		}
	}
	return ctx
}

// hasUpper reports whether lower-casing s would change it; it is cheaper
// than comparing s with strings.ToLower(s), and requests are checked once
// per evaluation.
func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
			return true
		}
	}
	return false
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
