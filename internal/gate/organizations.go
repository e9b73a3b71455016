package gate

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// organizationsAPI is what the gate calls on AWS Organizations to find the
// accounts of the target organizations and OUs.
type organizationsAPI interface {
	DescribeOrganization(context.Context, *organizations.DescribeOrganizationInput, ...func(*organizations.Options)) (*organizations.DescribeOrganizationOutput, error)
	ListRoots(context.Context, *organizations.ListRootsInput, ...func(*organizations.Options)) (*organizations.ListRootsOutput, error)
	ListParents(context.Context, *organizations.ListParentsInput, ...func(*organizations.Options)) (*organizations.ListParentsOutput, error)
	ListAccountsForParent(context.Context, *organizations.ListAccountsForParentInput, ...func(*organizations.Options)) (*organizations.ListAccountsForParentOutput, error)
	ListOrganizationalUnitsForParent(context.Context, *organizations.ListOrganizationalUnitsForParentInput, ...func(*organizations.Options)) (*organizations.ListOrganizationalUnitsForParentOutput, error)
}

// orgState is the organization the targets were found in.
type orgState struct {
	id, arn, management string
	// whole is set when the whole organization is a target.
	whole bool
	// units are the target OUs: id → ARN and aws:PrincipalOrgPaths path.
	units map[string]orgUnit
	// paths are the aws:PrincipalOrgPaths value of every account found
	// (o-.../r-.../ou-.../), by account.
	paths map[string]string
}

type orgUnit struct{ arn, path string }

// SkippedAccount is an account of a target organization or OU that is not
// gated: it is not active (suspended, closing), so nothing can launch in it.
type SkippedAccount struct {
	Account string `json:"account"`
	Name    string `json:"name,omitempty"`
	State   string `json:"state"`
	Path    string `json:"path"`
	Reason  string `json:"reason"`
}

// OrganizationInfo is what the report says about the target organization.
type OrganizationInfo struct {
	ID                string   `json:"id"`
	ManagementAccount string   `json:"management_account"`
	Whole             bool     `json:"whole"`
	Units             []string `json:"organizational_units"`
	// Accounts is how many accounts the organization targets made
	// targets; Skipped lists those left out because they are not active.
	Accounts int              `json:"accounts"`
	Excluded []string         `json:"excluded"`
	Skipped  []SkippedAccount `json:"skipped"`
}

// orgRegion is where Organizations is called: its one endpoint per
// partition.
func (r *runState) orgRegion() string {
	region := r.regions[0]
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "cn-northwest-1"
	case strings.HasPrefix(region, "us-gov-"):
		return "us-gov-west-1"
	}
	return "us-east-1"
}

