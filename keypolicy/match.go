package keypolicy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sentinels for the literal '*' and '?' that the ${*} and ${?} policy
// variables produce inside a wildcard pattern.
const (
	literalStar  = '\uE000'
	literalQuest = '\uE001'
)

// wildcardMatch reports whether s matches pattern, where '*' matches any
// run of characters and '?' exactly one.
func wildcardMatch(pattern, s string) bool {
	if pattern == "*" {
		return true
	}
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			pr, pw := utf8.DecodeRuneInString(pattern[p:])
			sr, sw := utf8.DecodeRuneInString(s[i:])
			switch {
			case pr == '*':
				star, mark = p+pw, i
				p += pw
				continue
			case pr == '?' || pr == sr || (pr == literalStar && sr == '*') || (pr == literalQuest && sr == '?'):
				p += pw
				i += sw
				continue
			}
		}
		if star < 0 {
			return false
		}
		_, sw := utf8.DecodeRuneInString(s[mark:])
		mark += sw
		p, i = star, mark
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func hasVariable(s string) bool { return strings.Contains(s, "${") }

// substitute replaces the policy variables in s with values from the
// request context. It returns the first variable the request does not
// carry and that has no default (AWS reads it as no value), or the first
// whose key und names as undecidable; the caller decides what the text
// then matches.
func substitute(s string, ctx map[string][]string, und Undecidable, wildcard bool) (out, missing, undecided string) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), "", ""
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			b.WriteString(s)
			return b.String(), "", ""
		}
		b.WriteString(s[:i])
		expr := s[i+2 : i+j]
		s = s[i+j+1:]
		switch expr {
		case "*":
			b.WriteRune(pick(wildcard, literalStar, '*'))
			continue
		case "?":
			b.WriteRune(pick(wildcard, literalQuest, '?'))
			continue
		case "$":
			b.WriteByte('$')
			continue
		}
		key, def, hasDef := strings.Cut(expr, ",")
		key = strings.ToLower(strings.TrimSpace(key))
		if und != nil {
			if vals, ok := und.Values(key); ok {
				if len(vals) != 1 || strings.Contains(vals[0], "*") {
					return "", "", key
				}
				b.WriteString(vals[0])
				continue
			}
		}
		if vals, ok := ctx[key]; ok && len(vals) == 1 {
			b.WriteString(vals[0])
			continue
		}
		if hasDef {
			b.WriteString(strings.Trim(strings.TrimSpace(def), "'"))
			continue
		}
		return "", key, ""
	}
}

// globCovers reports whether the policy pattern p matches every value the
// pattern q stands for, where '*' in q is any text and q has no other
// wildcard. It is a sufficient test: each '*' of q is matched as a
// character only a '*' of p can absorb, and that '*' of p absorbs any text
// in its place just as well.
func globCovers(p, q string) bool {
	pr, qr := []rune(p), []rune(q)
	prev := make([]bool, len(qr)+1) // prev[j]: p[:i] matches q[:j]
	cur := make([]bool, len(qr)+1)
	prev[0] = true
	for i := range pr {
		for j := 0; j <= len(qr); j++ {
			switch {
			case pr[i] == '*':
				cur[j] = prev[j] || (j > 0 && cur[j-1])
			case j > 0 && qr[j-1] != '*':
				cur[j] = prev[j-1] && runeMatches(pr[i], qr[j-1])
			default:
				cur[j] = false
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(qr)]
}

// globsMeet reports whether some value the pattern q stands for ('*' any
// text) matches the policy pattern p.
func globsMeet(p, q string) bool {
	pr, qr := []rune(p), []rune(q)
	n, m := len(pr), len(qr)
	reach := make([]bool, (n+1)*(m+1)) // reach[i*(m+1)+j]: p[:i] and q[:j] can spell the same text
	reach[0] = true
	for i := 0; i <= n; i++ {
		for j := 0; j <= m; j++ {
			if !reach[i*(m+1)+j] {
				continue
			}
			pStar, qStar := i < n && pr[i] == '*', j < m && qr[j] == '*'
			if pStar {
				reach[(i+1)*(m+1)+j] = true // the star spells nothing more
				if j < m {
					reach[i*(m+1)+j+1] = true // the star spells q[j]
				}
			}
			if qStar {
				reach[i*(m+1)+j+1] = true
				if i < n {
					reach[(i+1)*(m+1)+j] = true
				}
			}
			if i < n && j < m && !pStar && !qStar && runeMatches(pr[i], qr[j]) {
				reach[(i+1)*(m+1)+j+1] = true
			}
		}
	}
	return reach[n*(m+1)+m]
}

// runeMatches reports whether a pattern rune (not '*') matches a character.
func runeMatches(p, s rune) bool {
	switch p {
	case '?':
		return true
	case literalStar:
		return s == '*'
	case literalQuest:
		return s == '?'
	}
	return p == s
}

func pick(cond bool, a, b rune) rune {
	if cond {
		return a
	}
	return b
}

// ARN is an Amazon Resource Name split into its parts.
type ARN struct {
	Partition, Service, Region, Account, Resource string
}

func (a ARN) String() string {
	return "arn:" + a.Partition + ":" + a.Service + ":" + a.Region + ":" + a.Account + ":" + a.Resource
}

// ParseARN splits an ARN; it checks the shape, not that the resource exists.
func ParseARN(s string) (ARN, error) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] == "" || parts[5] == "" {
		return ARN{}, fmt.Errorf("%q is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)", s)
	}
	if parts[4] != "" && !ValidAccountID(parts[4]) {
		return ARN{}, fmt.Errorf("%q: account %q is not a 12-digit account id", s, parts[4])
	}
	return ARN{Partition: parts[1], Service: parts[2], Region: parts[3], Account: parts[4], Resource: parts[5]}, nil
}

