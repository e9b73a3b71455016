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
	Context map[string][]string
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
	// matching Deny statements, else the matching Allow statements.
	Deciding []int
	// Direct is true when an Allow statement names the caller itself (or
	// "*"), not only its account: within the key's account, an allow for
	// the account delegates to IAM instead.
	Direct bool
	// Unknown lists policy variables the request did not supply; statements
	// using them were not matched.
	Unknown []string
}

// Evaluate decides the request against this policy as a key policy (a
// resource-based policy): a matching Deny wins, else a matching Allow
// allows, else the request is implicitly denied.
func (p *Policy) Evaluate(req Request) Result {
	return p.evaluate(req.Principal, strings.ToLower(req.Action), req.Resource, lowerKeys(req.Context), keyPolicy)
}

// EvaluateIdentity decides the request against this policy as the caller's
// identity-based policy, whose statements name no principal: each applies
// to the identity the policy is attached to.
func (p *Policy) EvaluateIdentity(req Request) Result {
	return p.evaluate(req.Principal, strings.ToLower(req.Action), req.Resource, lowerKeys(req.Context), identityPolicy)
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
}

func (p *Policy) scope(kind policyKind) scope {
	return scope{kind: kind, variables: p.Version == VersionCurrent}
}

func (p *Policy) evaluate(principal, action, resource string, ctx map[string][]string, kind policyKind) Result {
	var r Result
	if p == nil {
		return r
	}
	c := parseCaller(principal)
	sc := p.scope(kind)
	var allows, denies []int
	for i := range p.Statements {
		s := &p.Statements[i]
		m, unknown := s.match(&c, action, resource, ctx, sc)
		if unknown != "" {
			r.Unknown = appendUnique(r.Unknown, unknown)
		}
		if m == noMatch {
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
// does not), and the first policy variable it could not resolve.
func (s *Statement) match(c *caller, action, resource string, ctx map[string][]string, sc scope) (principalMatch, string) {
	pm := s.matchPrincipal(c, sc.kind)
	if pm == noMatch || !s.matchAction(action) {
		return noMatch, ""
	}
	ok, unknown := s.matchResource(resource, ctx, sc.variables)
	if !ok {
		return noMatch, unknown
	}
	for i := range s.Conditions {
		switch res, unknown := s.Conditions[i].eval(ctx, sc.variables); res {
		case condFalse:
			return noMatch, ""
		case condUnknown:
			return noMatch, unknown
		}
	}
	return pm, ""
}

// matchPrincipal evaluates Principal or NotPrincipal. A statement with
// neither applies to its principal in an identity policy, and to no one in
// a key policy, where KMS would have refused it.
func (s *Statement) matchPrincipal(c *caller, kind policyKind) principalMatch {
	switch {
	case s.Principal != nil:
		return s.Principal.match(c, false)
	case s.NotPrincipal != nil:
		if s.NotPrincipal.match(c, true) != noMatch {
			return noMatch
		}
		return matchDirect
	case kind == identityPolicy:
		return matchDirect
	}
	return noMatch
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

func (s *Statement) matchResource(resource string, ctx map[string][]string, variables bool) (bool, string) {
	found := false
	for _, r := range s.Resource.Items {
		if variables && hasVariable(r) {
			sub, unknown := substitute(r, ctx, true)
			if unknown != "" {
				return false, unknown
			}
			r = sub
		}
		if wildcardMatch(r, resource) {
			found = true
			break
		}
	}
	return found != s.NotResource, ""
}

// failedConditions lists the conditions that keep a statement, which
// otherwise applies to the request, from matching. It explains near misses.
func (s *Statement) failedConditions(c *caller, action, resource string, ctx map[string][]string, sc scope) ([]*Condition, bool) {
	if s.matchPrincipal(c, sc.kind) == noMatch || !s.matchAction(action) {
		return nil, false
	}
	if ok, _ := s.matchResource(resource, ctx, sc.variables); !ok {
		return nil, false
	}
	var failed []*Condition
	for i := range s.Conditions {
		if res, _ := s.Conditions[i].eval(ctx, sc.variables); res != condTrue {
			failed = append(failed, &s.Conditions[i])
		}
	}
	return failed, true
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