// resolveOrganizations turns the target organizations and OUs into target
// accounts: it walks each OU tree (ListOrganizationalUnitsForParent and
// ListAccountsForParent, every page), records each account's organization
// path for the verdict (aws:PrincipalOrgPaths), skips and reports accounts
// that are not active, leaves out the excluded ones and the source account,
// and adds a target for each other account, as organization_targets says,
// unless it has a target block of its own. It calls scoped once the
// organization and its target OUs are known to exist (r.org is set), and
// found with each target as the page that holds it arrives, so the run
// works on the first accounts while it still lists the others.
func (r *runState) resolveOrganizations(ctx context.Context, scoped func(), found func(Target)) error {
	who := source
	if r.opts.OrganizationsRoleARN != "" {
		who = principal{roleARN: r.opts.OrganizationsRoleARN}
	}
	oc := r.cl.Organizations(who, r.orgRegion())
	// Who the source is, the organization and its roots, side by side.
	var (
		out                    *organizations.DescribeOrganizationOutput
		roots                  []string
		src                    *sts.GetCallerIdentityOutput
		err, rootsErr, callErr error
	)
	_ = forEach(ctx, 3, 3, func(ctx context.Context, i int) error {
		switch i {
		case 0:
			out, err = oc.DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{})
		case 1:
			if len(r.opts.TargetOrganizations) > 0 {
				roots, rootsErr = listRoots(ctx, oc)
			}
		case 2:
			src, callErr = r.sourceIdentity(ctx, r.regions[0])
		}
		return nil
	})
	if err != nil {
		if isCode(err, "AWSOrganizationsNotInUseException") {
			return fmt.Errorf("describe the target organization: the account of amigate's credentials belongs to no organization: %w", err)
		}
		return fmt.Errorf("describe the target organization: %w", err)
	}
	org := &orgState{id: aws.ToString(out.Organization.Id), arn: aws.ToString(out.Organization.Arn),
		management: aws.ToString(out.Organization.MasterAccountId), units: map[string]orgUnit{}, paths: map[string]string{}}
	var errs []FieldError
	for _, v := range r.opts.TargetOrganizations {
		id, _ := OrganizationID(v)
		if id != org.id {
			errs = append(errs, FieldError{Field: "target_organizations", Value: v,
				Problem: fmt.Sprintf("amigate's credentials are in organization %s; list another organization's accounts from its management account (organizations_role_arn)", org.id)})
			continue
		}
		org.whole = true
	}
	if rootsErr != nil {
		return orgAccessError(rootsErr, org, r.opts.OrganizationsRoleARN)
	}
	var starts []orgParent
	if org.whole {
		for _, root := range roots {
			starts = append(starts, orgParent{id: root, path: org.id + "/" + root + "/"})
		}
	}
	// Each OU's path, read up to the root, all OUs at once.
	ous := r.opts.TargetOrganizationalUnits
	paths, pathErrs := make([]string, len(ous)), make([]error, len(ous))
	_ = forEach(ctx, len(ous), r.parallelism, func(ctx context.Context, i int) error {
		id, _ := OrganizationalUnitID(ous[i])
		if !strings.HasPrefix(ous[i], "arn:") || strings.Contains(ous[i], ":ou/"+org.id+"/") {
			paths[i], pathErrs[i] = ouPath(ctx, oc, org.id, id)
		}
		return nil
	})
	for i, v := range ous {
		id, _ := OrganizationalUnitID(v)
		switch err := pathErrs[i]; {
		case strings.HasPrefix(v, "arn:") && !strings.Contains(v, ":ou/"+org.id+"/"):
			errs = append(errs, FieldError{Field: "target_organizational_units", Value: v, Problem: "is not in organization " + org.id + ", the one amigate's credentials list"})
			continue
		case isCode(err, "ChildNotFoundException", "OrganizationalUnitNotFoundException", "InvalidInputException"):
			errs = append(errs, FieldError{Field: "target_organizational_units", Value: v, Problem: "no such organizational unit in organization " + org.id})
			continue
		case err != nil:
			return orgAccessError(err, org, r.opts.OrganizationsRoleARN)
		}
		org.units[id] = orgUnit{arn: "arn:" + partitionOf(org.arn) + ":organizations::" + org.management + ":ou/" + org.id + "/" + id, path: paths[i]}
		if !org.whole {
			starts = append(starts, orgParent{id: id, path: paths[i]})
		}
	}
	if len(errs) > 0 {
		return InputErrors(errs)
	}
	// The source account owns the AMI (sharing needs it to): it is not a
	// target even where its organization is.
	if callErr != nil {
		return callErr
	}
	adopt := r.newOrgAdoption(org, aws.ToString(src.Account))
	r.mu.Lock()
	r.org, r.report.Organization = org, adopt.info
	r.mu.Unlock()
	scoped()
	if err := r.walkOrganization(ctx, oc, coveringParents(starts), func(page []orgAccount) {
		for _, t := range adopt.add(page) {
			found(t)
		}
	}); err != nil {
		return orgAccessError(err, org, r.opts.OrganizationsRoleARN)
	}
	adopt.finish()
	return nil
}

// orgParent is a root or an OU, with its organization path.
type orgParent struct{ id, path string }

// orgAccount is one account found under a parent.
type orgAccount struct {
	id, name, state, path string
}

// coveringParents drops the parents that lie under another one, so that no
// subtree is walked twice.
func coveringParents(ps []orgParent) []orgParent {
	sort.Slice(ps, func(i, j int) bool { return len(ps[i].path) < len(ps[j].path) })
	var out []orgParent
	for _, p := range ps {
		covered := false
		for _, o := range out {
			covered = covered || strings.HasPrefix(p.path, o.path)
		}
		if !covered {
			out = append(out, p)
		}
	}
	return out
}

// walkOrganization lists, level by level and every parent of a level at
// once, the accounts and OUs under the starting parents, handing each page
// of accounts to page as it arrives (calls to it are serialised).
func (r *runState) walkOrganization(ctx context.Context, oc organizationsAPI, level []orgParent, page func([]orgAccount)) error {
	var mu sync.Mutex
	for len(level) > 0 {
		var next []orgParent
		// A parent's OUs and accounts side by side: they are paced by
		// buckets of their own.
		err := forEach(ctx, 2*len(level), r.parallelism, func(ctx context.Context, i int) error {
			p := level[i/2]
			if i%2 == 0 {
				units, err := listUnits(ctx, oc, p)
				mu.Lock()
				next = append(next, units...)
				mu.Unlock()
				return err
			}
			return listAccounts(ctx, oc, p, func(accts []orgAccount) {
				mu.Lock()
				defer mu.Unlock()
				page(accts)
			})
		})
		if err != nil {
			return err
		}
		level = next
	}
	return nil
}

