// Package gate runs amigate's pipeline: inspect every AMI, check its keys,
// decide per target and path, then share, patch, grant, test-launch and
// report. It is shared by the Packer post-processor and the CLI, and imports
// neither the Packer SDK nor any UI.
package gate

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// Key-policy modes.
const (
	KeyPolicyPatch  = "patch"
	KeyPolicyCheck  = "check"
	KeyPolicyIgnore = "ignore"
)

// Test-launch modes.
const (
	TestLaunchNone     = "none"
	TestLaunchASG      = "asg"
	TestLaunchInstance = "instance"
)

// Who the key-policy statements name (key_policy_principals).
const (
	// PrincipalsAuto names each account, unless the statements would not
	// fit in KMS's 32 KiB and the targets come from organizations or OUs:
	// then it names those.
	PrincipalsAuto = "auto"
	// PrincipalsAccounts names each target account.
	PrincipalsAccounts = "accounts"
	// PrincipalsOrganization names the target organizations and OUs
	// (aws:PrincipalOrgID, aws:PrincipalOrgPaths).
	PrincipalsOrganization = "organization"
)

// Where the Auto Scaling grants are created from.
const (
	GrantFromTarget = "target"
	GrantFromSource = "source"
)

// Options configure one run of the gate. Field names in errors are the
// post-processor's configuration names; the CLI maps them to its flags.
type Options struct {
	// AMIs maps a region to the AMI to gate there.
	AMIs map[string]string

	Targets []Target
	// TargetOrganizations and TargetOrganizationalUnits (ids, o-... and
	// ou-..., or ARNs) make every active account in them a target, as
	// OrganizationTargets says, except ExcludeAccounts. An account that
	// also has a target block keeps its block's settings.
	TargetOrganizations       []string
	TargetOrganizationalUnits []string
	ExcludeAccounts           []string
	OrganizationTargets       MemberTargets
	// OrganizationsRoleARN is a role in the organization's management (or
	// delegated administrator) account that lists its accounts; empty
	// lists them with the source credentials.
	OrganizationsRoleARN string
	// KeyPolicyPrincipals is who the key-policy statements name: auto,
	// accounts or organization.
	KeyPolicyPrincipals string

	ShareImage        bool
	ShareSnapshots    bool
	KeyPolicy         string
	CreateGrants      bool
	GrantFrom         string // "" picks target when the target has a role, else source
	TestLaunch        string
	TestLaunchTimeout time.Duration
	// TestLaunchGrantWait is how long after creating a grant a launch that
	// fails on the key is retried (grants propagate within about five
	// minutes); 0 means DefaultGrantWait.
	TestLaunchGrantWait time.Duration
	InstanceType        string
	SubnetID            string
	AllowUnencrypted    bool
	DryRun              bool
	// Audit checks AMIs already released (`amigate audit`): it changes
	// nothing (no sharing, key-policy patch, grant or test launch) and
	// checks every Auto Scaling service-linked role of each target, also
	// those made since the release.
	Audit bool
	// LockTimeout bounds the wait for a key's policy lock, held while
	// another run patches the same key; 0 means keylock.DefaultWait.
	LockTimeout time.Duration

	// OnStatus, when set, hears how far the run is (a progress line for
	// long runs); it is not a setting of the user's.
	OnStatus StatusFunc

	// Test-launch timing, for tests: the polling back-off and the wait for
	// CloudTrail's delivery.
	pollMin, pollMax, trailWait time.Duration
}

// Target is an account that must be able to launch the AMIs.
type Target struct {
	AccountID             string
	Regions               []string
	RoleARN               string
	ExternalID            string
	AutoScalingGroups     []string
	ServiceLinkedRoleARNs []string
	Paths                 []keypolicy.Path

	// member is set on the targets found in the target organizations and
	// OUs (organization_targets), rather than given in a target block.
	member bool
}

