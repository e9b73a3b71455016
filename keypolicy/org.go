package keypolicy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// The identifiers of AWS Organizations (AWS Organizations API Reference,
// Organization, Root and OrganizationalUnit: the Id patterns).
var (
	orgIDPattern  = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)
	rootIDPattern = regexp.MustCompile(`^r-[0-9a-z]{4,32}$`)
	ouIDPattern   = regexp.MustCompile(`^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$`)
)

// ParseOrgPath checks an organization path: the organization, its root
// and each organizational unit down to an account's parent, separated by
// '/', such as "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/ou-ab12-22222222/"
// (IAM User Guide, "AWS global condition context keys", aws:PrincipalOrgPaths,
// and "Understand the AWS Organizations entity path"). It returns the path
// ending in '/', as aws:PrincipalOrgPaths carries it, and the organization
// id it starts with, which is aws:PrincipalOrgID.
func ParseOrgPath(s string) (path, orgID string, err error) {
	path = s
	if !strings.HasSuffix(path, "/") {
		path += "/"
	}
	parts := strings.Split(strings.TrimSuffix(path, "/"), "/")
	switch {
	case len(parts) < 2:
		return "", "", fmt.Errorf("%q is not an organization path: want o-ORG/r-ROOT/ and the OUs down to the account, such as o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/", s)
	case !orgIDPattern.MatchString(parts[0]):
		return "", "", fmt.Errorf("%q: %q is not an organization id (o- and 10 to 32 lower-case letters or digits)", s, parts[0])
	case !rootIDPattern.MatchString(parts[1]):
		return "", "", fmt.Errorf("%q: %q is not a root id (r- and 4 to 32 lower-case letters or digits)", s, parts[1])
	}
	for _, ou := range parts[2:] {
		if !ouIDPattern.MatchString(ou) {
			return "", "", fmt.Errorf("%q: %q is not an organizational unit id (ou-ROOT-SUFFIX, such as ou-ab12-11111111)", s, ou)
		}
	}
	return path, parts[0], nil
}

// orgContext is what the requests of an account's principals carry about
// the account's place in an organization: aws:PrincipalOrgID and
// aws:PrincipalOrgPaths (one value of a multivalued key). AWS includes
// both only for a principal of an account that is a member of an
// organization (IAM User Guide, "AWS global condition context keys",
// Availability); it includes them for an IAM role, a service-linked role
// among them, since the keys describe the principal's account, and it
// forwards them on the requests a service such as EC2 makes with the
// principal's credentials (IAM User Guide, "Forward access sessions").
type orgContext struct {
	id, paths []string
}

// orgFor is the organization context of principal's requests: nil when
// the target's organization path is not known (or not valid: the keys are
// then undecidable), or when the principal is not of the target's account.
func (t Target) orgFor(principal string) *orgContext {
	if t.OrgPath == "" {
		return nil
	}
	path, id, err := ParseOrgPath(t.OrgPath)
	if err != nil || parseCaller(principal).account != t.Account {
		return nil
	}
	return &orgContext{id: []string{id}, paths: []string{path}}
}

// add writes the keys into a request context.
func (o *orgContext) add(ctx map[string][]string) {
	if o == nil {
		return
	}
	ctx["aws:principalorgid"] = o.id
	ctx["aws:principalorgpaths"] = o.paths
}

// orgKeys are the condition keys that say where the principal stands in
// an organization; a request of a principal whose organization is not
// known lacks them.
var orgKeys = map[string]bool{"aws:principalorgid": true, "aws:principalorgpaths": true}

// The statements amigate owns in organization mode (PlanOptions.Organization):
// one per purpose, as in account mode, naming {"AWS": "*"} and limited to the
// scope by condition. A scope with other exclusions gets its own statement,
// whose Sid adds a number ("amigateOrgUseKeyThroughEC22").
const (
	// SidOrgUseKey lets the scope's accounts use the key through EC2.
	SidOrgUseKey = "amigateOrgUseKeyThroughEC2"
	// SidOrgEC2Grants lets the scope's principals have EC2 create grants.
	SidOrgEC2Grants = "amigateOrgCreateGrantForEC2"
	// SidOrgAutoScalingGrants lets each account of the scope create,
	// directly, the grant for its own Auto Scaling service-linked roles.
	SidOrgAutoScalingGrants = "amigateOrgCreateGrantForAutoScaling"
)