func listRoots(ctx context.Context, oc organizationsAPI) ([]string, error) {
	var roots []string
	p := organizations.NewListRootsPaginator(oc, &organizations.ListRootsInput{})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list the organization's roots: %w", err)
		}
		for _, root := range out.Roots {
			roots = append(roots, aws.ToString(root.Id))
		}
	}
	return roots, nil
}

// listAccounts lists the accounts of a parent, handing each page on.
func listAccounts(ctx context.Context, oc organizationsAPI, parent orgParent, page func([]orgAccount)) error {
	p := organizations.NewListAccountsForParentPaginator(oc, &organizations.ListAccountsForParentInput{ParentId: aws.String(parent.id)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list the accounts of %s: %w", parent.id, err)
		}
		accts := make([]orgAccount, 0, len(out.Accounts))
		for _, a := range out.Accounts {
			accts = append(accts, orgAccount{id: aws.ToString(a.Id), name: aws.ToString(a.Name), state: accountState(a), path: parent.path})
		}
		page(accts)
	}
	return nil
}

// accountState is the account's State, or its Status where State is not
// given (AWS retires Status; older answers have only it).
func accountState(a orgtypes.Account) string {
	if a.State != "" {
		return string(a.State)
	}
	return string(a.Status)
}

func listUnits(ctx context.Context, oc organizationsAPI, parent orgParent) ([]orgParent, error) {
	var out []orgParent
	p := organizations.NewListOrganizationalUnitsForParentPaginator(oc, &organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String(parent.id)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list the organizational units of %s: %w", parent.id, err)
		}
		for _, u := range page.OrganizationalUnits {
			id := aws.ToString(u.Id)
			out = append(out, orgParent{id: id, path: parent.path + id + "/"})
		}
	}
	return out, nil
}

// ouPath is an OU's organization path (o-.../r-.../ou-.../ou-.../), read
// parent by parent up to the root.
func ouPath(ctx context.Context, oc organizationsAPI, orgID, ou string) (string, error) {
	chain := []string{ou}
	for id := ou; ; {
		out, err := oc.ListParents(ctx, &organizations.ListParentsInput{ChildId: aws.String(id)})
		if err != nil {
			return "", fmt.Errorf("list the parents of %s: %w", id, err)
		}
		if len(out.Parents) == 0 {
			return "", fmt.Errorf("list the parents of %s: none", id)
		}
		parent := out.Parents[0]
		id = aws.ToString(parent.Id)
		chain = append(chain, id)
		if parent.Type == orgtypes.ParentTypeRoot {
			break
		}
		if len(chain) > 8 { // AWS nests OUs five deep under the root
			return "", fmt.Errorf("list the parents of %s: deeper than AWS allows", ou)
		}
	}
	var b strings.Builder
	b.WriteString(orgID + "/")
	for i := len(chain) - 1; i >= 0; i-- {
		b.WriteString(chain[i] + "/")
	}
	return b.String(), nil
}

// orgAdoption makes the accounts of the organization targets targets, a
// page at a time.
type orgAdoption struct {
	r        *runState
	org      *orgState
	info     *OrganizationInfo
	source   string
	excluded map[string]bool
	explicit map[string]bool
}

func (r *runState) newOrgAdoption(org *orgState, source string) *orgAdoption {
	a := &orgAdoption{r: r, org: org, source: source, excluded: map[string]bool{}, explicit: map[string]bool{},
		info: &OrganizationInfo{ID: org.id, ManagementAccount: org.management, Whole: org.whole, Units: sortedKeys(org.units),
			Excluded: append([]string{}, r.opts.ExcludeAccounts...), Skipped: []SkippedAccount{}}}
	for _, x := range r.opts.ExcludeAccounts {
		a.excluded[x] = true
	}
	for _, t := range r.opts.Targets {
		a.explicit[t.AccountID] = true
	}
	return a
}

