package keypolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// The statements amigate owns in a key policy: one per purpose (DESIGN
// §1.3), principals merged into them. Every Sid starts with "amigate".
const (
	// SidUseKey lets targets use the key through EC2.
	SidUseKey = "amigateUseKeyThroughEC2"
	// SidEC2Grants lets targets' principals have EC2 create grants for the
	// volumes it attaches.
	SidEC2Grants = "amigateCreateGrantForEC2"
	// SidAutoScalingGrants lets targets create, directly, the grant their
	// Auto Scaling service-linked roles need.
	SidAutoScalingGrants = "amigateCreateGrantForAutoScaling"
)

// OwnedSid reports whether amigate owns the statement with this Sid.
func OwnedSid(sid string) bool { return strings.HasPrefix(sid, "amigate") }

func useKeyStatement(principals, viaServices []string) Statement {
	return Statement{
		Sid:       SidUseKey,
		Effect:    Allow,
		Principal: awsPrincipals(principals),
		Action:    Values{Items: []string{"kms:Decrypt", "kms:DescribeKey", "kms:ReEncrypt*", "kms:GenerateDataKey*"}, List: true},
		Resource:  Values{Items: []string{"*"}},
		Conditions: []Condition{
			newCondition("StringEquals", "kms:ViaService", viaServices),
		},
	}
}

func ec2GrantStatement(principals []string) Statement {
	return Statement{
		Sid:       SidEC2Grants,
		Effect:    Allow,
		Principal: awsPrincipals(principals),
		Action:    Values{Items: []string{"kms:CreateGrant"}},
		Resource:  Values{Items: []string{"*"}},
		Conditions: []Condition{
			newCondition("Bool", "kms:GrantIsForAWSResource", []string{"true"}),
		},
	}
}

// autoScalingGrantStatement must not carry kms:GrantIsForAWSResource or
// kms:ViaService: the target calls CreateGrant directly, and either
// condition would make that call fail.
func autoScalingGrantStatement(principals, grantees []string) Statement {
	return Statement{
		Sid:       SidAutoScalingGrants,
		Effect:    Allow,
		Principal: awsPrincipals(principals),
		Action:    Values{Items: []string{"kms:CreateGrant"}},
		Resource:  Values{Items: []string{"*"}},
		Conditions: []Condition{
			newCondition("ForAllValues:StringEquals", "kms:GrantOperations", AutoScalingGrantOperations),
			newCondition("StringLike", "kms:GranteePrincipal", grantees),
		},
	}
}

func awsPrincipals(arns []string) *Principal {
	p := &Principal{AWS: Values{Items: arns, List: true}}
	p.compile()
	return p
}

func newCondition(op, key string, values []string) Condition {
	o, set, ifExists, err := parseOperator(op)
	if err != nil {
		panic(err) // only called with the literals above
	}
	return Condition{Operator: op, Key: key, Values: Values{Items: values, List: true}, op: o, set: set, ifExists: ifExists, key: strings.ToLower(key)}
}

// autoScalingRolePattern matches an account's Auto Scaling service-linked
// roles, the default one and those with a custom suffix.
func autoScalingRolePattern(partition, account string) string {
	return DefaultAutoScalingRole(partition, account) + "*"
}

// PlanOptions tune the patch planner.
type PlanOptions struct {
	// GrantFromSource creates the Auto Scaling grants from the key owner's
	// account instead of from each target (AWS's documented default), so
	// the targets need no CreateGrant permission.
	GrantFromSource bool
}

// Plan is the change that makes every target's paths pass.
type Plan struct {
	Before, After []byte
	// Changed is false when the key policy needs nothing.
	Changed bool
	// Added lists, per amigate statement, the principals (or values) added.
	Added map[string][]string
	// Grants to create, one per Auto Scaling service-linked role that has
	// none.
	Grants []Grant
	// Blocked lists the paths no key-policy change can fix (an explicit
	// deny, an identity policy); the plan leaves them alone.
	Blocked []Finding
}

