//go:generate packer-sdc mapstructure-to-hcl2 -type Config,TargetConfig,OrganizationTargetsConfig
//go:generate packer-sdc struct-markdown

package preflight

import (
	"fmt"

	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/amigate/packer-plugin-amigate/awsaccess"
	"github.com/amigate/packer-plugin-amigate/internal/gate"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// TargetConfig is an account that will launch the image.
type TargetConfig struct {
	// The 12-digit id of the target account.
	AccountID string `mapstructure:"account_id" required:"true"`
	// How the target launches the image: `asg`, `instance` and/or `copy`.
	// Defaults to `["asg", "instance"]`.
	Paths []string `mapstructure:"paths" required:"false"`
	// The target's Auto Scaling service-linked roles. Defaults to the
	// account's AWSServiceRoleForAutoScaling.
	ServiceLinkedRoleARNs []string `mapstructure:"service_linked_role_arns" required:"false"`
}

// OrganizationTargetsConfig is how the accounts of the target
// organizations and OUs launch the image.
type OrganizationTargetsConfig struct {
	// How the accounts launch the image: `asg`, `instance` and/or `copy`.
	// Defaults to `["asg", "instance"]`.
	Paths []string `mapstructure:"paths" required:"false"`
}

// Config is the provisioner's configuration.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`
	// AWS access, as in packer-plugin-amazon.
	awsaccess.Config `mapstructure:",squash"`

	// The KMS key the build encrypts the image with (the builder's
	// `kms_key_id`): its ARN, id, alias (`alias/NAME`) or alias ARN.
	KMSKeyID string `mapstructure:"kms_key_id" required:"true"`
	// The accounts that will launch the image: the key policy is checked for
	// what the amigate post-processor could not patch (an explicit Deny, a
	// network condition on a Deny, a policy that cannot grow). Optional.
	Targets []TargetConfig `mapstructure:"target" required:"false"`
	// Organizations (`o-...` or the organization's ARN) whose every active
	// account will launch the image, found through AWS Organizations, as in
	// the post-processor.
	TargetOrganizations []string `mapstructure:"target_organizations" required:"false"`
	// Organizational units (`ou-...` or the OU's ARN) whose every active
	// account, in nested OUs too, will launch the image.
	TargetOrganizationalUnits []string `mapstructure:"target_organizational_units" required:"false"`
	// Accounts of the target organizations and OUs that are not targets.
	ExcludeAccounts []string `mapstructure:"exclude_accounts" required:"false"`
	// How the accounts of the target organizations and OUs launch the image.
	OrganizationTargets OrganizationTargetsConfig `mapstructure:"organization_targets" required:"false"`
	// A role in the organization's management account (or a delegated
	// administrator) that may list its accounts. Defaults to the build's
	// credentials.
	OrganizationsRoleARN string `mapstructure:"organizations_role_arn" required:"false"`
	// Who the key-policy statements the post-processor adds will name:
	// `accounts`, `organization` or `auto`, as in the post-processor.
	// Defaults to `auto`.
	KeyPolicyPrincipals string `mapstructure:"key_policy_principals" required:"false"`

	ctx interpolate.Context
}

// Prepare decodes the configuration and reports every problem at once.
func (p *Provisioner) Prepare(raws ...interface{}) error {
	c := &p.config
	if err := config.Decode(c, &config.DecodeOpts{PluginType: "amigate-preflight", Interpolate: true, InterpolateContext: &c.ctx}, raws...); err != nil {
		return fmt.Errorf("decode amigate-preflight configuration: %w", err)
	}
	packersdk.LogSecretFilter.Set(c.Secrets()...)
	var errs *packersdk.MultiError
	for _, e := range c.Config.Validate() {
		errs = packersdk.MultiErrorAppend(errs, e)
	}
	if c.KMSKeyID == "" {
		errs = packersdk.MultiErrorAppend(errs, gate.FieldError{Field: "kms_key_id", Problem: "is required: the key the builder encrypts with"})
	}
	p.opts = gate.PreflightOptions{Region: c.Region, KeyID: c.KMSKeyID,
		TargetOrganizations: c.TargetOrganizations, TargetOrganizationalUnits: c.TargetOrganizationalUnits,
		ExcludeAccounts: c.ExcludeAccounts, OrganizationsRoleARN: c.OrganizationsRoleARN, KeyPolicyPrincipals: c.KeyPolicyPrincipals}
	paths, perrs := gate.ParsePaths("organization_targets.paths", c.OrganizationTargets.Paths)
	p.opts.MemberPaths = paths
	for _, e := range perrs {
		errs = packersdk.MultiErrorAppend(errs, e)
	}
	for i, t := range c.Targets {
		gt := gate.Target{AccountID: t.AccountID, ServiceLinkedRoleARNs: t.ServiceLinkedRoleARNs}
		if !keypolicy.ValidAccountID(t.AccountID) {
			errs = packersdk.MultiErrorAppend(errs, gate.FieldError{Field: fmt.Sprintf("target[%d].account_id", i), Value: t.AccountID, Problem: "not a 12-digit AWS account id"})
		}
		var perrs []gate.FieldError
		gt.Paths, perrs = gate.ParsePaths(fmt.Sprintf("target[%d].paths", i), t.Paths)
		for _, e := range perrs {
			errs = packersdk.MultiErrorAppend(errs, e)
		}
		for _, r := range t.ServiceLinkedRoleARNs {
			if !keypolicy.IsAutoScalingServiceLinkedRole(r) {
				errs = packersdk.MultiErrorAppend(errs, gate.FieldError{Field: fmt.Sprintf("target[%d].service_linked_role_arns", i), Value: r, Problem: "not an Auto Scaling service-linked role ARN"})
			}
		}
		p.opts.Targets = append(p.opts.Targets, gt)
	}
	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}