// ParseKeyARN parses the ARN of a KMS key (not an alias).
func ParseKeyARN(s string) (ARN, error) {
	a, err := ParseARN(s)
	if err != nil {
		return a, err
	}
	if a.Service != "kms" || a.Region == "" || a.Account == "" || !strings.HasPrefix(a.Resource, "key/") || len(a.Resource) == len("key/") {
		return a, fmt.Errorf("%q is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY_ID)", s)
	}
	return a, nil
}

// ParseRoleARN parses the ARN of an IAM role.
func ParseRoleARN(s string) (ARN, error) {
	a, err := ParseARN(s)
	if err != nil {
		return a, err
	}
	if a.Service != "iam" || a.Account == "" || !strings.HasPrefix(a.Resource, "role/") || strings.HasSuffix(a.Resource, "/") {
		return a, fmt.Errorf("%q is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", s)
	}
	return a, nil
}

// ParsePrincipalARN parses the ARN of an IAM role or user.
func ParsePrincipalARN(s string) (ARN, error) {
	a, err := ParseARN(s)
	if err != nil {
		return a, err
	}
	if a.Service != "iam" || a.Account == "" || !(strings.HasPrefix(a.Resource, "role/") || strings.HasPrefix(a.Resource, "user/")) || strings.HasSuffix(a.Resource, "/") {
		return a, fmt.Errorf("%q is not an IAM role or user ARN (arn:aws:iam::ACCOUNT:role/NAME or arn:aws:iam::ACCOUNT:user/NAME)", s)
	}
	return a, nil
}

// ValidAccountID reports whether s is a 12-digit AWS account id.
func ValidAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// RootARN is the ARN that stands for an account in a policy.
func RootARN(partition, account string) string {
	return "arn:" + partition + ":iam::" + account + ":root"
}

// AnyPrincipal is the principal the instance and copy paths are evaluated
// as when the target names none: an IAM role of the account that no
// statement names (a policy cannot name a role with a wildcard, so it gets
// only what the account as a whole, or everyone, is given). It is not the
// root user: launches are made by roles and users, and a Deny whose
// NotPrincipal names the account's root ARN exempts the root user alone
// (IAM User Guide, "AWS JSON policy elements: NotPrincipal"), so a verdict
// about the root would be green where no role or user could launch.
func AnyPrincipal(partition, account string) string {
	return "arn:" + partition + ":iam::" + account + ":role/" + anyRoleName
}

// anyRoleName cannot be a role's name: IAM role names have no '*'.
const anyRoleName = "*"

// anyPrincipalAccount reports whether principal is an AnyPrincipal, and its
// account.
func anyPrincipalAccount(principal string) (string, bool) {
	c := parseCaller(principal)
	return c.account, c.anyPrincipal()
}

// caller is the principal making a request, parsed once per evaluation.
type caller struct {
	arn       string
	account   string
	partition string // "" when given as an account id
	kind      callerKind
	roleName  string // for roles and their sessions
}

type callerKind int

const (
	callerOther callerKind = iota
	callerRoot
	callerRole
	callerSession
	callerUser
	callerService
)

func parseCaller(p string) caller {
	if ValidAccountID(p) {
		return caller{arn: RootARN("aws", p), account: p, kind: callerRoot}
	}
	a, err := ParseARN(p)
	if err != nil {
		if strings.HasSuffix(p, ".amazonaws.com") {
			return caller{arn: p, kind: callerService}
		}
		return caller{arn: p}
	}
	c := caller{arn: p, account: a.Account, partition: a.Partition}
	switch {
	case a.Service == "iam" && a.Resource == "root":
		c.kind = callerRoot
	case a.Service == "iam" && strings.HasPrefix(a.Resource, "role/"):
		c.kind = callerRole
		c.roleName = a.Resource[strings.LastIndexByte(a.Resource, '/')+1:]
	case a.Service == "iam" && strings.HasPrefix(a.Resource, "user/"):
		c.kind = callerUser
	case a.Service == "sts" && strings.HasPrefix(a.Resource, "assumed-role/"):
		c.kind = callerSession
		name, _, _ := strings.Cut(strings.TrimPrefix(a.Resource, "assumed-role/"), "/")
		c.roleName = name
	}
	return c
}

