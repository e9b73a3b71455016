package awsim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AWS Organizations: an organization, its management account, one root, a
// tree of OUs and member accounts with a status, served over JSON 1.1 as
// the Organizations API Reference describes it. What an organization means
// to the rest of the world: the aws:PrincipalOrgID and
// aws:PrincipalOrgPaths condition keys of its members' KMS requests
// (authz.go), AMIs shared with it or one of its OUs (ec2images.go), and a
// SUSPENDED member whose calls are refused (refuseSuspended).

// Account statuses (the Account's Status; its State says the same for
// these three).
const (
	accountActive         = "ACTIVE"
	accountSuspended      = "SUSPENDED"
	accountPendingClosure = "PENDING_CLOSURE"
)

// validStatus: an account's status is one of the three.
func validStatus(status string) bool {
	return status == accountActive || status == accountSuspended || status == accountPendingClosure
}

// validFeatureSet: an organization's feature set is ALL or
// CONSOLIDATED_BILLING.
func validFeatureSet(fs string) bool { return fs == "ALL" || fs == "CONSOLIDATED_BILLING" }

// maxOUDepth is how deep OUs nest under the root: five levels while
// service control policies are enabled (Organizations User Guide, quotas;
// CreateOrganizationalUnit).
const maxOUDepth = 5

// orgPageSize is the default and the largest page of every List operation
// served here (MaxResults: 1 to 20 in the API model).
const orgPageSize = 20

type organization struct {
	id, management string
	featureSet     string // ALL or CONSOLIDATED_BILLING
	rootID         string
	// delegated are the member accounts registered as a delegated
	// administrator (for some service): they may read the organization.
	delegated map[string]bool
}

// orgUnit is the root (parentID "") or an OU.
type orgUnit struct {
	id, name, orgID, parentID string
	seq                       int
}

type orgAccount struct {
	id, name, email string
	status          string
	orgID, parentID string
	joinedMethod    string // CREATED or INVITED
	joined          time.Time
	seq             int
}

// accountCreation is a CreateAccount request, as DescribeCreateAccountStatus
// reports it.
type accountCreation struct {
	id, orgID, name, accountID string
	requested                  time.Time
}

var (
	orgIDRE  = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)
	rootIDRE = regexp.MustCompile(`^r-[0-9a-z]{4,32}$`)
	ouIDRE   = regexp.MustCompile(`^ou-([0-9a-z]{4,32})-[a-z0-9]{8,32}$`)
	emailRE  = regexp.MustCompile(`^[^\s@]+@[^\s@]+\.[^\s@]+$`)
)

func (o *organization) arn() string {
	return "arn:aws:organizations::" + o.management + ":organization/" + o.id
}

func (o *organization) accountARN(account string) string {
	return "arn:aws:organizations::" + o.management + ":account/" + o.id + "/" + account
}

func (o *organization) unitARN(u *orgUnit) string {
	if u.parentID == "" {
		return "arn:aws:organizations::" + o.management + ":root/" + o.id + "/" + u.id
	}
	return "arn:aws:organizations::" + o.management + ":ou/" + o.id + "/" + u.id
}

// unitPath is the unit's path in the organization: o-…/r-…/ou-…/…/, from
// the organization through the root down to and including the unit. It is
// the aws:PrincipalOrgPaths value of an account directly in the unit (IAM
// User Guide, "AWS global condition context keys", aws:PrincipalOrgPaths).
func (s *Server) unitPath(u *orgUnit) string {
	var ids []string
	for ; u != nil; u = s.world.orgUnits[u.parentID] {
		ids = append(ids, u.id)
	}
	var b strings.Builder
	b.WriteString(s.world.orgUnits[ids[len(ids)-1]].orgID + "/")
	for i := len(ids) - 1; i >= 0; i-- {
		b.WriteString(ids[i] + "/")
	}
	return b.String()
}

// unitDepth is 0 for the root, 1 for an OU in the root, ...
func (s *Server) unitDepth(u *orgUnit) int {
	d := 0
	for u.parentID != "" {
		u = s.world.orgUnits[u.parentID]
		d++
	}
	return d
}

// memberOf returns the organization the account belongs to, if any.
func (s *Server) memberOf(account string) (*organization, *orgAccount) {
	a, ok := s.world.orgAccounts[account]
	if !ok {
		return nil, nil
	}
	return s.world.orgs[a.orgID], a
}

// accountSuspended reports whether AWS has restricted the account's access
// (an organization member with status SUSPENDED).
func (s *Server) accountSuspended(account string) bool {
	a, ok := s.world.orgAccounts[account]
	return ok && a.status == accountSuspended
}

// withinUnit reports whether the account sits in the unit or below it.
func (s *Server) withinUnit(a *orgAccount, unitID string) bool {
	for id := a.parentID; id != ""; id = s.world.orgUnits[id].parentID {
		if id == unitID {
			return true
		}
	}
	return false
}

