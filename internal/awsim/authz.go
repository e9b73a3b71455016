package awsim

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"sync"
)

// This file authorises KMS calls the way the AWS KMS Developer Guide
// describes it. It is a second, deliberately small implementation of policy
// evaluation, independent of package keypolicy, so each checks the other.

type policyDoc struct {
	Statement []policyStatement
}

type policyStatement struct {
	Effect       string
	Principal    json.RawMessage
	NotPrincipal json.RawMessage
	Action       json.RawMessage
	NotAction    json.RawMessage
	Resource     json.RawMessage
	NotResource  json.RawMessage
	Condition    map[string]map[string]json.RawMessage

	// Decoded once by parsePolicy.
	principals, notPrincipals                    []string
	actions, notActions, resources, notResources []string
	conditions                                   []policyCondition
}

type policyCondition struct {
	op, key string // key lower-cased
	values  []string
}

// decode fills the decoded fields from the raw ones.
func (st *policyStatement) decode() {
	st.principals, st.notPrincipals = principalList(st.Principal), principalList(st.NotPrincipal)
	st.actions, st.notActions = stringList(st.Action), stringList(st.NotAction)
	st.resources, st.notResources = stringList(st.Resource), stringList(st.NotResource)
	for op, keys := range st.Condition {
		for k, v := range keys {
			st.conditions = append(st.conditions, policyCondition{op: op, key: strings.ToLower(k), values: stringList(v)})
		}
	}
}

// principalList reads a Principal element: "*" stays "*", {"AWS": ...}
// gives its values.
func principalList(raw json.RawMessage) []string {
	if raw == nil {
		return nil
	}
	if string(raw) == `"*"` {
		return []string{"*"}
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return []string{}
	}
	return append([]string{}, stringList(m["AWS"])...)
}

// request is a KMS call to authorise.
type request struct {
	principal string // root ARN or assumed-role session ARN
	roleARN   string // the role behind a session
	account   string
	action    string // kms:Decrypt
	resource  string // key ARN
	context   map[string][]string
}

// strings reads a string-or-list element (bools and numbers as text).
func stringList(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var one any
	if json.Unmarshal(raw, &one) != nil {
		return nil
	}
	var out []string
	add := func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case bool:
			if x {
				out = append(out, "true")
			} else {
				out = append(out, "false")
			}
		case float64:
			b, _ := json.Marshal(x)
			out = append(out, string(b))
		}
	}
	if list, ok := one.([]any); ok {
		for _, v := range list {
			add(v)
		}
	} else {
		add(one)
	}
	return out
}

// parsed caches parsePolicy's results: a run evaluates the same few
// policies for every call.
var parsed = struct {
	sync.Mutex
	docs map[string]policyDoc
}{docs: map[string]policyDoc{}}

// parsePolicy decodes a policy document; the result must not be modified.
func parsePolicy(doc string) policyDoc {
	parsed.Lock()
	p, ok := parsed.docs[doc]
	parsed.Unlock()
	if ok {
		return p
	}
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		// A single Statement object.
		var single struct{ Statement policyStatement }
		if json.Unmarshal([]byte(doc), &single) == nil {
			p.Statement = []policyStatement{single.Statement}
		}
	}
	for i := range p.Statement {
		p.Statement[i].decode()
	}
	parsed.Lock()
	if len(parsed.docs) >= 1024 {
		clear(parsed.docs)
	}
	parsed.docs[doc] = p
	parsed.Unlock()
	return p
}

// principalMatch: 0 none, 1 the caller's account, 2 the caller itself.
func principalMatch(principals []string, r request, negated bool) int {
	best := 0
	for _, p := range principals {
		switch {
		case p == "*" || p == r.principal || (r.roleARN != "" && roleName(p) != "" && roleName(p) == roleName(r.roleARN) && accountOf(p) == r.account):
			return 2
		case p == r.account || p == "arn:aws:iam::"+r.account+":root":
			if negated {
				if strings.HasSuffix(r.principal, ":root") {
					return 2
				}
				continue
			}
			best = 1
		}
	}
	return best
}

func roleName(arn string) string {
	if !strings.Contains(arn, ":role/") {
		return ""
	}
	return arn[strings.LastIndexByte(arn, '/')+1:]
}

func accountOf(arn string) string {
	parts := strings.Split(arn, ":")
	if len(parts) < 5 {
		return ""
	}
	return parts[4]
}

func globMatch(pattern, s string, fold bool) bool {
	if fold {
		pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	}
	// path.Match treats '/' specially; replace it so '*' crosses it.
	ok, err := path.Match(strings.ReplaceAll(pattern, "/", "\x00"), strings.ReplaceAll(s, "/", "\x00"))
	return err == nil && ok
}

func anyGlob(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if globMatch(p, s, fold) {
			return true
		}
	}
	return false
}

// applies reports whether the statement matches the request, and whether it
// named the caller itself (not only its account).
func (st policyStatement) applies(r request, identity bool) (bool, bool) {
	direct := true
	if !identity {
		switch {
		case st.Principal != nil:
			m := principalMatch(st.principals, r, false)
			if m == 0 {
				return false, false
			}
			direct = m == 2
		case st.NotPrincipal != nil:
			if principalMatch(st.notPrincipals, r, true) != 0 {
				return false, false
			}
		default:
			return false, false
		}
	}
	if st.Action != nil && !anyGlob(st.actions, r.action, true) {
		return false, false
	}
	if st.NotAction != nil && anyGlob(st.notActions, r.action, true) {
		return false, false
	}
	if st.Resource != nil && !anyGlob(st.resources, r.resource, false) {
		return false, false
	}
	if st.NotResource != nil && anyGlob(st.notResources, r.resource, false) {
		return false, false
	}
	for _, c := range st.conditions {
		if !conditionHolds(c.op, r.context[c.key], c.values) {
			return false, false
		}
	}
	return true, direct
}