// MemberTargets is how amigate treats each account it finds in the target
// organizations and OUs.
type MemberTargets struct {
	// RoleName is the role amigate assumes in each account (the same name
	// everywhere, as StackSets deploys it; a path may precede it).
	RoleName          string
	ExternalID        string
	Regions           []string
	AutoScalingGroups []string
	Paths             []keypolicy.Path
}

// FieldError is one invalid setting: the field as the user wrote it, the
// value and what is wrong with it.
type FieldError struct {
	Field   string
	Value   string
	Problem string
}

func (e FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Problem)
	}
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Problem)
}

var (
	regionRE   = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	amiRE      = regexp.MustCompile(`^ami-[0-9a-f]{8}([0-9a-f]{9})?$`)
	orgRE      = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::\d{12}:organization/(o-[a-z0-9]{10,32})$`)
	ouRE       = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::\d{12}:ou/o-[a-z0-9]{10,32}/(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32})$`)
	orgIDRE    = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)
	ouIDRE     = regexp.MustCompile(`^ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$`)
	roleNameRE = regexp.MustCompile(`^([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$`)
	subnetRE   = regexp.MustCompile(`^subnet-[0-9a-f]{8}([0-9a-f]{9})?$`)
)

// ValidRegion reports whether s looks like an AWS region name.
func ValidRegion(s string) bool { return regionRE.MatchString(s) }

// ValidAMI reports whether s looks like an AMI id.
func ValidAMI(s string) bool { return amiRE.MatchString(s) }

