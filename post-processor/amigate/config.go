//go:generate packer-sdc mapstructure-to-hcl2 -type Config,TargetConfig,OrganizationTargetsConfig
//go:generate packer-sdc struct-markdown

// Package amigate is the Packer post-processor that gates an AMI before the
// build is marked green. This file holds its configuration: decoding,
// defaults and validation; the decisions are internal/gate's.
package amigate

import (
	"fmt"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/amigate/packer-plugin-amigate/awsaccess"
	"github.com/amigate/packer-plugin-amigate/internal/gate"
)

// TargetConfig is one account that must be able to launch the AMI.
type TargetConfig struct {
	// The 12-digit id of the target account.
	AccountID string `mapstructure:"account_id" required:"true"`
	// The regions the target launches in. Defaults to every region of the AMI.
	Regions []string `mapstructure:"regions" required:"false"`
	// A role amigate assumes in the target to read its Auto Scaling groups,
	// create the Auto Scaling grants from the target (AWS's documented way)
	// and test-launch.
	RoleARN string `mapstructure:"role_arn" required:"false"`
	// The external id the target role's trust policy requires, if any.
	ExternalID string `mapstructure:"external_id" required:"false"`
	// The target's Auto Scaling groups that will launch the AMI; amigate reads
	// their service-linked role (and clones one for a test launch).
	AutoScalingGroups []string `mapstructure:"autoscaling_groups" required:"false"`
	// The Auto Scaling service-linked roles of the target, when they cannot be
	// read from its groups. Defaults to the account's AWSServiceRoleForAutoScaling.
	ServiceLinkedRoleARNs []string `mapstructure:"service_linked_role_arns" required:"false"`
	// How the target launches the AMI: `asg`, `instance` and/or `copy`.
	// Defaults to `["asg", "instance"]`.
	Paths []string `mapstructure:"paths" required:"false"`
}

// OrganizationTargetsConfig is how amigate treats each account it finds in
// the target organizations and OUs.
type OrganizationTargetsConfig struct {
	// The role amigate assumes in each account (the same name in every
	// account, as a StackSet deploys it; a path may precede the name), to
	// read its Auto Scaling groups and create its grants from it.
	RoleName string `mapstructure:"role_name" required:"false"`
	// The external id the role's trust policy requires, if any.
	ExternalID string `mapstructure:"external_id" required:"false"`
	// The regions the accounts launch in. Defaults to every region of the AMI.
	Regions []string `mapstructure:"regions" required:"false"`
	// The accounts' Auto Scaling groups that launch the AMI (needs role_name).
	AutoScalingGroups []string `mapstructure:"autoscaling_groups" required:"false"`
	// How the accounts launch the AMI: `asg`, `instance` and/or `copy`.
	// Defaults to `["asg", "instance"]`.
	Paths []string `mapstructure:"paths" required:"false"`
}