// conditionHolds evaluates one condition operator on the request's values.
func conditionHolds(op string, have, want []string) bool {
	set := ""
	if q, rest, ok := strings.Cut(op, ":"); ok {
		set, op = strings.ToLower(q), rest
	}
	ifExists := false
	if base, ok := strings.CutSuffix(op, "IfExists"); ok {
		op, ifExists = base, true
	}
	if op == "Null" {
		return len(want) > 0 && (want[0] == "true") == (len(have) == 0)
	}
	negated := strings.Contains(op, "Not")
	positive := strings.Replace(op, "Not", "", 1)
	if len(have) == 0 {
		if set == "foranyvalue" {
			return false // no value can match, IfExists or not
		}
		return ifExists || set == "forallvalues" || (negated && set == "")
	}
	match := func(v string) bool {
		for _, w := range want {
			if compareValue(positive, v, w) {
				return true
			}
		}
		return false
	}
	switch set {
	case "forallvalues":
		for _, v := range have {
			if match(v) == negated {
				return false
			}
		}
		return true
	case "foranyvalue":
		for _, v := range have {
			if match(v) != negated {
				return true
			}
		}
		return false
	}
	any := false
	for _, v := range have {
		any = any || match(v)
	}
	return any != negated
}

func compareValue(op, v, w string) bool {
	switch op {
	case "StringEquals":
		return v == w
	case "StringEqualsIgnoreCase":
		return strings.EqualFold(v, w)
	case "StringLike", "ArnLike", "ArnEquals":
		return globMatch(w, v, false)
	case "Bool":
		return strings.EqualFold(v, w)
	case "IpAddress":
		ip, err := netip.ParseAddr(v)
		if err != nil {
			return false
		}
		if !strings.Contains(w, "/") {
			return w == v
		}
		p, err := netip.ParsePrefix(w)
		return err == nil && p.Contains(ip)
	}
	return false
}

// identityAllows evaluates the caller's identity policies: an account root
// may do anything in its account; a role only what its inline policies
// allow (a service-linked role of Auto Scaling has no KMS permission).
func (s *Server) identityAllows(r request) (allowed, denied bool) {
	if r.roleARN == "" {
		return true, false
	}
	role, ok := s.world.roles[r.roleARN]
	if !ok {
		return false, false
	}
	for _, doc := range role.inlinePolicies {
		for _, st := range parsePolicy(doc).Statement {
			if ok, _ := st.applies(r, true); ok {
				if st.Effect == "Deny" {
					return false, true
				}
				allowed = true
			}
		}
	}
	return allowed, false
}

// authorize decides a KMS call on key k.
func (s *Server) authorize(k *key, r request) error {
	keyAllows, keyDirect := false, false
	for _, st := range parsePolicy(k.policy).Statement {
		ok, direct := st.applies(r, false)
		if !ok {
			continue
		}
		if st.Effect == "Deny" {
			return accessDenied(r, "with an explicit deny in a resource-based policy")
		}
		keyAllows = true
		keyDirect = keyDirect || direct
	}
	idAllows, idDenies := s.identityAllows(r)
	if idDenies {
		return accessDenied(r, "with an explicit deny in an identity-based policy")
	}
	sameAccount := r.account == k.account
	if keyAllows && ((sameAccount && keyDirect) || idAllows) {
		return nil
	}
	op := strings.TrimPrefix(r.action, "kms:")
	delay := s.grantDelay()
	for _, g := range k.grants {
		if s.now().Sub(g.created) < delay {
			continue // not yet propagated to every KMS host
		}
		grantee := g.grantee == r.principal || (r.roleARN != "" && g.grantee == r.roleARN) ||
			(roleName(g.grantee) != "" && roleName(g.grantee) == roleName(r.roleARN) && accountOf(g.grantee) == r.account)
		if grantee && containsFold(g.operations, op) {
			return nil
		}
	}
	if keyAllows {
		// The key policy lets the caller (or its account) in; its own IAM
		// policies do not, and AWS says which half refused.
		return accessDenied(r, "because no identity-based policy allows the "+r.action+" action")
	}
	return accessDenied(r, "because no resource-based policy allows the "+r.action+" action")
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func accessDenied(r request, why string) error {
	return errorf(http.StatusBadRequest, "AccessDeniedException", "User: %s is not authorized to perform: %s on resource: %s %s", r.principal, r.action, r.resource, why)
}

// authorizeCall authorises the caller's direct call of action on key k; extra
// adds the action's own condition keys.
func (s *Server) authorizeCall(c caller, k *key, action string, extra map[string][]string) error {
	principalARN := c.arn
	if c.roleARN != "" {
		principalARN = c.roleARN
	}
	ctx := map[string][]string{
		"kms:calleraccount":    {c.account},
		"aws:principalaccount": {c.account},
		"aws:principalarn":     {principalARN},
		"aws:securetransport":  {"true"},
		"aws:viaawsservice":    {"false"},
	}
	if c.sourceIP != "" {
		ctx["aws:sourceip"] = []string{c.sourceIP}
	}
	for key, v := range extra {
		ctx[key] = v
	}
	return s.authorize(k, request{principal: c.arn, roleARN: c.roleARN, account: c.account, action: action, resource: k.arn, context: ctx})
}