// Validate checks every setting and returns every problem at once.
func (o *Options) Validate() []FieldError {
	var errs []FieldError
	add := func(field, value, problem string) {
		errs = append(errs, FieldError{Field: field, Value: value, Problem: problem})
	}
	regions := make([]string, 0, len(o.AMIs))
	for r := range o.AMIs {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, r := range regions {
		if !ValidRegion(r) {
			add("ami_ids", r, "not an AWS region")
		}
		if !ValidAMI(o.AMIs[r]) {
			add("ami_ids["+r+"]", o.AMIs[r], "not an AMI id (ami-0123456789abcdef0)")
		}
	}
	if len(o.Targets) == 0 && len(o.TargetOrganizations) == 0 && len(o.TargetOrganizationalUnits) == 0 {
		add("target", "", "at least one target block (or target_organizations, target_organizational_units) is required")
	}
	seen := map[string]bool{}
	for i, t := range o.Targets {
		errs = append(errs, t.validate(fmt.Sprintf("target[%d]", i), o)...)
		if t.AccountID != "" && seen[t.AccountID] {
			add(fmt.Sprintf("target[%d].account_id", i), t.AccountID, "appears in two target blocks; merge them")
		}
		seen[t.AccountID] = true
	}
	errs = append(errs, o.validateOrganizations(seen)...)
	oneOf(&errs, "key_policy", o.KeyPolicy, KeyPolicyPatch, KeyPolicyCheck, KeyPolicyIgnore)
	if o.GrantFrom != "" {
		oneOf(&errs, "grant_from", o.GrantFrom, GrantFromTarget, GrantFromSource)
	}
	oneOf(&errs, "test_launch", o.TestLaunch, TestLaunchNone, TestLaunchASG, TestLaunchInstance)
	if o.TestLaunchTimeout <= 0 {
		add("test_launch_timeout", o.TestLaunchTimeout.String(), "must be positive")
	}
	if o.TestLaunchGrantWait < 0 {
		add("test_launch_grant_wait", o.TestLaunchGrantWait.String(), "must not be negative")
	}
	if o.LockTimeout < 0 {
		add("lock_timeout", o.LockTimeout.String(), "must not be negative")
	}
	if o.Audit && (o.ShareImage || o.KeyPolicy == KeyPolicyPatch || o.CreateGrants || o.TestLaunch != TestLaunchNone || o.DryRun) {
		add("audit", "", "an audit changes nothing: share_image, create_grants and dry_run off, key_policy check or ignore, test_launch none")
	}
	if o.SubnetID != "" && !subnetRE.MatchString(o.SubnetID) {
		add("subnet_id", o.SubnetID, "not a subnet id (subnet-0123456789abcdef0)")
	}
	return errs
}

// validateOrganizations checks the organization targets; explicit holds
// the accounts of the target blocks.
func (o *Options) validateOrganizations(explicit map[string]bool) []FieldError {
	var errs []FieldError
	add := func(field, value, problem string) {
		errs = append(errs, FieldError{Field: field, Value: value, Problem: problem})
	}
	for _, v := range o.TargetOrganizations {
		if _, ok := OrganizationID(v); !ok {
			add("target_organizations", v, "not an organization id (o-...) or ARN (arn:aws:organizations::ACCOUNT:organization/o-...)")
		}
	}
	for _, v := range o.TargetOrganizationalUnits {
		if _, ok := OrganizationalUnitID(v); !ok {
			add("target_organizational_units", v, "not an organizational unit id (ou-...) or ARN (arn:aws:organizations::ACCOUNT:ou/o-.../ou-...)")
		}
	}
	if o.KeyPolicyPrincipals != "" {
		oneOf(&errs, "key_policy_principals", o.KeyPolicyPrincipals, PrincipalsAuto, PrincipalsAccounts, PrincipalsOrganization)
	}
	orgs := len(o.TargetOrganizations)+len(o.TargetOrganizationalUnits) > 0
	for _, a := range o.ExcludeAccounts {
		switch {
		case !keypolicy.ValidAccountID(a):
			add("exclude_accounts", a, "not a 12-digit AWS account id")
		case !orgs:
			add("exclude_accounts", a, "excludes from target_organizations and target_organizational_units, and there are none")
		case explicit[a]:
			add("exclude_accounts", a, "also has a target block; remove one of them")
		}
	}
	m := o.OrganizationTargets
	if !orgs && (m.RoleName != "" || m.ExternalID != "" || len(m.Regions) > 0 || len(m.AutoScalingGroups) > 0 || len(m.Paths) > 0) {
		add("organization_targets", "", "is for the accounts of target_organizations and target_organizational_units, and there are none")
	}
	if m.RoleName != "" && !roleNameRE.MatchString(m.RoleName) {
		add("organization_targets.role_name", m.RoleName, "not an IAM role name (with an optional path: path/name)")
	}
	member := Target{AccountID: "000000000000", Regions: m.Regions, ExternalID: m.ExternalID, AutoScalingGroups: m.AutoScalingGroups, Paths: m.Paths}
	if m.RoleName != "" {
		member.RoleARN = "arn:aws:iam::000000000000:role/" + m.RoleName
	}
	if orgs {
		for _, fe := range member.validate("organization_targets", o) {
			// The members' role is named, not given as an ARN.
			fe.Field = strings.Replace(fe.Field, ".role_arn", ".role_name", 1)
			fe.Problem = strings.ReplaceAll(fe.Problem, "role_arn", "role_name")
			errs = append(errs, fe)
		}
	}
	if o.OrganizationsRoleARN != "" {
		if _, err := keypolicy.ParseRoleARN(o.OrganizationsRoleARN); err != nil {
			add("organizations_role_arn", o.OrganizationsRoleARN, "not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
		}
	}
	return errs
}

// CopyPath reports whether a target or the organization targets copy the
// AMI, which needs its snapshots shared (share_snapshots).
func (o *Options) CopyPath() bool {
	for _, t := range o.Targets {
		if slices.Contains(t.Paths, keypolicy.PathCopy) {
			return true
		}
	}
	return slices.Contains(o.OrganizationTargets.Paths, keypolicy.PathCopy)
}

// ParsePaths reads the launch paths of a configuration field (a target's
// paths, organization_targets.paths); each bad one is a FieldError.
func ParsePaths(field string, names []string) ([]keypolicy.Path, []FieldError) {
	var paths []keypolicy.Path
	var errs []FieldError
	for _, name := range names {
		path, err := keypolicy.ParsePath(name)
		if err != nil {
			errs = append(errs, FieldError{Field: field, Value: name, Problem: "must be one of asg, instance, copy"})
			continue
		}
		paths = append(paths, path)
	}
	return paths, errs
}

// OrganizationID reads an organization id or ARN.
func OrganizationID(s string) (string, bool) {
	if orgIDRE.MatchString(s) {
		return s, true
	}
	if m := orgRE.FindStringSubmatch(s); m != nil {
		return m[1], true
	}
	return "", false
}

// OrganizationalUnitID reads an OU id or ARN.
func OrganizationalUnitID(s string) (string, bool) {
	if ouIDRE.MatchString(s) {
		return s, true
	}
	if m := ouRE.FindStringSubmatch(s); m != nil {
		return m[1], true
	}
	return "", false
}

func (t Target) validate(prefix string, o *Options) []FieldError {
	var errs []FieldError
	add := func(field, value, problem string) {
		errs = append(errs, FieldError{Field: prefix + "." + field, Value: value, Problem: problem})
	}
	switch {
	case t.AccountID == "":
		add("account_id", "", "is required")
	case !keypolicy.ValidAccountID(t.AccountID):
		add("account_id", t.AccountID, "not a 12-digit AWS account id")
	}
	for _, r := range t.Regions {
		if !ValidRegion(r) {
			add("regions", r, "not an AWS region")
		}
	}
	if t.RoleARN != "" {
		if a, err := keypolicy.ParseRoleARN(t.RoleARN); err != nil {
			add("role_arn", t.RoleARN, "not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
		} else if t.AccountID != "" && a.Account != t.AccountID {
			add("role_arn", t.RoleARN, "is in account "+a.Account+", not in the target account "+t.AccountID)
		}
	}
	if t.ExternalID != "" && t.RoleARN == "" {
		add("external_id", t.ExternalID, "needs role_arn")
	}
	for _, r := range t.ServiceLinkedRoleARNs {
		if !keypolicy.IsAutoScalingServiceLinkedRole(r) {
			add("service_linked_role_arns", r, "not an Auto Scaling service-linked role ARN (arn:aws:iam::ACCOUNT:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling...)")
		} else if a, _ := keypolicy.ParseARN(r); t.AccountID != "" && a.Account != t.AccountID {
			add("service_linked_role_arns", r, "is in account "+a.Account+", not in the target account "+t.AccountID)
		}
	}
	for _, g := range t.AutoScalingGroups {
		if strings.TrimSpace(g) == "" || len(g) > 255 {
			add("autoscaling_groups", g, "not an Auto Scaling group name")
		}
	}
	if len(t.AutoScalingGroups) > 0 && t.RoleARN == "" {
		add("autoscaling_groups", strings.Join(t.AutoScalingGroups, ","), "reading the groups needs role_arn, a role amigate can assume in the target")
	}
	if o.TestLaunch == TestLaunchASG && (len(t.AutoScalingGroups) == 0 || t.RoleARN == "") {
		add("autoscaling_groups", "", `test_launch = "asg" needs autoscaling_groups and role_arn in every target`)
	}
	if o.GrantFrom == GrantFromTarget && t.RoleARN == "" {
		add("role_arn", "", `grant_from = "target" needs a role to assume in every target`)
	}
	if o.TestLaunch == TestLaunchInstance && t.RoleARN == "" {
		add("role_arn", "", `test_launch = "instance" needs a role to assume in every target`)
	}
	return errs
}

func oneOf(errs *[]FieldError, field, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	*errs = append(*errs, FieldError{Field: field, Value: value, Problem: "must be one of " + strings.Join(allowed, ", ")})
}
