package keypolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
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
	c := Condition{Operator: op, Values: Values{Items: values, List: true}, op: o, set: set, ifExists: ifExists}
	c.setKey(key)
	return c
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
	// Organization, when set, names the targets it covers (those whose
	// Target.OrgPath lies within it) by their place in the organization
	// instead of one ARN per account: the plan writes the organization
	// statements (SidOrgUseKey, SidOrgEC2Grants, SidOrgAutoScalingGrants)
	// with {"AWS": "*"} limited by aws:PrincipalOrgID or
	// aws:PrincipalOrgPaths, and never adds a covered account per account.
	// Targets it does not cover are planned per account as without it.
	// The policy then stays the same size for any number of accounts, but
	// it also lets in accounts that join the scope later: PlanPatchAuto
	// uses it only when the accounts do not fit.
	Organization *OrgScope
	// Now is when the launches happen, as CheckOptions.Now: the zero time
	// leaves conditions on aws:CurrentTime and aws:EpochTime undecidable.
	Now time.Time
}

// The modes a plan names its targets in (Plan.Mode).
const (
	// PlanModeAccounts: one account root per target in the amigate
	// statements.
	PlanModeAccounts = "accounts"
	// PlanModeOrganization: the targets PlanOptions.Organization covers
	// are named by their organization, the others per account.
	PlanModeOrganization = "organization"
)