// principalOrgKeys adds aws:PrincipalOrgID and aws:PrincipalOrgPaths to a
// request context for a principal of the account, when the account is a
// member of an organization; they are absent otherwise (IAM User Guide,
// "AWS global condition context keys": both are included only when the
// principal is a member of an organization). aws:PrincipalOrgPaths is
// multivalued; a principal's account has one path, to its parent OU. A
// role of the account, service-linked roles included, is a principal of
// the account; service principals never call KMS in the simulator.
func (s *Server) principalOrgKeys(account string, ctx map[string][]string) {
	o, a := s.memberOf(account)
	if o == nil {
		return
	}
	ctx["aws:principalorgid"] = []string{o.id}
	ctx["aws:principalorgpaths"] = []string{s.unitPath(s.world.orgUnits[a.parentID])}
}

// orgCaller is who may call an Organizations operation.
type orgCaller int

const (
	anyMember            orgCaller = iota // DescribeOrganization
	managementOrDelegate                  // the List and Describe calls that read the organization
	managementOnly                        // the calls that change it
)

func orgAccessDenied() error {
	return errorf(http.StatusBadRequest, "AccessDeniedException", "You don't have permissions to access this resource.")
}

func invalidInput(reason, format string, args ...any) error {
	e := errorf(http.StatusBadRequest, "InvalidInputException", format, args...)
	e.reason = reason
	return e
}

// orgFor returns the caller's organization once the call is allowed: a
// role needs the action in its own policies (resource names the entity the
// call is about, "*" when there is none), the account must be a member
// (AWSOrganizationsNotInUseException), and the read and write calls come
// from the management account or, for reads, a delegated administrator
// (Organizations API Reference, each operation's "You can only call this
// operation from ..."). An account's root user needs no policy.
func (s *Server) orgFor(c caller, action string, who orgCaller, resource func(*organization) string) (*organization, error) {
	o, _ := s.memberOf(c.account)
	res := "*"
	if o != nil && resource != nil {
		res = resource(o)
	}
	if !s.roleMay(c, "organizations:"+action, res) {
		return nil, orgAccessDenied()
	}
	if o == nil {
		return nil, errorf(http.StatusBadRequest, "AWSOrganizationsNotInUseException", "Your account is not a member of an organization.")
	}
	switch {
	case c.account == o.management, who == anyMember:
	case who == managementOrDelegate && o.delegated[c.account]:
	default:
		return nil, orgAccessDenied()
	}
	return o, nil
}

// parentParam resolves a ParentId of the caller's organization: its root
// or one of its OUs.
func (s *Server) parentParam(o *organization, in map[string]json.RawMessage, name, notFoundCode string) (*orgUnit, error) {
	id, err := orgStr(in, name, true)
	if err != nil {
		return nil, err
	}
	if !rootIDRE.MatchString(id) && !ouIDRE.MatchString(id) {
		return nil, invalidInput("INVALID_PATTERN", "You provided a value that does not match the required pattern for %s.", name)
	}
	u, ok := s.world.orgUnits[id]
	if !ok || u.orgID != o.id {
		msg := "We can't find a root or OU with the ParentId that you specified."
		if notFoundCode == "DestinationParentNotFoundException" {
			msg = "We can't find the destination container (a root or OU) with the ParentId that you specified."
		} else if notFoundCode == "SourceParentNotFoundException" {
			msg = "We can't find a source root or OU with the ParentId that you specified."
		}
		return nil, errorf(http.StatusBadRequest, notFoundCode, "%s", msg)
	}
	return u, nil
}

// orgStr reads a string parameter; Organizations reports a missing one as
// InvalidInputException (INPUT_REQUIRED).
func orgStr(in map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := in[name]
	var v string
	if ok && json.Unmarshal(raw, &v) != nil {
		return "", errorf(http.StatusBadRequest, "SerializationException", "%s must be a string", name)
	}
	if required && v == "" {
		return "", invalidInput("INPUT_REQUIRED", "You must specify a value for %s.", name)
	}
	return v, nil
}

