package keypolicy

import (
	"fmt"
	"regexp"
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
// the target's organization path is not known (or not valid), or when the
// principal is not of the target's account.
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