// Plan is the change that makes every target's paths pass.
type Plan struct {
	Before, After []byte
	// Changed is false when the key policy needs nothing.
	Changed bool
	// Mode is PlanModeAccounts or PlanModeOrganization.
	Mode string
	// Added lists, per amigate statement, the principals (or values) added:
	// account roots in the account-mode statements; organization ids or
	// aws:PrincipalOrgPaths patterns in the organization statements.
	Added map[string][]string
	// OrgAccounts lists, per organization statement in Added, the target
	// accounts it was added for; they get nothing per account.
	OrgAccounts map[string][]string
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
// as they were. With opts.Organization it names the targets the scope
// covers by organization (see PlanOptions.Organization).
func PlanPatch(key Key, targets []Target, opts PlanOptions) (*Plan, error) {
	keyARN, err := ParseKeyARN(key.ARN)
	if err != nil {
		return nil, fmt.Errorf("plan key policy: %w", err)
	}
	if key.Policy == nil {
		return nil, fmt.Errorf("plan key policy: %w", errNoPolicy)
	}
	key.indexGrants()
	plan := &Plan{Before: key.Policy.raw, After: key.Policy.raw, Mode: PlanModeAccounts, Added: map[string][]string{}, OrgAccounts: map[string][]string{}}
	pl := &planner{key: &key, keyARN: keyARN, env: newRequestEnv(&key, keyARN, opts.Now), opts: opts, plan: plan,
		need:     map[string]map[string]bool{SidUseKey: {}, SidEC2Grants: {}, SidAutoScalingGrants: {}},
		grantees: map[string]bool{},
		orgNeed:  map[string]map[string]bool{}, orgAccounts: map[string]map[string]bool{},
	}
	if opts.Organization != nil {
		if pl.scope, err = opts.Organization.compile(keyARN.Account); err != nil {
			return nil, fmt.Errorf("plan key policy: organization scope: %w", err)
		}
		plan.Mode = PlanModeOrganization
	}
	for _, t := range targets {
		covered := pl.scope.covers(t)
		for _, p := range t.paths() {
			for _, principal := range t.principals(keyARN.Partition, p) {
				pl.path(t, p, principal, covered)
			}
		}
	}
	if len(pl.need[SidUseKey])+len(pl.need[SidEC2Grants])+len(pl.need[SidAutoScalingGrants])+len(pl.orgNeed) == 0 {
		return plan, nil
	}
	updated, fresh := mergeOwned(key.Policy, keyARN, pl.need, pl.grantees, plan)
	orgUpdated, orgFresh, err := pl.mergeOrg()
	if err != nil {
		return nil, fmt.Errorf("plan key policy: %w", err)
	}
	for sid, st := range orgUpdated {
		updated[sid] = st
	}
	after, err := key.Policy.splice(updated, append(fresh, orgFresh...))
	if err != nil {
		return nil, fmt.Errorf("plan key policy: %w", err)
	}
	plan.After, plan.Changed = after, !bytes.Equal(after, plan.Before)
	if len(after) > MaxPolicySize {
		return plan, fmt.Errorf("%w (%d bytes): use the organization mode (PlanOptions.Organization), whose statements name the targets' organization or OUs instead of one ARN per account: Principal {\"AWS\": \"*\"} with \"StringEquals\": {\"aws:PrincipalOrgID\": \"o-...\"} or \"ForAnyValue:StringLike\": {\"aws:PrincipalOrgPaths\": \"o-.../r-.../ou-.../*\"}", ErrPolicyTooLarge, len(after))
	}
	return plan, nil
}

// PlanPatchAuto plans per account, and falls back to opts.Organization
// only when the per-account plan would pass KMS's 32 KiB limit (and a
// scope is given); Plan.Mode says which was used. Per account is preferred
// because it is least privilege: it names exactly the targets, while an
// organization statement also lets in every account that joins the
// organization or OU later, until someone narrows it. When the fallback
// cannot be used either, the error wraps ErrPolicyTooLarge and says why.
func PlanPatchAuto(key Key, targets []Target, opts PlanOptions) (*Plan, error) {
	perAccount := opts
	perAccount.Organization = nil
	plan, err := PlanPatch(key, targets, perAccount)
	if opts.Organization == nil || !errors.Is(err, ErrPolicyTooLarge) {
		return plan, err
	}
	org, orgErr := PlanPatch(key, targets, opts)
	if orgErr != nil {
		return plan, fmt.Errorf("%w; the organization mode cannot be used either: %w", err, orgErr)
	}
	return org, nil
}

// planner gathers what the targets need, per account and per organization
// statement.
type planner struct {
	key    *Key
	keyARN ARN
	env    *requestEnv
	opts   PlanOptions
	plan   *Plan
	scope  *orgScope
	// need: per account-mode Sid, the account roots to add; grantees: the
	// Auto Scaling role patterns for their grant statement.
	need     map[string]map[string]bool
	grantees map[string]bool
	// orgNeed: per purpose (account-mode Sid), the scope's patterns to add
	// to its organization statement; orgAccounts: the targets they serve.
	orgNeed, orgAccounts map[string]map[string]bool
}

// require records that target t needs the statement of purpose (an
// account-mode Sid): by organization when the scope covers it (covered are
// its patterns), else by its account root.
func (pl *planner) require(purpose string, t Target, covered []string) {
	if covered != nil {
		if pl.orgNeed[purpose] == nil {
			pl.orgNeed[purpose], pl.orgAccounts[purpose] = map[string]bool{}, map[string]bool{}
		}
		for _, p := range covered {
			pl.orgNeed[purpose][p] = true
		}
		pl.orgAccounts[purpose][t.Account] = true
		return
	}
	pl.need[purpose][RootARN(pl.keyARN.Partition, t.Account)] = true
	if purpose == SidAutoScalingGrants {
		pl.grantees[autoScalingRolePattern(pl.keyARN.Partition, t.Account)] = true
	}
}

// path records what the target needs on one path.
func (pl *planner) path(t Target, p Path, principal string, covered []string) {
	key, env, keyARN, plan := pl.key, pl.env, pl.keyARN, pl.plan
	if p == PathASG {
		// One pass: an explicit deny blocks the path (no grant lifts it);
		// else a refused action needs the grant.
		a := env.newActor(principal, p, t.orgFor(principal), false)
		needsGrant := false
		for _, pa := range pathActions[p] {
			req := a.request(pa)
			switch auth := Authorize(key, req, nil); auth.Decision {
			case ExplicitDeny:
				plan.Blocked = append(plan.Blocked, explain(key, env, t, p, principal, req, auth))
				return
			case ImplicitDeny:
				needsGrant = true
			}
		}
		if !needsGrant {
			return // a grant (or, same account, a statement) covers it
		}
		plan.Grants = appendGrant(plan.Grants, Grant{
			Name: GrantName(principal), GranteePrincipal: principal,
			Operations: append([]string(nil), AutoScalingGrantOperations...),
		})
		if pl.opts.GrantFromSource || t.GrantFromSource {
			return
		}
		// The target creates the grant through one of its roles, never as
		// its root user.
		caller := AnyPrincipal(keyARN.Partition, t.Account)
		req := env.directGrantRequest(caller, principal, t.orgFor(caller))
		switch auth := Authorize(key, req, nil); auth.Decision {
		case ExplicitDeny:
			f := explain(key, env, t, PathInstance, caller, req, auth)
			f.Message = "the target cannot create the Auto Scaling grant itself: " + f.Message
			plan.Blocked = append(plan.Blocked, f)
		case ImplicitDeny:
			pl.require(SidAutoScalingGrants, t, covered)
		}
		return
	}
	a := env.newActor(principal, p, t.orgFor(principal), false)
	for _, pa := range pathActions[p] {
		req := a.request(pa)
		auth := Authorize(key, req, t.Identity)
		switch {
		case auth.Decision == Allowed:
		case auth.Decision == ExplicitDeny || (auth.KeyPolicy.Decision == Allowed && !auth.IdentityAllows):
			plan.Blocked = append(plan.Blocked, explain(key, env, t, p, principal, req, auth))
			return
		case pa.createsGrant:
			pl.require(SidEC2Grants, t, covered)
		default:
			pl.require(SidUseKey, t, covered)
		}
	}
}

// mergeOrg builds the organization statements the targets need: each
// purpose's statement with the same exclusions gets the patterns added
// (the union of what it allowed and the scope's), or a new statement is
// made. Nothing a statement allowed is taken away, and nothing outside the
// configured scopes is let in.
func (pl *planner) mergeOrg() (map[string]Statement, []string, error) {
	p := pl.key.Policy
	out := map[string]Statement{}
	var fresh []string
	for _, purpose := range []string{SidUseKey, SidEC2Grants, SidAutoScalingGrants} {
		if len(pl.orgNeed[purpose]) == 0 {
			continue
		}
		if purpose == SidAutoScalingGrants && p.Version != VersionCurrent {
			return nil, nil, fmt.Errorf("%w: its Version is %s, which reads ${aws:PrincipalAccount} as literal text, so the statement that lets each account of the scope create the grant for its own Auto Scaling role would let no one; set \"Version\": %q in the key policy (that changes what every statement with ${...} means: check them), or plan per account",
				ErrOrganizationNeedsVersion2012, versionName(p.Version), VersionCurrent)
		}
		base := orgSids[purpose]
		old, sid := pl.orgStatementFor(base)
		var patterns []string
		var via []string
		if old != nil {
			patterns, _, _ = orgStatementScope(old)
			via = oldConditionValues(old, "kms:viaservice")
		} else {
			fresh = append(fresh, sid)
		}
		merged, added := mergePatterns(patterns, keys(pl.orgNeed[purpose]))
		if purpose == SidUseKey {
			via, _ = union(via, []string{"ec2." + pl.keyARN.Region + ".amazonaws.com"})
		}
		st := orgStatement(purpose, sid, pl.keyARN.Partition, merged, pl.scope.excluded, via)
		out[sid] = st
		pl.plan.Added[sid] = addedScopeValues(st, added)
		pl.plan.OrgAccounts[sid] = keys(pl.orgAccounts[purpose])
	}
	return out, fresh, nil
}

// orgStatementFor finds the organization statement of a purpose whose
// exclusions are the scope's (sets merge exactly only then), or names a
// new one: the base Sid, or it and the first free number.
func (pl *planner) orgStatementFor(base string) (*Statement, string) {
	used := map[string]bool{}
	for i := range pl.key.Policy.Statements {
		s := &pl.key.Policy.Statements[i]
		used[s.Sid] = true
		if !orgFamily(s.Sid, base) {
			continue
		}
		_, excluded, ok := orgStatementScope(s)
		if ex, _ := union(excluded, nil); ok && slices.Equal(ex, pl.scope.excluded) {
			return s, s.Sid
		}
	}
	if !used[base] {
		return nil, base
	}
	for n := 2; ; n++ {
		if sid := base + strconv.Itoa(n); !used[sid] {
			return nil, sid
		}
	}
}

// addedScopeValues names the added patterns as the statement writes them:
// organization ids when it limits by aws:PrincipalOrgID.
func addedScopeValues(st Statement, added []string) []string {
	for _, c := range st.Conditions {
		if c.key == "aws:principalorgid" {
			out := make([]string, 0, len(added))
			for _, a := range added {
				out = append(out, strings.TrimSuffix(a, "/*"))
			}
			return out
		}
	}
	return added
}

func appendGrant(list []Grant, g Grant) []Grant {
	for _, x := range list {
		if x.GranteePrincipal == g.GranteePrincipal {
			return list
		}
	}
	return append(list, g)
}

// mergeOwned builds the account-mode amigate statements: the existing ones
// with the needed principals and values added (never removed). It returns
// them, and the Sids of those that are new, in order.
func mergeOwned(p *Policy, keyARN ARN, need map[string]map[string]bool, grantees map[string]bool, plan *Plan) (map[string]Statement, []string) {
	existing := map[string]*Statement{}
	for i := range p.Statements {
		if OwnedSid(p.Statements[i].Sid) {
			existing[p.Statements[i].Sid] = &p.Statements[i]
		}
	}
	out := map[string]Statement{}
	var fresh []string
	for _, sid := range []string{SidUseKey, SidEC2Grants, SidAutoScalingGrants} {
		if len(need[sid]) == 0 {
			continue
		}
		old := existing[sid]
		if old == nil {
			fresh = append(fresh, sid)
		}
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
	return out, fresh
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
// replacing the statement with the same Sid in place, appending the fresh
// ones, in that order, at the end of the Statement list. Every other byte
// stays as it was.
func (p *Policy) splice(updated map[string]Statement, fresh []string) ([]byte, error) {
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
	var appended []Statement
	for _, sid := range fresh {
		if u, ok := updated[sid]; ok && !done[sid] {
			appended = append(appended, u)
		}
	}
	if len(appended) > 0 {
		edits = append(edits, p.appendEdit(appended))
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