// add records a page of accounts, and returns the new targets among them,
// as organization_targets describes them.
func (a *orgAdoption) add(page []orgAccount) []Target {
	r, m := a.r, a.r.opts.OrganizationTargets
	var out []Target
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, acct := range page {
		a.org.paths[acct.id] = acct.path
		switch {
		case a.excluded[acct.id]:
			continue
		case acct.state != string(orgtypes.AccountStateActive):
			a.info.Skipped = append(a.info.Skipped, SkippedAccount{Account: acct.id, Name: acct.name, State: acct.state, Path: acct.path,
				Reason: "not active: nothing can launch in it"})
			continue
		case acct.id == a.source:
			continue // the AMI's owner launches its own image
		}
		a.info.Accounts++
		if a.explicit[acct.id] {
			continue
		}
		t := Target{AccountID: acct.id, Regions: m.Regions, ExternalID: m.ExternalID, AutoScalingGroups: m.AutoScalingGroups, Paths: m.Paths, member: true}
		if m.RoleName != "" {
			t.RoleARN = "arn:" + partitionOf(a.org.arn) + ":iam::" + acct.id + ":role/" + m.RoleName
		}
		r.opts.Targets = append(r.opts.Targets, t)
		out = append(out, t)
	}
	return out
}

// finish reports what the walk found.
func (a *orgAdoption) finish() {
	r, info := a.r, a.info
	sort.Slice(info.Skipped, func(i, j int) bool { return info.Skipped[i].Account < info.Skipped[j].Account })
	for _, s := range info.Skipped {
		r.say(fmt.Sprintf("! %s (%s) in %s is %s: skipped", s.Account, s.Name, s.Path, s.State))
	}
	r.say(fmt.Sprintf("organization %s: %d account(s) to gate, %d excluded, %d skipped", a.org.id, info.Accounts, len(info.Excluded), len(info.Skipped)))
}

// orgPath is an account's organization path (aws:PrincipalOrgPaths), when
// the run found it in the target organizations.
func (r *runState) orgPath(account string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.org == nil {
		return ""
	}
	return r.org.paths[account]
}

// sharedThroughOrganization reports whether one of the image's launch
// permissions for an organization or OU covers the account.
func (r *runState) sharedThroughOrganization(launch map[string]bool, account string) bool {
	path := r.orgPath(account)
	if path == "" {
		return false
	}
	for entry := range launch {
		if id, ok := OrganizationID(entry); ok && strings.HasPrefix(entry, "arn:") && strings.HasPrefix(path, id+"/") {
			return true
		}
		if id, ok := OrganizationalUnitID(entry); ok && strings.HasPrefix(entry, "arn:") && strings.Contains(path, "/"+id+"/") {
			return true
		}
	}
	return false
}

// planning is how the key policies are planned: with the organization
// scope of the target organizations and OUs (minus exclude_accounts) as
// key_policy_principals says: always ("organization"), never ("accounts"),
// or only where naming each account would not fit ("auto").
func (r *runState) planning() planning {
	p := planning{auto: r.opts.KeyPolicyPrincipals != PrincipalsOrganization}
	if r.org == nil || r.opts.KeyPolicyPrincipals == PrincipalsAccounts {
		return p
	}
	scope := &keypolicy.OrgScope{OrgID: r.org.id, ExcludedAccounts: r.opts.ExcludeAccounts}
	if !r.org.whole {
		for _, id := range sortedKeys(r.org.units) {
			scope.Paths = append(scope.Paths, r.org.units[id].path)
		}
	}
	p.opts.Organization = scope
	return p
}

// organizationShares are the organization and OU ARNs an image in region
// is shared with, in place of one launch permission per account: the
// target organizations and OUs themselves, unless some of their accounts
// are excluded (sharing with the OU would include them), the members do
// not launch in region, or key_policy_principals = "accounts" asks for
// accounts everywhere.
func (r *runState) organizationShares(region string) []string {
	o, m := r.org, r.opts.OrganizationTargets
	if o == nil || len(r.opts.ExcludeAccounts) > 0 || r.opts.KeyPolicyPrincipals == PrincipalsAccounts ||
		(len(m.Regions) > 0 && !contains(m.Regions, region)) {
		return nil
	}
	if o.whole {
		return []string{o.arn}
	}
	var out []string
	for _, id := range sortedKeys(o.units) {
		out = append(out, o.units[id].arn)
	}
	return out
}

// orgAccessError explains a refusal to list the organization.
func orgAccessError(err error, org *orgState, roleARN string) error {
	if isCode(err, "AccessDeniedException", "AccessDenied") {
		how := "amigate lists them with the source credentials: set organizations_role_arn to a role of the management account (" + org.management + ") or of a delegated administrator"
		if roleARN != "" {
			how = "the role " + roleARN + " needs organizations:ListRoots, ListParents, ListAccountsForParent and ListOrganizationalUnitsForParent in the management account (" + org.management + ") or a delegated administrator"
		}
		return fmt.Errorf("find the accounts of organization %s: %w (%s)", org.id, err, how)
	}
	return fmt.Errorf("find the accounts of organization %s: %w", org.id, err)
}