// anyPrincipal reports whether the caller is an AnyPrincipal.
func (c *caller) anyPrincipal() bool {
	return c.kind == callerRole && c.roleName == anyRoleName && strings.HasSuffix(c.arn, ":role/"+anyRoleName)
}

// principalMatch says how a Principal element matched a caller.
type principalMatch int

const (
	noMatch principalMatch = iota
	// matchAccount: the element names the caller's account (its id or
	// root ARN); within the key's account this delegates to IAM.
	matchAccount
	// matchDirect: the element names the caller itself, or "*".
	matchDirect
)

// awsPrincipal is one entry of a Principal's "AWS" list, parsed once.
type awsPrincipal struct {
	raw      string
	kind     awsPrincipalKind
	account  string
	roleName string
}

type awsPrincipalKind int

const (
	awsOther awsPrincipalKind = iota
	awsAnyone
	awsAccount // an account id or its root ARN
	awsRole
)

func compileAWSPrincipal(v string) awsPrincipal {
	if v == "*" {
		return awsPrincipal{raw: v, kind: awsAnyone}
	}
	if ValidAccountID(v) {
		return awsPrincipal{raw: v, kind: awsAccount, account: v}
	}
	a, err := ParseARN(v)
	if err != nil || a.Service != "iam" {
		return awsPrincipal{raw: v}
	}
	switch {
	case a.Resource == "root":
		return awsPrincipal{raw: v, kind: awsAccount, account: a.Account}
	case strings.HasPrefix(a.Resource, "role/"):
		return awsPrincipal{raw: v, kind: awsRole, account: a.Account, roleName: a.Resource[strings.LastIndexByte(a.Resource, '/')+1:]}
	}
	return awsPrincipal{raw: v}
}

func (p *Principal) compile() {
	p.aws = make([]awsPrincipal, len(p.AWS.Items))
	for i, v := range p.AWS.Items {
		p.aws[i] = compileAWSPrincipal(v)
	}
}

// match evaluates a Principal element. In a NotPrincipal element (negate),
// an account's root ARN exempts only the root user, as AWS documents, not
// every principal of the account, and a role's ARN none of its sessions.
func (p *Principal) match(c *caller, negate bool) principalMatch {
	if p.Any {
		return matchDirect
	}
	best := noMatch
	for i := range p.aws {
		if m := p.aws[i].match(c, negate); m > best {
			best = m
			if best == matchDirect {
				return best
			}
		}
	}
	if c.kind == callerService {
		for _, v := range p.Service.Items {
			if strings.EqualFold(v, c.arn) {
				return matchDirect
			}
		}
	}
	return best
}

// namesAccount reports whether the element lists the account itself (its
// id or root ARN).
func (p *Principal) namesAccount(account string) bool {
	for i := range p.aws {
		if p.aws[i].kind == awsAccount && p.aws[i].account == account {
			return true
		}
	}
	return false
}

// surelyExempts reports whether a NotPrincipal that matches the caller
// exempts it for certain (see Undecidable): the caller
// cannot have a permissions boundary (the root user, or a service-linked
// role or its session, which AWS does not let anyone give one: IAM API
// Reference, PutRolePermissionsBoundary), and the element lists the
// caller's account and, for a session, its role as well.
func (p *Principal) surelyExempts(c *caller, ctx map[string][]string) bool {
	switch c.kind {
	case callerRoot, callerService:
		return true
	case callerRole, callerSession:
		role := c.arn
		if c.kind == callerSession {
			arns := ctx["aws:principalarn"]
			if len(arns) != 1 {
				return false
			}
			role = arns[0]
		}
		if !strings.Contains(role, ":role/aws-service-role/") || !p.namesAccount(c.account) {
			return false
		}
		return c.kind == callerRole || p.namesRole(c.account, c.roleName)
	}
	return false
}

// namesRole reports whether the element lists the role (by name) of the
// account.
func (p *Principal) namesRole(account, roleName string) bool {
	for i := range p.aws {
		if e := &p.aws[i]; e.kind == awsRole && e.account == account && e.roleName == roleName {
			return true
		}
	}
	return false
}

func (e *awsPrincipal) match(c *caller, negate bool) principalMatch {
	switch {
	case e.raw == c.arn:
		return matchDirect
	case e.kind == awsAnyone:
		if c.kind == callerService {
			return noMatch
		}
		return matchDirect
	case e.kind == awsRole:
		// A role ARN names the role's sessions in Principal; in NotPrincipal
		// it exempts none of them: a session is exempted only by its own
		// ARN (IAM User Guide, "AWS JSON policy elements: NotPrincipal":
		// principals must always name a specific session).
		if e.account == c.account && e.roleName == c.roleName && (c.kind == callerRole || (c.kind == callerSession && !negate)) {
			return matchDirect
		}
	case e.kind == awsAccount && e.account == c.account:
		if c.kind == callerRoot {
			return matchDirect
		}
		if !negate {
			return matchAccount
		}
	}
	return noMatch
}

var errNoPolicy = errors.New("no key policy")
