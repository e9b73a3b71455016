package awsim

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file authorises KMS calls the way the AWS KMS Developer Guide
// describes it. It is a second, deliberately small implementation of policy
// evaluation, independent of package keypolicy, so each checks the other.

type policyDoc struct {
	Version   string
	Statement []policyStatement
}

// policyVariablesVersion is the only policy language version that
// substitutes ${...} policy variables; in "2008-10-17", and in a policy
// without Version (which means 2008-10-17), they are literal text (IAM User
// Guide, "IAM JSON policy elements: Version").
const policyVariablesVersion = "2012-10-17"

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
	variables                                    bool // the policy's version substitutes ${...}
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
// gives its values. Service, Federated and CanonicalUser principals are
// left out: every caller of the simulator is an account root or a role
// session, which a service principal never names (IAM User Guide, "AWS
// JSON policy elements: Principal", AWS service principals).
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
	var raw struct {
		Version   string
		Statement json.RawMessage
	}
	if json.Unmarshal([]byte(doc), &raw) == nil {
		p.Version = raw.Version
		if json.Unmarshal(raw.Statement, &p.Statement) != nil {
			// A single Statement object.
			var single policyStatement
			if json.Unmarshal(raw.Statement, &single) == nil {
				p.Statement = []policyStatement{single}
			}
		}
	}
	for i := range p.Statement {
		p.Statement[i].variables = p.Version == policyVariablesVersion
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

// principalMatch: 0 none, 1 the caller's account, 2 the caller itself. A
// role's ARN names its sessions in Principal; in NotPrincipal (negated) it
// exempts none of them, since a session is exempted only by its own ARN
// (IAM User Guide, "AWS JSON policy elements: NotPrincipal": principals
// must always name a specific session).
func principalMatch(principals []string, r request, negated bool) int {
	best := 0
	for _, p := range principals {
		switch {
		case p == "*" || p == r.principal || (!negated && r.roleARN != "" && roleName(p) != "" && roleName(p) == roleName(r.roleARN) && accountOf(p) == r.account):
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
	if !st.targets(r) {
		return false, false
	}
	for _, c := range st.conditions {
		if !conditionHolds(c.op, r.context[c.key], st.conditionValues(c, r.context)) {
			return false, false
		}
	}
	return true, direct
}

// targets reports whether the statement's Action or NotAction covers the
// request's action, and its Resource or NotResource the request's
// resource.
func (st policyStatement) targets(r request) bool {
	return (st.Action == nil || anyGlob(st.actions, r.action, true)) &&
		(st.NotAction == nil || !anyGlob(st.notActions, r.action, true)) &&
		(st.Resource == nil || st.anyResource(st.resources, r)) &&
		(st.NotResource == nil || !st.anyResource(st.notResources, r))
}

// anyResource matches the request's key against Resource or NotResource
// patterns. A pattern whose policy variable has no value names no
// resource (IAM User Guide, "IAM policy elements: Variables and tags").
func (st policyStatement) anyResource(patterns []string, r request) bool {
	for _, p := range patterns {
		if st.variables {
			var ok bool
			if p, ok = expand(p, r.context, true); !ok {
				continue
			}
		}
		if globMatch(p, r.resource, false) {
			return true
		}
	}
	return false
}

// conditionValues are the condition's values with policy variables filled
// in, for the string and ARN operators that take them (IAM User Guide,
// "IAM policy elements: Variables and tags", where variables can be used).
// A value whose variable the request does not carry becomes noValue,
// which nothing is equal to or like: AWS reads the variable as no value,
// so a positive operator fails on it and a negated one holds (same page,
// "Policy variables with no value").
func (st policyStatement) conditionValues(c policyCondition, ctx map[string][]string) []string {
	op := c.op
	if _, rest, found := strings.Cut(op, ":"); found {
		op = rest
	}
	if !st.variables || !(strings.HasPrefix(op, "String") || strings.HasPrefix(op, "Arn")) {
		return c.values
	}
	pattern := strings.Contains(op, "Like") || strings.HasPrefix(op, "Arn")
	out := make([]string, len(c.values))
	for i, v := range c.values {
		var ok bool
		if out[i], ok = expand(v, ctx, pattern); !ok {
			out[i] = noValue
		}
	}
	return out
}

// noValue stands for a policy variable with no value; no request value is
// equal to or like it.
const noValue = "\x00no value\x00"

// expand fills in the policy variables of s from the request: ${key} and
// ${key, 'default'}, and ${*}, ${?}, ${$} for those characters themselves
// (escaped in a wildcard pattern, so they match only themselves). ok is
// false when a key is missing, or holds several values, and there is no
// default.
func expand(s string, ctx map[string][]string, pattern bool) (string, bool) {
	var out strings.Builder
	for s != "" {
		start := strings.Index(s, "${")
		end := -1
		if start >= 0 {
			end = strings.IndexByte(s[start:], '}')
		}
		if end < 0 {
			out.WriteString(s)
			break
		}
		out.WriteString(s[:start])
		inside := s[start+2 : start+end]
		s = s[start+end+1:]
		name, fallback, hasFallback := strings.Cut(inside, ",")
		name = strings.TrimSpace(name)
		values := ctx[strings.ToLower(name)]
		switch {
		case name == "*" || name == "?":
			if pattern {
				out.WriteByte('\\')
			}
			out.WriteString(name)
		case name == "$":
			out.WriteByte('$')
		case len(values) == 1:
			out.WriteString(values[0])
		case hasFallback:
			out.WriteString(strings.Trim(strings.TrimSpace(fallback), "'"))
		default:
			return "", false
		}
	}
	return out.String(), true
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
	case "StringLike":
		return globMatch(w, v, false)
	case "ArnLike", "ArnEquals":
		return arnMatch(w, v)
	case "Bool":
		return strings.EqualFold(v, w)
	case "NumericEquals", "NumericLessThan", "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals":
		a, err1 := strconv.ParseFloat(v, 64)
		b, err2 := strconv.ParseFloat(w, 64)
		return err1 == nil && err2 == nil && ordered(op[len("Numeric"):], a < b, a == b)
	case "DateEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals":
		a, ok1 := parseTime(v)
		b, ok2 := parseTime(w)
		return ok1 && ok2 && ordered(op[len("Date"):], a.Before(b), a.Equal(b))
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

// ordered decides an ordered comparison (Equals, LessThan, ...) from
// whether the request's value is less than, or equal to, the policy's.
func ordered(comparison string, less, equal bool) bool {
	switch comparison {
	case "Equals":
		return equal
	case "LessThan":
		return less
	case "LessThanEquals":
		return less || equal
	case "GreaterThan":
		return !less && !equal
	case "GreaterThanEquals":
		return !less
	}
	return false
}

// parseTime reads a date as the date operators take it: ISO 8601 or epoch
// (UNIX) seconds (IAM User Guide, "IAM JSON policy elements: Condition
// operators", Date condition operators).
func parseTime(s string) (time.Time, bool) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), true
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// arnMatch compares an ARN with a pattern field by field: each of the six
// colon-separated fields is matched on its own, so a wildcard in the
// account field stands for any account and no '*' reaches across a colon
// (IAM User Guide, "Condition operators", Amazon Resource Name operators).
func arnMatch(pattern, arn string) bool {
	want, have := strings.SplitN(pattern, ":", 6), strings.SplitN(arn, ":", 6)
	if len(want) != 6 || len(have) != 6 {
		return pattern == "*"
	}
	for i := range want {
		if !globMatch(want[i], have[i], false) {
			return false
		}
	}
	return true
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

// roleMay reports whether the caller may call action on resource as far
// as its own identity policies say, with what the request context says of
// it (principalContext): a role needs an Allow and no Deny; an account's
// root user needs no policy.
func (s *Server) roleMay(c caller, action, resource string) bool {
	if c.roleARN == "" {
		return true
	}
	allowed, _ := s.identityAllows(request{principal: c.arn, roleARN: c.roleARN, account: c.account, action: action, resource: resource,
		context: s.principalContext(c)})
	return allowed
}

// authorize decides a KMS call on key k, with what KMS adds to the
// request's context about the key (keyContext; the caller's map is left
// as it was).
func (s *Server) authorize(k *key, r request) error {
	ctx := make(map[string][]string, len(r.context)+5)
	maps.Copy(ctx, r.context)
	keyContext(k, ctx)
	r.context = ctx
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

// principalContext is what a request context says of the principal
// making the request: its account, its ARN (a session's role), its type,
// and its account's organization (principalOrgKeys); and what every
// request carries: the time (aws:CurrentTime, aws:EpochTime, "always
// included in the request context", IAM User Guide, "AWS global condition
// context keys"). The same for a direct call and for one a service makes
// on the principal's behalf (EC2 for a launch, Auto Scaling as its
// service-linked role).
func (s *Server) principalContext(c caller) map[string][]string {
	principalARN, principalType := c.arn, "Account"
	if c.roleARN != "" {
		principalARN, principalType = c.roleARN, "AssumedRole"
	}
	now := s.now().UTC()
	ctx := map[string][]string{
		"aws:principalaccount":      {c.account},
		"aws:principalarn":          {principalARN},
		"aws:principaltype":         {principalType},
		"aws:principalisawsservice": {"false"},
		"aws:currenttime":           {now.Format(time.RFC3339)},
		"aws:epochtime":             {strconv.FormatInt(now.Unix(), 10)},
	}
	if c.region != "" {
		ctx["aws:requestedregion"] = []string{c.region}
	}
	// A role session's credentials are temporary and were not issued
	// with MFA here; the root user signs with long-term keys, whose
	// requests lack the key.
	if c.roleARN != "" {
		ctx["aws:multifactorauthpresent"] = []string{"false"}
	}
	s.principalOrgKeys(c.account, ctx)
	return ctx
}

// kmsContext is principalContext with kms:CallerAccount, which every KMS
// request carries.
func (s *Server) kmsContext(c caller) map[string][]string {
	ctx := s.principalContext(c)
	ctx["kms:calleraccount"] = []string{c.account}
	return ctx
}

// keyContext adds what KMS supplies about the key a request uses:
// aws:ResourceAccount, the key owner's account (IAM User Guide, "AWS
// global condition context keys"), and the key's own properties
// (AWS KMS Developer Guide, "AWS KMS condition keys": kms:KeySpec,
// kms:KeyUsage, kms:KeyOrigin, kms:MultiRegion).
func keyContext(k *key, ctx map[string][]string) {
	ctx["aws:resourceaccount"] = []string{k.account}
	ctx["kms:keyspec"] = []string{"SYMMETRIC_DEFAULT"}
	ctx["kms:keyusage"] = []string{"ENCRYPT_DECRYPT"}
	ctx["kms:keyorigin"] = []string{"AWS_KMS"}
	ctx["kms:multiregion"] = []string{"false"}
}

// authorizeCall authorises the caller's direct call of action on key k; extra
// adds the action's own condition keys.
func (s *Server) authorizeCall(c caller, k *key, action string, extra map[string][]string) error {
	ctx := s.kmsContext(c)
	ctx["aws:securetransport"] = []string{"true"}
	ctx["aws:viaawsservice"] = []string{"false"}
	if c.sourceIP != "" {
		ctx["aws:sourceip"] = []string{c.sourceIP}
	}
	for key, v := range extra {
		ctx[key] = v
	}
	return s.authorize(k, request{principal: c.arn, roleARN: c.roleARN, account: c.account, action: action, resource: k.arn, context: ctx})
}

// useKeyThroughEC2 checks, as EC2 does when it creates a volume for the
// caller, that the caller can use the key through EC2: the calls come from
// EC2 on the caller's behalf, with kms:ViaService, and not from the
// caller's address. It records a CloudTrail event for a denied call.
func (s *Server) useKeyThroughEC2(c caller, k *key, volumeID, invokedBy string) error {
	if k.state != "Enabled" {
		return errorf(http.StatusBadRequest, "Client.InvalidKMSKey.InvalidState", "The KMS key provided is in an incorrect state")
	}
	ctx := s.kmsContext(c)
	ctx["kms:viaservice"] = []string{"ec2." + c.region + ".amazonaws.com"}
	ctx["aws:securetransport"] = []string{"true"}
	// EC2 forwards the principal's credentials (true), except for a
	// service-linked role, for which AWS documents false (IAM User Guide,
	// "AWS global condition context keys", aws:ViaAWSService). The
	// forwarded session is temporary credentials without MFA.
	ctx["aws:viaawsservice"] = []string{"true"}
	if strings.Contains(c.roleARN, ":role/aws-service-role/") {
		ctx["aws:viaawsservice"] = []string{"false"}
	}
	ctx["aws:multifactorauthpresent"] = []string{"false"}
	// CreateGrant alone carries kms:GrantIsForAWSResource.
	grantCtx := maps.Clone(ctx)
	grantCtx["kms:grantisforawsresource"] = []string{"true"}
	for _, call := range []struct {
		action string
		ctx    map[string][]string
	}{{"kms:CreateGrant", grantCtx}, {"kms:Decrypt", ctx}, {"kms:GenerateDataKeyWithoutPlaintext", ctx}} {
		err := s.authorize(k, request{principal: c.arn, roleARN: c.roleARN, account: c.account, action: call.action, resource: k.arn, context: call.ctx})
		if err != nil {
			s.recordKMSDenial(c, k, call.action, volumeID, invokedBy)
			return errorf(http.StatusBadRequest, "Client.InternalError", "Client error on launch")
		}
	}
	return nil
}
