package awsim

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file holds IAM: roles, their inline policies, and the policy
// simulator amigate's dry run asks what a role may do.

type roleXML struct {
	Path                     string `xml:"Path"`
	RoleName                 string `xml:"RoleName"`
	RoleID                   string `xml:"RoleId"`
	Arn                      string `xml:"Arn"`
	CreateDate               string `xml:"CreateDate"`
	AssumeRolePolicyDocument string `xml:"AssumeRolePolicyDocument"`
}

func (r *role) xml() roleXML {
	return roleXML{Path: r.path, RoleName: r.name, RoleID: roleUniqueID(r.arn), Arn: r.arn,
		CreateDate: r.created.Format(time.RFC3339), AssumeRolePolicyDocument: url.QueryEscape(r.trustPolicy)}
}

// roleUniqueID is a role's unique id: AROA and 17 letters and digits, as
// IAM makes them (derived from the ARN here, so it is stable).
func roleUniqueID(arn string) string {
	sum := sha256.Sum256([]byte(arn))
	return "AROA" + base32.StdEncoding.EncodeToString(sum[:])[:17]
}

func (s *Server) iamCreateRole(c caller, form url.Values) (any, error) {
	name, err := required(form, "RoleName")
	if err != nil {
		return nil, err
	}
	trust, err := required(form, "AssumeRolePolicyDocument")
	if err != nil {
		return nil, err
	}
	if !json.Valid([]byte(trust)) {
		return nil, errorf(http.StatusBadRequest, "MalformedPolicyDocument", "This policy contains invalid Json")
	}
	path := form.Get("Path")
	if path == "" {
		path = "/"
	}
	arn := fmt.Sprintf("arn:aws:iam::%s:role%s%s", c.account, path, name)
	for _, r := range s.world.roles {
		if r.account == c.account && r.name == name {
			return nil, errorf(http.StatusConflict, "EntityAlreadyExists", "Role with name %s already exists.", name)
		}
	}
	r := &role{arn: arn, name: name, path: path, account: c.account, trustPolicy: trust, inlinePolicies: map[string]string{}, created: s.now().UTC()}
	s.world.roles[arn] = r
	return struct {
		XMLName xml.Name `xml:"R"`
		Role    roleXML  `xml:"Role"`
	}{Role: r.xml()}, nil
}

func (s *Server) roleByName(account, name string) (*role, error) {
	for _, r := range s.world.roles {
		if r.account == account && r.name == name {
			return r, nil
		}
	}
	return nil, errorf(http.StatusNotFound, "NoSuchEntity", "The role with name %s cannot be found.", name)
}

func (s *Server) iamGetRole(c caller, form url.Values) (any, error) {
	name, err := required(form, "RoleName")
	if err != nil {
		return nil, err
	}
	r, err := s.roleByName(c.account, name)
	if err != nil {
		return nil, err
	}
	return struct {
		XMLName xml.Name `xml:"R"`
		Role    roleXML  `xml:"Role"`
	}{Role: r.xml()}, nil
}

// iamListRoles lists the caller account's roles whose path starts with
// PathPrefix, by name, a page of MaxItems (default 100) at a time with
// Marker/IsTruncated, as IAM does. An assumed role needs iam:ListRoles.
func (s *Server) iamListRoles(c caller, form url.Values) (any, error) {
	if resource := "arn:aws:iam::" + c.account + ":role/"; !s.roleMay(c, "iam:ListRoles", resource) {
		return nil, errorf(http.StatusForbidden, "AccessDenied", "User: %s is not authorized to perform: iam:ListRoles on resource: %s because no identity-based policy allows the iam:ListRoles action", c.arn, resource)
	}
	prefix := form.Get("PathPrefix")
	if prefix == "" {
		prefix = "/"
	}
	maxItems := 100
	if v := form.Get("MaxItems"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return nil, errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value '%s' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000", v)
		}
		maxItems = n
	}
	var roles []*role
	for _, r := range s.world.roles {
		if r.account == c.account && strings.HasPrefix(r.path, prefix) {
			roles = append(roles, r)
		}
	}
	sort.Slice(roles, func(i, j int) bool { return roles[i].name < roles[j].name })
	marker := form.Get("Marker")
	start := sort.Search(len(roles), func(i int) bool { return roles[i].name > marker })
	if marker == "" {
		start = 0
	}
	end := min(start+maxItems, len(roles))
	out := struct {
		XMLName     xml.Name  `xml:"R"`
		Roles       []roleXML `xml:"Roles>member"`
		IsTruncated bool      `xml:"IsTruncated"`
		Marker      string    `xml:"Marker,omitempty"`
	}{}
	for _, r := range roles[start:end] {
		out.Roles = append(out.Roles, r.xml())
	}
	if end < len(roles) {
		out.IsTruncated, out.Marker = true, roles[end-1].name
	}
	return out, nil
}