// Config is the post-processor's configuration.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// AWS access, as in packer-plugin-amazon.
	awsaccess.Config `mapstructure:",squash"`

	// The AMIs to gate, by region, instead of the build's artifact.
	AMIIDs map[string]string `mapstructure:"ami_ids" required:"false"`

	// The accounts that must be able to launch the AMI. Repeatable; optional
	// with target_organizations or target_organizational_units.
	Targets []TargetConfig `mapstructure:"target" required:"true"`
	// Organizations (`o-...` or the organization's ARN) whose every active
	// account is a target, found through AWS Organizations. Suspended and
	// closing accounts are skipped and reported.
	TargetOrganizations []string `mapstructure:"target_organizations" required:"false"`
	// Organizational units (`ou-...` or the OU's ARN) whose every active
	// account, in nested OUs too, is a target.
	TargetOrganizationalUnits []string `mapstructure:"target_organizational_units" required:"false"`
	// Accounts of the target organizations and OUs that are not targets.
	ExcludeAccounts []string `mapstructure:"exclude_accounts" required:"false"`
	// How each account found in the target organizations and OUs is treated;
	// an account with a target block of its own keeps that block's settings.
	OrganizationTargets OrganizationTargetsConfig `mapstructure:"organization_targets" required:"false"`
	// A role in the organization's management account (or a delegated
	// administrator) that may list its accounts. Defaults to the source
	// credentials.
	OrganizationsRoleARN string `mapstructure:"organizations_role_arn" required:"false"`
	// Who the key-policy statements amigate adds name: `accounts` (each
	// target account), `organization` (the target organizations and OUs,
	// with aws:PrincipalOrgID / aws:PrincipalOrgPaths) or `auto` (accounts,
	// unless they would not fit in KMS's 32 KiB and the targets come from
	// organizations or OUs). Defaults to `auto`.
	KeyPolicyPrincipals string `mapstructure:"key_policy_principals" required:"false"`

	// Give every target a launch permission on the AMI. Defaults to true.
	ShareImage *bool `mapstructure:"share_image" required:"false"`
	// Also give the targets create-volume permission on the snapshots
	// (needed to copy the AMI; implied by a `copy` path). Defaults to false.
	ShareSnapshots bool `mapstructure:"share_snapshots" required:"false"`
	// What to do with the key policy: `patch` it minimally for the targets,
	// only `check` it, or `ignore` it. Defaults to `patch`.
	KeyPolicy string `mapstructure:"key_policy" required:"false"`
	// Create the KMS grants the targets' Auto Scaling service-linked roles
	// need. Defaults to true.
	CreateGrants *bool `mapstructure:"create_grants" required:"false"`
	// Where the grants are created from: `target` (through the target's role,
	// as AWS documents) or `source`. Defaults to `target` when the target has
	// a role_arn, else `source`.
	GrantFrom string `mapstructure:"grant_from" required:"false"`
	// Launch the AMI in each target before passing: `none`, `asg` (a
	// temporary clone of each of the target's groups, through its role) or
	// `instance` (one instance, through its role). Every resource is deleted
	// afterwards, also on failure or cancellation. Defaults to `none`.
	TestLaunch string `mapstructure:"test_launch" required:"false"`
	// How long a test launch may take. Defaults to `10m`.
	TestLaunchTimeout string `mapstructure:"test_launch_timeout" required:"false"`
	// How long after amigate creates a grant a test launch that fails on
	// the key is retried before it counts as failed: a new grant takes up to
	// about five minutes to reach every KMS host. Defaults to `5m`.
	TestLaunchGrantWait string `mapstructure:"test_launch_grant_wait" required:"false"`
	// The instance type of a test launch. Defaults to the launch template's
	// (for a group with a MixedInstancesPolicy, its overrides'), and to
	// `t3.micro` for `test_launch = "instance"`.
	InstanceType string `mapstructure:"instance_type" required:"false"`
	// The subnet of an `instance` test launch.
	SubnetID string `mapstructure:"subnet_id" required:"false"`
	// Accept unencrypted snapshots instead of failing. Defaults to false.
	AllowUnencrypted bool `mapstructure:"allow_unencrypted" required:"false"`
	// How long to wait for a key's policy lock while another build patches
	// the same key's policy (builds take turns on a KMS alias,
	// `alias/amigate/lock/KEY_ID`; a lock left by a build killed hard
	// expires after 15 minutes, and the next build takes it over). Defaults
	// to `20m`.
	LockTimeout string `mapstructure:"lock_timeout" required:"false"`
	// Compute and print every change, make none. Each change is checked
	// instead (EC2 and KMS DryRun, IAM's policy simulator); what cannot be
	// checked, and any test launch, fails the build as DRY_RUN_UNVERIFIED.
	DryRun bool `mapstructure:"dry_run" required:"false"`
	// Write the JSON report to this file.
	ReportFile string `mapstructure:"report_file" required:"false"`
	// Write a JUnit XML report (one test case per target and path) to this file.
	JUnitFile string `mapstructure:"junit_file" required:"false"`
	// Write a Markdown summary to this file.
	MarkdownFile string `mapstructure:"markdown_file" required:"false"`

	ctx interpolate.Context
}