// ErrPolicyTooLarge is returned when the patched policy would exceed KMS's
// 32 KiB limit.
var ErrPolicyTooLarge = errors.New("patched key policy exceeds the 32 KiB limit")

// PlanPatch computes the smallest change to the key policy, and the grants,
// that let every target launch on its paths. It adds principals to the
// amigate-owned statements only where a needed request is not yet allowed;
// it never edits, reorders or removes any other statement, whose bytes stay
// as they were.
func PlanPatch(key Key, targets []Target, opts PlanOptions) (*Plan, error) {
	keyARN, err := ParseKeyARN(key.ARN)
	if err != nil {
		return nil, fmt.Errorf("plan key policy: %w", err)
	}
	if key.Policy == nil {
		return nil, fmt.Errorf("plan key policy: %w", errNoPolicy)
	}
	plan := &Plan{Before: key.Policy.raw, After: key.Policy.raw, Added: map[string][]string{}}
	need := map[string]map[string]bool{SidUseKey: {}, SidEC2Grants: {}, SidAutoScalingGrants: {}}
	grantees := map[string]bool{}
	for _, t := range targets {
		for _, p := range t.paths() {
			for _, principal := range t.principals(keyARN.Partition, p) {
				planPath(&key, keyARN, t, p, principal, opts, plan, need, grantees)
			}
		}
	}
	if len(need[SidUseKey])+len(need[SidEC2Grants])+len(need[SidAutoScalingGrants]) == 0 {
		return plan, nil
	}
	updated := mergeOwned(key.Policy, keyARN, need, grantees, plan)
	after, err := key.Policy.splice(updated)
	if err != nil {
		return nil, fmt.Errorf("plan key policy: %w", err)
	}
	plan.After, plan.Changed = after, true
	if len(after) > MaxPolicySize {
		return plan, fmt.Errorf("%w (%d bytes): name the targets' organization instead, with one statement whose Principal is \"*\" and whose Condition is \"StringEquals\": {\"aws:PrincipalOrgID\": \"o-...\"}", ErrPolicyTooLarge, len(after))
	}
	return plan, nil
}

// planPath records what the target needs on one path.
func planPath(key *Key, keyARN ARN, t Target, p Path, principal string, opts PlanOptions, plan *Plan, need map[string]map[string]bool, grantees map[string]bool) {
	root := RootARN(keyARN.Partition, t.Account)
	if p == PathASG {
		if blocked := firstRefusal(key, keyARN, t, p, principal, nil, ExplicitDeny); blocked != nil {
			plan.Blocked = append(plan.Blocked, *blocked)
			return
		}
		if !refused(key, keyARN, p, principal, t.orgFor(principal)) {
			return // a grant (or, same account, a statement) covers it
		}
		plan.Grants = appendGrant(plan.Grants, Grant{
			Name: GrantName(principal), GranteePrincipal: principal,
			Operations: append([]string(nil), AutoScalingGrantOperations...),
		})
		if opts.GrantFromSource || t.GrantFromSource {
			return
		}
		// The target creates the grant through one of its roles, never as
		// its root user.
		caller := AnyPrincipal(keyARN.Partition, t.Account)
		req := directGrantRequest(keyARN, caller, principal, t.orgFor(caller))
		switch Authorize(key, req, nil).Decision {
		case ExplicitDeny:
			f := explain(key, keyARN, t, PathInstance, caller, req, Authorize(key, req, nil))
			f.Message = "the target cannot create the Auto Scaling grant itself: " + f.Message
			plan.Blocked = append(plan.Blocked, f)
		case ImplicitDeny:
			need[SidAutoScalingGrants][root] = true
			grantees[autoScalingRolePattern(keyARN.Partition, t.Account)] = true
		}
		return
	}
	org := t.orgFor(principal)
	for _, pa := range pathActions[p] {
		req := serviceRequest(keyARN, principal, pa, org)
		auth := Authorize(key, req, t.Identity)
		switch {
		case auth.Decision == Allowed:
		case auth.Decision == ExplicitDeny || (auth.KeyPolicy.Decision == Allowed && !auth.IdentityAllows):
			plan.Blocked = append(plan.Blocked, explain(key, keyARN, t, p, principal, req, auth))
			return
		case pa.createsGrant:
			need[SidEC2Grants][root] = true
		default:
			need[SidUseKey][root] = true
		}
	}
}