// orgSids maps each purpose (its account-mode Sid) to its organization Sid.
var orgSids = map[string]string{SidUseKey: SidOrgUseKey, SidEC2Grants: SidOrgEC2Grants, SidAutoScalingGrants: SidOrgAutoScalingGrants}

// OrgScope names targets by their place in an AWS Organizations
// organization instead of one ARN per account: the whole organization, or
// some of its organizational units with every OU below them, minus some
// accounts.
type OrgScope struct {
	// OrgID is the organization, such as "o-a1b2c3d4e5".
	OrgID string
	// Paths are organizational units (or the root) as organization paths,
	// o-ORG/r-ROOT/ou-.../ (see ParseOrgPath); each covers its accounts
	// and those of every OU below it. Empty means the whole organization.
	Paths []string
	// ExcludedAccounts are accounts of the scope that get nothing from it.
	ExcludedAccounts []string
}

// orgScope is an OrgScope checked and normalised for one key.
type orgScope struct {
	id    string
	paths []string // each ending in '/'
	// excluded is sorted, and holds the key's own account: in it, a
	// statement naming "*" would let a principal use the key without its
	// IAM policy, where the account's root in account mode delegates to
	// IAM (AWS KMS Developer Guide, "Key policies": allowing the account).
	excluded    []string
	excludedSet map[string]bool
}

func (s *OrgScope) compile(keyAccount string) (*orgScope, error) {
	if !orgIDPattern.MatchString(s.OrgID) {
		return nil, fmt.Errorf("organization id %q is not o- and 10 to 32 lower-case letters or digits", s.OrgID)
	}
	out := &orgScope{id: s.OrgID, excludedSet: map[string]bool{keyAccount: true}}
	for _, p := range s.Paths {
		path, id, err := ParseOrgPath(p)
		if err != nil {
			return nil, err
		}
		if id != s.OrgID {
			return nil, fmt.Errorf("path %q is not in organization %s", p, s.OrgID)
		}
		out.paths = append(out.paths, path)
	}
	for _, a := range s.ExcludedAccounts {
		if !ValidAccountID(a) {
			return nil, fmt.Errorf("excluded account %q is not a 12-digit account id", a)
		}
		out.excludedSet[a] = true
	}
	out.excluded = keys(out.excludedSet)
	return out, nil
}

// covers returns the aws:PrincipalOrgPaths patterns of the scope that
// hold the target ("PATH*", or "o-ORG/*" for the whole organization), or
// nil when the scope does not cover it: its organization path is not
// known, lies outside the scope, or the account is excluded.
func (s *orgScope) covers(t Target) []string {
	if s == nil || t.OrgPath == "" || s.excludedSet[t.Account] {
		return nil
	}
	path, id, err := ParseOrgPath(t.OrgPath)
	if err != nil || id != s.id {
		return nil
	}
	if len(s.paths) == 0 {
		return []string{s.id + "/*"}
	}
	var out []string
	for _, p := range s.paths {
		if strings.HasPrefix(path, p) {
			out = append(out, p+"*")
		}
	}
	return out
}

// orgConditions limit an organization statement to its scope: the
// organizations (StringEquals aws:PrincipalOrgID) when every pattern is a
// whole organization, else the paths (ForAnyValue:StringLike
// aws:PrincipalOrgPaths: the key is multivalued); and StringNotEquals
// aws:PrincipalAccount for the excluded accounts.
func orgConditions(patterns, excluded []string) []Condition {
	var ids []string
	for _, p := range patterns {
		id, ok := strings.CutSuffix(p, "/*")
		if !ok || !orgIDPattern.MatchString(id) {
			ids = nil
			break
		}
		ids = append(ids, id)
	}
	var out []Condition
	if ids != nil {
		out = append(out, newCondition("StringEquals", "aws:PrincipalOrgID", ids))
	} else {
		out = append(out, newCondition("ForAnyValue:StringLike", "aws:PrincipalOrgPaths", patterns))
	}
	if len(excluded) > 0 {
		out = append(out, newCondition("StringNotEquals", "aws:PrincipalAccount", excluded))
	}
	return out
}