func (s *Server) iamPutRolePolicy(c caller, form url.Values) (any, error) {
	name, err := required(form, "RoleName")
	if err != nil {
		return nil, err
	}
	policyName, err := required(form, "PolicyName")
	if err != nil {
		return nil, err
	}
	doc, err := required(form, "PolicyDocument")
	if err != nil {
		return nil, err
	}
	if !json.Valid([]byte(doc)) {
		return nil, errorf(http.StatusBadRequest, "MalformedPolicyDocument", "This policy contains invalid Json")
	}
	r, err := s.roleByName(c.account, name)
	if err != nil {
		return nil, err
	}
	r.inlinePolicies[policyName] = doc
	return emptyResult{}, nil
}

func (s *Server) iamDeleteRole(c caller, form url.Values) (any, error) {
	name, err := required(form, "RoleName")
	if err != nil {
		return nil, err
	}
	r, err := s.roleByName(c.account, name)
	if err != nil {
		return nil, err
	}
	if len(r.inlinePolicies) > 0 {
		return nil, errorf(http.StatusConflict, "DeleteConflict", "Cannot delete entity, must delete policies first.")
	}
	delete(s.world.roles, r.arn)
	// A policy that named the role now shows its unique id in its place
	// (IAM User Guide, "IAM identifiers": a new role of the same name is
	// another principal).
	quoted, id := `"`+r.arn+`"`, `"`+roleUniqueID(r.arn)+`"`
	for _, k := range s.world.keys {
		k.policy = strings.ReplaceAll(k.policy, quoted, id)
	}
	return emptyResult{}, nil
}

// evalResult is one member of SimulatePrincipalPolicy's EvaluationResults.
type evalResult struct {
	EvalActionName   string `xml:"EvalActionName"`
	EvalResourceName string `xml:"EvalResourceName"`
	EvalDecision     string `xml:"EvalDecision"`
	AllowedByOrgs    bool   `xml:"OrganizationsDecisionDetail>AllowedByOrganizations"`
	// MissingContextValues are the condition keys of the statements that
	// match the action and resource, which the caller gave no value for:
	// the decision might be another with them (IAM API Reference,
	// EvaluationResult).
	MissingContextValues []string `xml:"MissingContextValues>member"`
}

// missingContext lists the condition keys, of the role's statements that
// match action and resource, that ctx has no value for.
func missingContext(role *role, action, resource string, ctx map[string][]string) []string {
	var missing []string
	seen := map[string]bool{}
	r := request{principal: role.arn, roleARN: role.arn, account: role.account, action: action, resource: resource}
	for _, doc := range role.inlinePolicies {
		for _, st := range parsePolicy(doc).Statement {
			if !st.targets(r) {
				continue
			}
			for _, c := range st.conditions {
				if _, ok := ctx[c.key]; !ok && !seen[c.key] {
					seen[c.key] = true
					missing = append(missing, c.key)
				}
			}
		}
	}
	sort.Strings(missing)
	return missing
}

// iamSimulatePrincipalPolicy evaluates a role's own (inline) policies for
// each action and resource, with the context entries given, as IAM's policy
// simulator does: allowed, explicitDeny or implicitDeny. The caller needs
// iam:SimulatePrincipalPolicy on the role; only roles of the caller's
// account can be simulated.
func (s *Server) iamSimulatePrincipalPolicy(c caller, form url.Values) (any, error) {
	source, err := required(form, "PolicySourceArn")
	if err != nil {
		return nil, err
	}
	actions := indexed(form, "ActionNames.member")
	if len(actions) == 0 {
		return nil, errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value null at 'actionNames' failed to satisfy constraint: Member must not be null")
	}
	resources := indexed(form, "ResourceArns.member")
	if len(resources) == 0 {
		resources = []string{"*"}
	}
	ctx := map[string][]string{}
	for i := 1; ; i++ {
		p := fmt.Sprintf("ContextEntries.member.%d.", i)
		name := form.Get(p + "ContextKeyName")
		if name == "" {
			break
		}
		ctx[strings.ToLower(name)] = indexed(form, p+"ContextKeyValues.member")
	}
	if !s.roleMay(c, "iam:SimulatePrincipalPolicy", source) {
		return nil, errorf(http.StatusForbidden, "AccessDenied", "User: %s is not authorized to perform: iam:SimulatePrincipalPolicy on resource: %s because no identity-based policy allows the iam:SimulatePrincipalPolicy action", c.arn, source)
	}
	role, ok := s.world.roles[source]
	if !ok || role.account != c.account {
		return nil, errorf(http.StatusNotFound, "NoSuchEntity", "The role with ARN %s cannot be found.", source)
	}
	var results []evalResult
	for _, action := range actions {
		for _, resource := range resources {
			decision := "implicitDeny"
			switch allowed, denied := s.identityAllows(request{principal: source, roleARN: source, account: role.account, action: action, resource: resource, context: ctx}); {
			case denied:
				decision = "explicitDeny"
			case allowed:
				decision = "allowed"
			}
			results = append(results, evalResult{EvalActionName: action, EvalResourceName: resource, EvalDecision: decision, AllowedByOrgs: true,
				MissingContextValues: missingContext(role, action, resource, ctx)})
		}
	}
	return struct {
		XMLName     xml.Name     `xml:"R"`
		Results     []evalResult `xml:"EvaluationResults>member"`
		IsTruncated bool         `xml:"IsTruncated"`
	}{Results: results}, nil
}