// firstRefusal returns the finding for the first action of the path that is
// refused with the given decision, or nil.
func firstRefusal(key *Key, keyARN ARN, t Target, p Path, principal string, identity *Policy, want Decision) *Finding {
	org := t.orgFor(principal)
	for _, pa := range pathActions[p] {
		req := serviceRequest(keyARN, principal, pa, org)
		if auth := Authorize(key, req, identity); auth.Decision != Allowed && (want == ImplicitDeny || auth.Decision == want) {
			f := explain(key, keyARN, t, p, principal, req, auth)
			return &f
		}
	}
	return nil
}

// refused reports whether any action of the path is refused to principal.
func refused(key *Key, keyARN ARN, p Path, principal string, org *orgContext) bool {
	for _, pa := range pathActions[p] {
		if Authorize(key, serviceRequest(keyARN, principal, pa, org), nil).Decision != Allowed {
			return true
		}
	}
	return false
}

// directGrantRequest is the CreateGrant a target makes itself, by key ARN,
// for its Auto Scaling role: no service is in between. org is the caller's
// organization context, nil when not known.
func directGrantRequest(keyARN ARN, caller, grantee string, org *orgContext) Request {
	c := parseCaller(caller)
	req := Request{Principal: caller, Action: "kms:CreateGrant", Resource: keyARN.String(), Context: map[string][]string{
		"kms:calleraccount":         {c.account},
		"aws:principalaccount":      {c.account},
		"aws:principalarn":          {caller},
		"aws:principaltype":         {principalType(c)},
		"aws:viaawsservice":         {"false"},
		"aws:principalisawsservice": {"false"},
		"aws:securetransport":       {"true"},
		"aws:requestedregion":       {keyARN.Region},
		"kms:multiregion":           multiRegion(keyARN),
		"kms:granteeprincipal":      {grantee},
		"kms:grantoperations":       AutoScalingGrantOperations,
		"kms:grantisforawsresource": {"false"},
	}}
	org.add(req.Context)
	return req
}

func appendGrant(list []Grant, g Grant) []Grant {
	for _, x := range list {
		if x.GranteePrincipal == g.GranteePrincipal {
			return list
		}
	}
	return append(list, g)
}

// mergeOwned builds the amigate statements: the existing ones with the
// needed principals and values added (never removed).
func mergeOwned(p *Policy, keyARN ARN, need map[string]map[string]bool, grantees map[string]bool, plan *Plan) map[string]Statement {
	existing := map[string]*Statement{}
	for i := range p.Statements {
		if OwnedSid(p.Statements[i].Sid) {
			existing[p.Statements[i].Sid] = &p.Statements[i]
		}
	}
	out := map[string]Statement{}
	for _, sid := range []string{SidUseKey, SidEC2Grants, SidAutoScalingGrants} {
		if len(need[sid]) == 0 {
			continue
		}
		old := existing[sid]
		principals, added := union(oldPrincipals(old), keys(need[sid]))
		plan.Added[sid] = added
		switch sid {
		case SidUseKey:
			via, _ := union(oldConditionValues(old, "kms:viaservice"), []string{"ec2." + keyARN.Region + ".amazonaws.com"})
			out[sid] = useKeyStatement(principals, via)
		case SidEC2Grants:
			out[sid] = ec2GrantStatement(principals)
		case SidAutoScalingGrants:
			g, _ := union(oldConditionValues(old, "kms:granteeprincipal"), keys(grantees))
			out[sid] = autoScalingGrantStatement(principals, g)
		}
	}
	return out
}

func oldPrincipals(s *Statement) []string {
	if s == nil || s.Principal == nil {
		return nil
	}
	return s.Principal.AWS.Items
}