// orgStatementScope reads an organization statement's scope back: its
// patterns (an organization id read as "o-ORG/*"), its exclusions, and
// whether the scope could be read at all.
func orgStatementScope(s *Statement) (patterns, excluded []string, ok bool) {
	for _, c := range s.Conditions {
		switch {
		case c.key == "aws:principalorgid" && c.set == setNone && c.op.kind == opStringEquals && !c.op.negated && !c.ifExists:
			for _, id := range c.Values.Items {
				patterns = append(patterns, id+"/*")
			}
			ok = true
		case c.key == "aws:principalorgpaths" && c.set == setAnyValue && c.op.kind == opStringLike && !c.op.negated && !c.ifExists:
			patterns = append(patterns, c.Values.Items...)
			ok = true
		case c.key == "aws:principalaccount" && c.set == setNone && c.op.kind == opStringEquals && c.op.negated:
			excluded = append(excluded, c.Values.Items...)
		}
	}
	return patterns, excluded, ok
}

// mergePatterns adds patterns to a statement's, dropping any that a
// broader one covers (a "PREFIX/*" covers every pattern whose prefix
// starts with PREFIX/): the statement allows the union, and stays short.
func mergePatterns(old, add []string) (merged, added []string) {
	merged = append([]string(nil), old...)
	for _, q := range add {
		if slices.ContainsFunc(merged, func(p string) bool { return p == q || subsumes(p, q) }) {
			continue
		}
		var kept []string
		for _, p := range merged {
			if !subsumes(q, p) {
				kept = append(kept, p)
			}
		}
		merged = append(kept, q)
		added = append(added, q)
	}
	merged, _ = union(merged, nil)
	added, _ = union(added, nil)
	return merged, added
}

// subsumes reports whether pattern p matches every path pattern q matches,
// both being "PREFIX/*" patterns with no other wildcard.
func subsumes(p, q string) bool {
	pp, ok1 := prefixPattern(p)
	qp, ok2 := prefixPattern(q)
	return ok1 && ok2 && strings.HasPrefix(qp, pp)
}

func prefixPattern(p string) (string, bool) {
	prefix, ok := strings.CutSuffix(p, "*")
	return prefix, ok && strings.HasSuffix(prefix, "/") && !strings.ContainsAny(prefix, "*?$")
}

// orgStatement is the organization statement of a purpose: the account-mode
// statement's actions and guards, with {"AWS": "*"} limited to the scope
// by condition. The Auto Scaling grant statement limits each caller to its
// own account's Auto Scaling roles with ${aws:PrincipalAccount}, which
// only a 2012-10-17 policy substitutes.
func orgStatement(purpose, sid, partition string, patterns, excluded, viaServices []string) Statement {
	var s Statement
	switch purpose {
	case SidUseKey:
		s = useKeyStatement(nil, viaServices)
	case SidEC2Grants:
		s = ec2GrantStatement(nil)
	case SidAutoScalingGrants:
		s = autoScalingGrantStatement(nil, []string{"arn:" + partition + ":iam::${aws:PrincipalAccount}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling*"})
	}
	s.Sid = sid
	s.Principal = &Principal{AWS: Values{Items: []string{"*"}}}
	s.Principal.compile()
	s.Conditions = append(s.Conditions, orgConditions(patterns, excluded)...)
	sortConditions(s.Conditions)
	return s
}

// orgFamily reports whether sid is an organization statement of the
// purpose whose base Sid is base: the base itself, or it and a number.
func orgFamily(sid, base string) bool {
	rest, ok := strings.CutPrefix(sid, base)
	if !ok {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] < '0' || rest[i] > '9' {
			return false
		}
	}
	return true
}

// ErrOrganizationNeedsVersion2012 is returned when the organization mode
// would write its Auto Scaling grant statement into a key policy whose
// Version is not 2012-10-17: there ${aws:PrincipalAccount} is literal text
// (IAM User Guide, "IAM JSON policy elements: Version"), so the statement
// would let no one create a grant.
var ErrOrganizationNeedsVersion2012 = errors.New(`the organization mode needs a key policy whose "Version" is "2012-10-17"`)