// orgPage cuts one page out of items (in their listing order, each with a
// key that orders it), from the NextToken of the previous page, of
// MaxResults items (1 to 20, 20 by default). The token names the last item
// returned, so a page never repeats or skips an item that stays.
func orgPage[T any](in map[string]json.RawMessage, op string, items []T, key func(T) int) ([]T, string, error) {
	size := orgPageSize
	if raw, ok := in["MaxResults"]; ok {
		if err := json.Unmarshal(raw, &size); err != nil {
			return nil, "", errorf(http.StatusBadRequest, "SerializationException", "MaxResults must be an integer")
		}
		if size < 1 {
			return nil, "", invalidInput("MIN_VALUE_EXCEEDED", "MaxResults must be at least 1.")
		}
		if size > orgPageSize {
			return nil, "", invalidInput("MAX_VALUE_EXCEEDED", "MaxResults must be at most %d.", orgPageSize)
		}
	}
	token, err := orgStr(in, "NextToken", false)
	if err != nil {
		return nil, "", err
	}
	after := -1
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		name, seq, found := strings.Cut(string(b), ":")
		n, convErr := strconv.Atoi(seq)
		if err != nil || !found || name != op || convErr != nil {
			return nil, "", invalidInput("INVALID_NEXT_TOKEN", "The NextToken is not one that %s returned.", op)
		}
		after = n
	}
	start := sort.Search(len(items), func(i int) bool { return key(items[i]) > after })
	items = items[start:]
	if len(items) <= size {
		return items, "", nil
	}
	items = items[:size]
	next := base64.RawURLEncoding.EncodeToString([]byte(op + ":" + strconv.Itoa(key(items[size-1]))))
	return items, next, nil
}

// The answers' shapes (Organizations API Reference, data types).

type organizationJSON struct {
	ID                   string           `json:"Id"`
	Arn                  string           `json:"Arn"`
	FeatureSet           string           `json:"FeatureSet"`
	MasterAccountArn     string           `json:"MasterAccountArn"`
	MasterAccountID      string           `json:"MasterAccountId"`
	MasterAccountEmail   string           `json:"MasterAccountEmail"`
	AvailablePolicyTypes []policyTypeJSON `json:"AvailablePolicyTypes"`
}

type policyTypeJSON struct {
	Type   string `json:"Type"`
	Status string `json:"Status"`
}

type accountJSON struct {
	ID              string  `json:"Id"`
	Arn             string  `json:"Arn"`
	Email           string  `json:"Email"`
	Name            string  `json:"Name"`
	Status          string  `json:"Status"`
	State           string  `json:"State"`
	JoinedMethod    string  `json:"JoinedMethod"`
	JoinedTimestamp float64 `json:"JoinedTimestamp"`
}

type unitJSON struct {
	ID          string           `json:"Id"`
	Arn         string           `json:"Arn"`
	Name        string           `json:"Name"`
	Path        string           `json:"Path,omitempty"`
	PolicyTypes []policyTypeJSON `json:"PolicyTypes,omitempty"`
}

type childJSON struct {
	ID   string `json:"Id"`
	Type string `json:"Type"`
}

// policyTypes are the policy types enabled in the root: service control
// policies in an organization with all features (CreateOrganization).
func (o *organization) policyTypes() []policyTypeJSON {
	if o.featureSet != "ALL" {
		return []policyTypeJSON{}
	}
	return []policyTypeJSON{{Type: "SERVICE_CONTROL_POLICY", Status: "ENABLED"}}
}

func (s *Server) orgJSON(o *organization) organizationJSON {
	m := s.world.orgAccounts[o.management]
	return organizationJSON{ID: o.id, Arn: o.arn(), FeatureSet: o.featureSet, MasterAccountArn: o.accountARN(o.management), MasterAccountID: o.management,
		MasterAccountEmail: m.email, AvailablePolicyTypes: o.policyTypes()}
}

func accountToJSON(o *organization, a *orgAccount) accountJSON {
	return accountJSON{ID: a.id, Arn: o.accountARN(a.id), Email: a.email, Name: a.name, Status: a.status, State: a.status,
		JoinedMethod: a.joinedMethod, JoinedTimestamp: epoch(a.joined)}
}

func (s *Server) unitToJSON(o *organization, u *orgUnit) unitJSON {
	x := unitJSON{ID: u.id, Arn: o.unitARN(u), Name: u.name}
	if u.parentID == "" {
		x.PolicyTypes = o.policyTypes()
	} else {
		x.Path = s.unitPath(u)
	}
	return x
}