func oldConditionValues(s *Statement, key string) []string {
	if s == nil {
		return nil
	}
	for _, c := range s.Conditions {
		if c.key == key {
			return c.Values.Items
		}
	}
	return nil
}

// union returns the sorted union of old and add, and what add contributed.
func union(old, add []string) ([]string, []string) {
	seen := map[string]bool{}
	var out, added []string
	for _, s := range old {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range add {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
			added = append(added, s)
		}
	}
	sort.Strings(out)
	sort.Strings(added)
	return out, added
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// textEdit replaces raw[start:end] with text.
type textEdit struct {
	start, end int
	text       string
}

// splice writes the updated amigate statements into the original text:
// replacing the statement with the same Sid in place, appending the others
// at the end of the Statement list. Every other byte stays as it was.
func (p *Policy) splice(updated map[string]Statement) ([]byte, error) {
	var edits []textEdit
	done := map[string]bool{}
	for i, s := range p.Statements {
		u, ok := updated[s.Sid]
		if !ok || done[s.Sid] {
			continue
		}
		done[s.Sid] = true
		span := p.spans[i]
		indent, unit := p.indentAt(span[0])
		edits = append(edits, textEdit{span[0], span[1], render(u, indent, unit)})
	}
	var fresh []Statement
	for _, sid := range []string{SidUseKey, SidEC2Grants, SidAutoScalingGrants} {
		if u, ok := updated[sid]; ok && !done[sid] {
			fresh = append(fresh, u)
		}
	}
	if len(fresh) > 0 {
		edits = append(edits, p.appendEdit(fresh))
	}
	sort.Slice(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	var b bytes.Buffer
	pos := 0
	for _, e := range edits {
		b.Write(p.raw[pos:e.start])
		b.WriteString(e.text)
		pos = e.end
	}
	b.Write(p.raw[pos:])
	if _, err := Parse(b.Bytes()); err != nil {
		return nil, fmt.Errorf("patched policy does not parse: %w", err)
	}
	return b.Bytes(), nil
}

// appendEdit inserts fresh statements at the end of the Statement list,
// turning a single Statement object into a list around it.
func (p *Policy) appendEdit(fresh []Statement) textEdit {
	if len(p.spans) == 0 { // "Statement": []
		indent, unit := p.indentAt(p.listSpan[0])
		inner := indent + unit
		var parts []string
		for _, s := range fresh {
			parts = append(parts, inner+render(s, inner, unit))
		}
		return textEdit{p.listSpan[0], p.listSpan[1], "[\n" + strings.Join(parts, ",\n") + "\n" + indent + "]"}
	}
	last := p.spans[len(p.spans)-1]
	indent, unit := p.indentAt(last[0])
	sep := ",\n" + indent
	if indent == "" && !bytes.Contains(p.raw, []byte("\n")) {
		sep = ","
	}
	var b strings.Builder
	for _, s := range fresh {
		b.WriteString(sep)
		b.WriteString(render(s, indent, unit))
	}
	if !p.hasList {
		whole := string(p.raw[last[0]:last[1]])
		return textEdit{last[0], last[1], "[" + whole + b.String() + "]"}
	}
	return textEdit{last[1], last[1], b.String()}
}

// indentAt returns the whitespace that starts the line holding offset, and
// the document's indentation unit.
func (p *Policy) indentAt(offset int) (string, string) {
	lineStart := bytes.LastIndexByte(p.raw[:offset], '\n') + 1
	prefix := p.raw[lineStart:offset]
	if len(bytes.TrimLeft(prefix, " \t")) != 0 {
		prefix = nil // the statement does not start its line
	}
	unit := "  "
	if bytes.Contains(p.raw, []byte("\n\t")) {
		unit = "\t"
	}
	if !bytes.Contains(p.raw, []byte("\n")) {
		unit = ""
	}
	return string(prefix), unit
}

// render marshals a statement indented to sit at the given indentation.
func render(s Statement, indent, unit string) string {
	compact, _ := s.MarshalJSON()
	if unit == "" {
		return string(compact)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact, indent, unit); err != nil {
		return string(compact)
	}
	return out.String()
}