// Prepare decodes the configuration, applies the defaults and reports every
// problem at once. It registers the secrets with Packer's log filter before
// anything can be logged.
func (c *Config) Prepare(raws ...interface{}) (gate.Options, error) {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         "amigate",
		Interpolate:        true,
		InterpolateContext: &c.ctx,
	}, raws...)
	if err != nil {
		return gate.Options{}, fmt.Errorf("decode amigate configuration: %w", err)
	}
	packersdk.LogSecretFilter.Set(c.Secrets()...)

	var errs *packersdk.MultiError
	opts, convErrs := c.options()
	for _, e := range convErrs {
		errs = packersdk.MultiErrorAppend(errs, e)
	}
	for _, fe := range opts.Validate() {
		errs = packersdk.MultiErrorAppend(errs, fe)
	}
	for _, e := range c.Config.Validate() {
		errs = packersdk.MultiErrorAppend(errs, e)
	}
	if errs != nil && len(errs.Errors) > 0 {
		return opts, errs
	}
	return opts, nil
}

// options converts the configuration to the gate's options, with defaults.
func (c *Config) options() (gate.Options, []error) {
	var errs []error
	o := gate.Options{
		AMIs:                      c.AMIIDs,
		TargetOrganizations:       c.TargetOrganizations,
		TargetOrganizationalUnits: c.TargetOrganizationalUnits,
		ExcludeAccounts:           c.ExcludeAccounts,
		OrganizationsRoleARN:      c.OrganizationsRoleARN,
		KeyPolicyPrincipals:       orDefault(c.KeyPolicyPrincipals, gate.PrincipalsAuto),
		ShareImage:                c.ShareImage == nil || *c.ShareImage,
		ShareSnapshots:            c.ShareSnapshots,
		KeyPolicy:                 orDefault(c.KeyPolicy, gate.KeyPolicyPatch),
		CreateGrants:              c.CreateGrants == nil || *c.CreateGrants,
		GrantFrom:                 c.GrantFrom,
		TestLaunch:                orDefault(c.TestLaunch, gate.TestLaunchNone),
		TestLaunchTimeout:         10 * time.Minute,
		InstanceType:              c.InstanceType,
		SubnetID:                  c.SubnetID,
		AllowUnencrypted:          c.AllowUnencrypted,
		DryRun:                    c.DryRun,
	}
	if c.TestLaunchGrantWait != "" {
		d, err := time.ParseDuration(c.TestLaunchGrantWait)
		if err != nil {
			errs = append(errs, gate.FieldError{Field: "test_launch_grant_wait", Value: c.TestLaunchGrantWait, Problem: "not a duration (such as 5m)"})
		} else {
			o.TestLaunchGrantWait = d
		}
	}
	if c.TestLaunchTimeout != "" {
		d, err := time.ParseDuration(c.TestLaunchTimeout)
		if err != nil {
			errs = append(errs, gate.FieldError{Field: "test_launch_timeout", Value: c.TestLaunchTimeout, Problem: "not a duration (such as 10m or 90s)"})
		} else {
			o.TestLaunchTimeout = d
		}
	}
	if c.LockTimeout != "" {
		d, err := time.ParseDuration(c.LockTimeout)
		if err != nil || d <= 0 {
			errs = append(errs, gate.FieldError{Field: "lock_timeout", Value: c.LockTimeout, Problem: "not a positive duration (such as 15m)"})
		} else {
			o.LockTimeout = d
		}
	}
	ot := c.OrganizationTargets
	o.OrganizationTargets = gate.MemberTargets{RoleName: ot.RoleName, ExternalID: ot.ExternalID, Regions: ot.Regions, AutoScalingGroups: ot.AutoScalingGroups}
	paths, perrs := gate.ParsePaths("organization_targets.paths", ot.Paths)
	o.OrganizationTargets.Paths = paths
	for _, e := range perrs {
		errs = append(errs, e)
	}
	for i, t := range c.Targets {
		gt := gate.Target{
			AccountID: t.AccountID, Regions: t.Regions, RoleARN: t.RoleARN, ExternalID: t.ExternalID,
			AutoScalingGroups: t.AutoScalingGroups, ServiceLinkedRoleARNs: t.ServiceLinkedRoleARNs,
		}
		var perrs []gate.FieldError
		gt.Paths, perrs = gate.ParsePaths(fmt.Sprintf("target[%d].paths", i), t.Paths)
		for _, e := range perrs {
			errs = append(errs, e)
		}
		o.Targets = append(o.Targets, gt)
	}
	o.ShareSnapshots = o.ShareSnapshots || o.CopyPath()
	return o, errs
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