// accountsOf lists the organization's accounts (those directly in parent
// when it is not ""), in the order they joined.
func (s *Server) accountsOf(o *organization, parent string) []*orgAccount {
	var out []*orgAccount
	for _, a := range s.world.orgAccounts {
		if a.orgID == o.id && (parent == "" || a.parentID == parent) {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// unitsIn lists the OUs directly in the parent, in the order they were
// made.
func (s *Server) unitsIn(parent string) []*orgUnit {
	var out []*orgUnit
	for _, u := range s.world.orgUnits {
		if u.parentID == parent {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

func accountSeq(a *orgAccount) int { return a.seq }
func unitSeq(u *orgUnit) int       { return u.seq }

func (s *Server) nextOrgSeq() int {
	s.world.orgSeq++
	return s.world.orgSeq
}

// organizationsOps are the Organizations operations.
var organizationsOps = map[string]jsonOp{
	"DescribeOrganization":             {false, (*Server).orgDescribeOrganization},
	"ListRoots":                        {false, (*Server).orgListRoots},
	"ListAccounts":                     {false, (*Server).orgListAccounts},
	"ListAccountsForParent":            {false, (*Server).orgListAccountsForParent},
	"ListOrganizationalUnitsForParent": {false, (*Server).orgListUnitsForParent},
	"ListChildren":                     {false, (*Server).orgListChildren},
	"ListParents":                      {false, (*Server).orgListParents},
	"DescribeAccount":                  {false, (*Server).orgDescribeAccount},
	"DescribeOrganizationalUnit":       {false, (*Server).orgDescribeUnit},
	"DescribeCreateAccountStatus":      {false, (*Server).orgDescribeCreateAccountStatus},
	"CreateOrganization":               {true, (*Server).orgCreateOrganization},
	"CreateOrganizationalUnit":         {true, (*Server).orgCreateUnit},
	"CreateAccount":                    {true, (*Server).orgCreateAccount},
	"MoveAccount":                      {true, (*Server).orgMoveAccount},
	"RemoveAccountFromOrganization":    {true, (*Server).orgRemoveAccount},
}

func (s *Server) orgDescribeOrganization(c caller, _ map[string]json.RawMessage) (any, error) {
	o, err := s.orgFor(c, "DescribeOrganization", anyMember, nil)
	if err != nil {
		return nil, err
	}
	return map[string]any{"Organization": s.orgJSON(o)}, nil
}

func (s *Server) orgListRoots(c caller, in map[string]json.RawMessage) (any, error) {
	o, err := s.orgFor(c, "ListRoots", managementOrDelegate, nil)
	if err != nil {
		return nil, err
	}
	roots, next, err := orgPage(in, "ListRoots", []*orgUnit{s.world.orgUnits[o.rootID]}, unitSeq)
	if err != nil {
		return nil, err
	}
	out := []unitJSON{}
	for _, r := range roots {
		out = append(out, s.unitToJSON(o, r))
	}
	return pageResult("Roots", out, next), nil
}

// pageResult is a List answer: the items under name, and NextToken when
// there are more.
func pageResult[T any](name string, items []T, next string) map[string]any {
	out := map[string]any{name: items}
	if next != "" {
		out["NextToken"] = next
	}
	return out
}

func (s *Server) listAccounts(o *organization, in map[string]json.RawMessage, op, parent string) (any, error) {
	accounts, next, err := orgPage(in, op, s.accountsOf(o, parent), accountSeq)
	if err != nil {
		return nil, err
	}
	out := []accountJSON{}
	for _, a := range accounts {
		out = append(out, accountToJSON(o, a))
	}
	return pageResult("Accounts", out, next), nil
}

func (s *Server) orgListAccounts(c caller, in map[string]json.RawMessage) (any, error) {
	o, err := s.orgFor(c, "ListAccounts", managementOrDelegate, nil)
	if err != nil {
		return nil, err
	}
	return s.listAccounts(o, in, "ListAccounts", "")
}

// parentARN names, for IAM, the parent a request is about.
func (s *Server) parentARN(in map[string]json.RawMessage, name string) func(*organization) string {
	return func(o *organization) string {
		id, _ := orgStr(in, name, false)
		if u, ok := s.world.orgUnits[id]; ok && u.orgID == o.id {
			return o.unitARN(u)
		}
		return "*"
	}
}

// orgListAccountsForParent lists the accounts directly in a root or OU
// (not those of its child OUs).
func (s *Server) orgListAccountsForParent(c caller, in map[string]json.RawMessage) (any, error) {
	o, err := s.orgFor(c, "ListAccountsForParent", managementOrDelegate, s.parentARN(in, "ParentId"))
	if err != nil {
		return nil, err
	}
	parent, err := s.parentParam(o, in, "ParentId", "ParentNotFoundException")
	if err != nil {
		return nil, err
	}
	return s.listAccounts(o, in, "ListAccountsForParent", parent.id)
}

func (s *Server) orgListUnitsForParent(c caller, in map[string]json.RawMessage) (any, error) {
	o, err := s.orgFor(c, "ListOrganizationalUnitsForParent", managementOrDelegate, s.parentARN(in, "ParentId"))
	if err != nil {
		return nil, err
	}
	parent, err := s.parentParam(o, in, "ParentId", "ParentNotFoundException")
	if err != nil {
		return nil, err
	}
	units, next, err := orgPage(in, "ListOrganizationalUnitsForParent", s.unitsIn(parent.id), unitSeq)
	if err != nil {
		return nil, err
	}
	out := []unitJSON{}
	for _, u := range units {
		out = append(out, s.unitToJSON(o, u))
	}
	return pageResult("OrganizationalUnits", out, next), nil
}

func (s *Server) orgListChildren(c caller, in map[string]json.RawMessage) (any, error) {
	o, err := s.orgFor(c, "ListChildren", managementOrDelegate, s.parentARN(in, "ParentId"))
	if err != nil {
		return nil, err
	}
	childType, err := orgStr(in, "ChildType", true)
	if err != nil {
		return nil, err
	}
	if childType != "ACCOUNT" && childType != "ORGANIZATIONAL_UNIT" {
		return nil, invalidInput("INVALID_ENUM", "ChildType must be ACCOUNT or ORGANIZATIONAL_UNIT.")
	}
	parent, err := s.parentParam(o, in, "ParentId", "ParentNotFoundException")
	if err != nil {
		return nil, err
	}
	out := []childJSON{}
	var next string
	if childType == "ACCOUNT" {
		var accounts []*orgAccount
		if accounts, next, err = orgPage(in, "ListChildren", s.accountsOf(o, parent.id), accountSeq); err != nil {
			return nil, err
		}
		for _, a := range accounts {
			out = append(out, childJSON{ID: a.id, Type: childType})
		}
	} else {
		var units []*orgUnit
		if units, next, err = orgPage(in, "ListChildren", s.unitsIn(parent.id), unitSeq); err != nil {
			return nil, err
		}
		for _, u := range units {
			out = append(out, childJSON{ID: u.id, Type: childType})
		}
	}
	return pageResult("Children", out, next), nil
}

// orgChild finds an account or OU of o (a root is no one's child): its ARN
// and its parent's id, or "" and "".
func (s *Server) orgChild(o *organization, id string) (arn, parentID string) {
	if a, ok := s.world.orgAccounts[id]; ok && a.orgID == o.id {
		return o.accountARN(id), a.parentID
	}
	if u, ok := s.world.orgUnits[id]; ok && u.orgID == o.id && u.parentID != "" {
		return o.unitARN(u), u.parentID
	}
	return "", ""
}

// orgListParents names the one parent (root or OU) of an account or OU.
func (s *Server) orgListParents(c caller, in map[string]json.RawMessage) (any, error) {
	childARN := func(o *organization) string {
		id, _ := orgStr(in, "ChildId", false)
		if arn, _ := s.orgChild(o, id); arn != "" {
			return arn
		}
		return "*"
	}
	o, err := s.orgFor(c, "ListParents", managementOrDelegate, childARN)
	if err != nil {
		return nil, err
	}
	id, err := orgStr(in, "ChildId", true)
	if err != nil {
		return nil, err
	}
	if !validAccount(id) && !ouIDRE.MatchString(id) {
		return nil, invalidInput("INVALID_PATTERN", "You provided a value that does not match the required pattern for ChildId.")
	}
	_, parentID := s.orgChild(o, id)
	if parentID == "" {
		return nil, errorf(http.StatusBadRequest, "ChildNotFoundException", "We can't find an organizational unit (OU) or AWS account with the ChildId that you specified.")
	}
	parentType := "ORGANIZATIONAL_UNIT"
	if s.world.orgUnits[parentID].parentID == "" {
		parentType = "ROOT"
	}
	parents, next, err := orgPage(in, "ListParents", []childJSON{{ID: parentID, Type: parentType}}, func(childJSON) int { return 0 })
	if err != nil {
		return nil, err
	}
	return pageResult("Parents", parents, next), nil
}

// memberParam resolves an AccountId of a member of the caller's
// organization.
func (s *Server) memberParam(o *organization, in map[string]json.RawMessage) (*orgAccount, error) {
	id, err := orgStr(in, "AccountId", true)
	if err != nil {
		return nil, err
	}
	if !validAccount(id) {
		return nil, invalidInput("INVALID_PATTERN", "You provided a value that does not match the required pattern for AccountId.")
	}
	a, ok := s.world.orgAccounts[id]
	if !ok || a.orgID != o.id {
		return nil, errorf(http.StatusBadRequest, "AccountNotFoundException", "You specified an account that doesn't exist.")
	}
	return a, nil
}

func accountARNParam(in map[string]json.RawMessage) func(*organization) string {
	return func(o *organization) string {
		if id, _ := orgStr(in, "AccountId", false); validAccount(id) {
			return o.accountARN(id)
		}
		return "*"
	}
}

func (s *Server) orgDescribeAccount(c caller, in map[string]json.RawMessage) (any, error) {
	o, err := s.orgFor(c, "DescribeAccount", managementOrDelegate, accountARNParam(in))
	if err != nil {
		return nil, err
	}
	a, err := s.memberParam(o, in)
	if err != nil {
		return nil, err
	}
	return map[string]any{"Account": accountToJSON(o, a)}, nil
}

func (s *Server) orgDescribeUnit(c caller, in map[string]json.RawMessage) (any, error) {
	o, err := s.orgFor(c, "DescribeOrganizationalUnit", managementOrDelegate, s.parentARN(in, "OrganizationalUnitId"))
	if err != nil {
		return nil, err
	}
	id, err := orgStr(in, "OrganizationalUnitId", true)
	if err != nil {
		return nil, err
	}
	if !ouIDRE.MatchString(id) {
		return nil, invalidInput("INVALID_PATTERN", "You provided a value that does not match the required pattern for OrganizationalUnitId.")
	}
	u, ok := s.world.orgUnits[id]
	if !ok || u.orgID != o.id {
		return nil, errorf(http.StatusBadRequest, "OrganizationalUnitNotFoundException", "We can't find an OU with the OrganizationalUnitId that you specified.")
	}
	return map[string]any{"OrganizationalUnit": s.unitToJSON(o, u)}, nil
}

// orgCreateOrganization makes the caller's account the management account
// of a new organization, with one root ("Root") holding it.
func (s *Server) orgCreateOrganization(c caller, in map[string]json.RawMessage) (any, error) {
	if !s.roleMay(c, "organizations:CreateOrganization", "*") {
		return nil, orgAccessDenied()
	}
	featureSet, err := orgStr(in, "FeatureSet", false)
	if err != nil {
		return nil, err
	}
	if featureSet == "" {
		featureSet = "ALL"
	}
	if !validFeatureSet(featureSet) {
		return nil, invalidInput("INVALID_ENUM", "FeatureSet must be ALL or CONSOLIDATED_BILLING.")
	}
	if o, _ := s.memberOf(c.account); o != nil {
		return nil, errorf(http.StatusBadRequest, "AlreadyInOrganizationException", "The AWS account is already a member of an organization.")
	}
	o := s.newOrganization("", "", c.account, featureSet)
	s.addAccount(o, s.world.orgUnits[o.rootID], c.account, "", "", accountActive, "INVITED")
	return map[string]any{"Organization": s.orgJSON(o)}, nil
}

// newOrganization makes an organization and its root (ids generated when
// "").
func (s *Server) newOrganization(id, rootID, management, featureSet string) *organization {
	if id == "" {
		id = newID("o-", 5) // 10 of o-[a-z0-9]{10,32}, as AWS makes them
	}
	if rootID == "" {
		rootID = newID("r-", 2) // 4 of r-[0-9a-z]{4,32}
	}
	o := &organization{id: id, management: management, featureSet: featureSet, rootID: rootID, delegated: map[string]bool{}}
	s.world.orgs[id] = o
	s.world.orgUnits[rootID] = &orgUnit{id: rootID, name: "Root", orgID: id, seq: s.nextOrgSeq()}
	return o
}

// newUnit makes an OU in parent (its id generated when ""): ou-, the
// root's id without r-, and 8 more characters.
func (s *Server) newUnit(o *organization, parent *orgUnit, id, name string) *orgUnit {
	if id == "" {
		id = newID("ou-"+strings.TrimPrefix(o.rootID, "r-")+"-", 4) // 8 of ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}
	}
	u := &orgUnit{id: id, name: name, orgID: o.id, parentID: parent.id, seq: s.nextOrgSeq()}
	s.world.orgUnits[id] = u
	return u
}

// addAccount makes the account a member of the organization, in parent.
// Its name and email default to ones made from its id: the simulator does
// not know what an account was signed up with.
func (s *Server) addAccount(o *organization, parent *orgUnit, id, name, email, status, joinedMethod string) *orgAccount {
	if name == "" {
		name = "Account " + id
	}
	if email == "" {
		email = id + "@example.com"
	}
	a := &orgAccount{id: id, name: name, email: email, status: status, orgID: o.id, parentID: parent.id, joinedMethod: joinedMethod,
		joined: s.now().UTC(), seq: s.nextOrgSeq()}
	s.world.orgAccounts[id] = a
	return a
}

func (s *Server) orgCreateUnit(c caller, in map[string]json.RawMessage) (any, error) {
	o, err := s.orgFor(c, "CreateOrganizationalUnit", managementOnly, s.parentARN(in, "ParentId"))
	if err != nil {
		return nil, err
	}
	name, err := orgStr(in, "Name", true)
	if err != nil {
		return nil, err
	}
	if len(name) > 128 {
		return nil, invalidInput("MAX_LENGTH_EXCEEDED", "Name must be at most 128 characters.")
	}
	parent, err := s.parentParam(o, in, "ParentId", "ParentNotFoundException")
	if err != nil {
		return nil, err
	}
	for _, u := range s.unitsIn(parent.id) {
		if u.name == name {
			return nil, errorf(http.StatusBadRequest, "DuplicateOrganizationalUnitException", "An OU with the same name already exists.")
		}
	}
	if s.unitDepth(parent) >= maxOUDepth {
		e := errorf(http.StatusBadRequest, "ConstraintViolationException", "You attempted to create an OU tree that is too many levels deep.")
		e.reason = "OU_DEPTH_LIMIT_EXCEEDED"
		return nil, e
	}
	u := s.newUnit(o, parent, "", name)
	return map[string]any{"OrganizationalUnit": s.unitToJSON(o, u)}, nil
}

// orgCreateAccount makes a new account in the organization's root, with
// the role (RoleName, OrganizationAccountAccessRole by default) that lets
// the management account administer it. AWS makes the account
// asynchronously: the answer says IN_PROGRESS, and
// DescribeCreateAccountStatus says SUCCEEDED with the account's id.
func (s *Server) orgCreateAccount(c caller, in map[string]json.RawMessage) (any, error) {
	o, err := s.orgFor(c, "CreateAccount", managementOnly, nil)
	if err != nil {
		return nil, err
	}
	email, err := orgStr(in, "Email", true)
	if err != nil {
		return nil, err
	}
	if len(email) < 6 || len(email) > 64 || !emailRE.MatchString(email) {
		return nil, invalidInput("INVALID_PATTERN", "You provided a value that does not match the required pattern for Email.")
	}
	name, err := orgStr(in, "AccountName", true)
	if err != nil {
		return nil, err
	}
	roleName, err := orgStr(in, "RoleName", false)
	if err != nil {
		return nil, err
	}
	if roleName == "" {
		roleName = "OrganizationAccountAccessRole"
	}
	if strings.HasPrefix(roleName, "AWSServiceRoleFor") {
		return nil, invalidInput("INVALID_ROLE_NAME", "A role name can't begin with the reserved prefix AWSServiceRoleFor.")
	}
	id := ""
	for id == "" || s.world.orgAccounts[id] != nil {
		n, _ := rand.Int(rand.Reader, big.NewInt(899_999_999_999))
		id = strconv.FormatInt(n.Int64()+100_000_000_000, 10)
	}
	s.addAccount(o, s.world.orgUnits[o.rootID], id, name, email, accountActive, "CREATED")
	arn := "arn:aws:iam::" + id + ":role/" + roleName
	s.world.roles[arn] = &role{arn: arn, name: roleName, path: "/", account: id, created: s.now().UTC(),
		trustPolicy:    `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + o.management + `:root"},"Action":"sts:AssumeRole"}]}`,
		inlinePolicies: map[string]string{"AdministratorAccess": `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`}}
	req := &accountCreation{id: "car-" + newID("", 16), orgID: o.id, name: name, accountID: id, requested: s.now().UTC()}
	s.world.accountCreates[req.id] = req
	return map[string]any{"CreateAccountStatus": map[string]any{"Id": req.id, "AccountName": name, "State": "IN_PROGRESS",
		"RequestedTimestamp": epoch(req.requested)}}, nil
}

func (s *Server) orgDescribeCreateAccountStatus(c caller, in map[string]json.RawMessage) (any, error) {
	o, err := s.orgFor(c, "DescribeCreateAccountStatus", managementOrDelegate, nil)
	if err != nil {
		return nil, err
	}
	id, err := orgStr(in, "CreateAccountRequestId", true)
	if err != nil {
		return nil, err
	}
	req, ok := s.world.accountCreates[id]
	if !ok || req.orgID != o.id {
		return nil, errorf(http.StatusBadRequest, "CreateAccountStatusNotFoundException", "We can't find a create account request with the CreateAccountRequestId that you specified.")
	}
	return map[string]any{"CreateAccountStatus": map[string]any{"Id": req.id, "AccountName": req.name, "State": "SUCCEEDED",
		"AccountId": req.accountID, "RequestedTimestamp": epoch(req.requested), "CompletedTimestamp": epoch(req.requested)}}, nil
}

// orgMoveAccount moves a member from its parent (SourceParentId) to
// another root or OU of the organization.
func (s *Server) orgMoveAccount(c caller, in map[string]json.RawMessage) (any, error) {
	o, err := s.orgFor(c, "MoveAccount", managementOnly, accountARNParam(in))
	if err != nil {
		return nil, err
	}
	a, err := s.memberParam(o, in)
	if err != nil {
		return nil, err
	}
	src, err := s.parentParam(o, in, "SourceParentId", "SourceParentNotFoundException")
	if err != nil {
		return nil, err
	}
	dst, err := s.parentParam(o, in, "DestinationParentId", "DestinationParentNotFoundException")
	if err != nil {
		return nil, err
	}
	if a.parentID != src.id {
		return nil, errorf(http.StatusBadRequest, "SourceParentNotFoundException", "We can't find a source root or OU with the ParentId that you specified.")
	}
	if dst.id == a.parentID {
		return nil, errorf(http.StatusBadRequest, "DuplicateAccountException", "That account is already present in the specified destination.")
	}
	a.parentID = dst.id
	return map[string]any{}, nil
}

// orgRemoveAccount takes a member out of the organization; the management
// account cannot leave it, nor a delegated administrator before it is
// deregistered.
func (s *Server) orgRemoveAccount(c caller, in map[string]json.RawMessage) (any, error) {
	o, err := s.orgFor(c, "RemoveAccountFromOrganization", managementOnly, accountARNParam(in))
	if err != nil {
		return nil, err
	}
	a, err := s.memberParam(o, in)
	if err != nil {
		return nil, err
	}
	if a.id == o.management {
		return nil, errorf(http.StatusBadRequest, "MasterCannotLeaveOrganizationException", "You can't remove the management account from an organization.")
	}
	if o.delegated[a.id] {
		e := errorf(http.StatusBadRequest, "ConstraintViolationException", "You attempted to remove an account that is registered as a delegated administrator.")
		e.reason = "CANNOT_REMOVE_DELEGATED_ADMINISTRATOR_FROM_ORG"
		return nil, e
	}
	delete(s.world.orgAccounts, a.id)
	return map[string]any{}, nil
}

// refuseSuspended answers a call from a SUSPENDED account: AWS has
// restricted its access and the account is unusable (Organizations User
// Guide, "Monitor the state of your AWS accounts"). AWS does not document
// the error each service then gives; EC2's list of common errors has
// Blocked ("Your account is currently blocked"), and the other services
// answer with their access-denied error here.
func (s *Server) refuseSuspended(c caller) *apiError {
	s.mu.Lock()
	suspended := s.accountSuspended(c.account)
	s.mu.Unlock()
	if !suspended {
		return nil
	}
	msg := fmt.Sprintf("The account %s is suspended: AWS has restricted its access.", c.account)
	switch c.service {
	case "ec2":
		return errorf(http.StatusForbidden, "Blocked", "%s", msg)
	case "kms", "cloudtrail", "organizations":
		return errorf(http.StatusBadRequest, "AccessDeniedException", "%s", msg)
	default:
		return errorf(http.StatusForbidden, "AccessDenied", "%s", msg)
	}
}

// Organization is an organization of the simulated world as a test sees
// it: the ids and ARNs that key policies and launch permissions name.
type Organization struct {
	ID, ARN           string
	ManagementAccount string
	Root              OrganizationalUnit
	// OUs are the organization's OUs by their path of names from the
	// root: "prod", "prod/web".
	OUs map[string]OrganizationalUnit
	// Accounts are the members, the management account too, by id.
	Accounts map[string]OrganizationAccount
}

// OrganizationalUnit is the root or an OU.
type OrganizationalUnit struct {
	ID, ARN, Name string
	// Path is o-…/r-…/ou-…/, the aws:PrincipalOrgPaths value of the
	// principals of an account directly in the unit.
	Path string
}

// OrganizationAccount is a member account.
type OrganizationAccount struct {
	ID, Name, Email string
	Status          string // ACTIVE, SUSPENDED or PENDING_CLOSURE
	ParentID        string // the root's or OU's id
	// PrincipalOrgPath is the aws:PrincipalOrgPaths value of the account's
	// principals: its parent's Path.
	PrincipalOrgPath string
}

// Organization returns the organization the account is a member of.
func (s *Server) Organization(account string) (Organization, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, _ := s.memberOf(account)
	if o == nil {
		return Organization{}, false
	}
	unit := func(u *orgUnit) OrganizationalUnit {
		return OrganizationalUnit{ID: u.id, ARN: o.unitARN(u), Name: u.name, Path: s.unitPath(u)}
	}
	out := Organization{ID: o.id, ARN: o.arn(), ManagementAccount: o.management, Root: unit(s.world.orgUnits[o.rootID]),
		OUs: map[string]OrganizationalUnit{}, Accounts: map[string]OrganizationAccount{}}
	var walk func(parent *orgUnit, prefix string)
	walk = func(parent *orgUnit, prefix string) {
		for _, u := range s.unitsIn(parent.id) {
			out.OUs[prefix+u.name] = unit(u)
			walk(u, prefix+u.name+"/")
		}
	}
	walk(s.world.orgUnits[o.rootID], "")
	for _, a := range s.accountsOf(o, "") {
		out.Accounts[a.id] = OrganizationAccount{ID: a.id, Name: a.name, Email: a.email, Status: a.status, ParentID: a.parentID,
			PrincipalOrgPath: s.unitPath(s.world.orgUnits[a.parentID])}
	}
	return out, true
}

// SetAccountStatus sets a member account's status: ACTIVE, SUSPENDED (its
// calls are then refused) or PENDING_CLOSURE.
func (s *Server) SetAccountStatus(account, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.world.orgAccounts[account]
	switch {
	case !ok:
		return fmt.Errorf("set the status of %s: the account is in no organization", account)
	case !validStatus(status):
		return fmt.Errorf("set the status of %s: %q is not ACTIVE, SUSPENDED or PENDING_CLOSURE", account, status)
	}
	a.status = status
	return nil
}
