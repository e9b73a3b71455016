// Package gate runs amigate's pipeline: inspect every AMI, check its keys,
// decide per target and path, then share, patch, grant, test-launch and
// report. It is shared by the Packer post-processor and the CLI, and imports
// neither the Packer SDK nor any UI.
package gate

import (
	"fmt"
	"regexp"
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

	Targets                   []Target
	TargetOrganizationARNs    []string
	TargetOrganizationalUnits []string

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
	// LockTimeout bounds the wait for a key's policy lock, held while
	// another run patches the same key; 0 means keylock.DefaultWait.
	LockTimeout time.Duration

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
	regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	amiRE    = regexp.MustCompile(`^ami-[0-9a-f]{8}([0-9a-f]{9})?$`)
	orgRE    = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::\d{12}:organization/o-[a-z0-9]{10,32}$`)
	ouRE     = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::\d{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$`)
	subnetRE = regexp.MustCompile(`^subnet-[0-9a-f]{8}([0-9a-f]{9})?$`)
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
	if len(o.Targets) == 0 && len(o.TargetOrganizationARNs) == 0 && len(o.TargetOrganizationalUnits) == 0 {
		add("target", "", "at least one target block (or target_organization_arns) is required")
	}
	seen := map[string]bool{}
	for i, t := range o.Targets {
		errs = append(errs, t.validate(fmt.Sprintf("target[%d]", i), o)...)
		if t.AccountID != "" && seen[t.AccountID] {
			add(fmt.Sprintf("target[%d].account_id", i), t.AccountID, "appears in two target blocks; merge them")
		}
		seen[t.AccountID] = true
	}
	for _, a := range o.TargetOrganizationARNs {
		if !orgRE.MatchString(a) {
			add("target_organization_arns", a, "not an organization ARN (arn:aws:organizations::ACCOUNT:organization/o-...)")
		}
	}
	for _, a := range o.TargetOrganizationalUnits {
		if !ouRE.MatchString(a) {
			add("target_organizational_unit_arns", a, "not an organizational unit ARN (arn:aws:organizations::ACCOUNT:ou/o-.../ou-...)")
		}
	}
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
	if o.SubnetID != "" && !subnetRE.MatchString(o.SubnetID) {
		add("subnet_id", o.SubnetID, "not a subnet id (subnet-0123456789abcdef0)")
	}
	return errs
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
