package gate

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// PreflightOptions configure the early key checks a build runs before its
// snapshot is taken.
type PreflightOptions struct {
	Region string
	// KeyID names the key the build encrypts with: its ARN, id, alias
	// (alias/NAME) or alias ARN.
	KeyID string
	// Targets, when given, are checked for what no key-policy patch can fix.
	Targets []Target
	// The accounts of target organizations and OUs, found through AWS
	// Organizations, are checked too (Options has the same fields).
	TargetOrganizations       []string
	TargetOrganizationalUnits []string
	ExcludeAccounts           []string
	OrganizationsRoleARN      string
	KeyPolicyPrincipals       string
	// MemberPaths are the launch paths of those accounts.
	MemberPaths []keypolicy.Path
}

// PreflightReport is the outcome of the early checks.
type PreflightReport struct {
	OK  bool              `json:"ok"`
	Key keypolicy.KeyInfo `json:"key"`
	// Findings are the key's own problems and what no patch can fix.
	Findings []keypolicy.Finding `json:"findings"`
	// Planned is what the post-processor will add to the key policy, by
	// statement Sid, and Grants the grants it will create.
	Planned map[string][]string `json:"planned"`
	Grants  []string            `json:"grants"`
	// Organization is where the organization targets were found.
	Organization *OrganizationInfo `json:"organization,omitempty"`
}

// Preflight checks the key a build will encrypt with (DESIGN §1.1), and,
// for the targets, what no patch can fix (explicit denies, a network
// condition on a Deny, a policy that cannot grow) and whether the build's
// principal may make the patch (kms:PutKeyPolicy and the key policy lock's
// alias calls; PERMISSION_MISSING, or a warning when IAM's policy
// simulator cannot tell): the problems a bake would only reveal after it
// is done. It reads; it changes nothing.
func Preflight(ctx context.Context, opts PreflightOptions, sessions Sessions, progress Progress) (*PreflightReport, error) {
	if progress == nil {
		progress = func(string) {}
	}
	var errs []FieldError
	if opts.KeyID == "" {
		errs = append(errs, FieldError{Field: "kms_key_id", Problem: "is required"})
	}
	if !ValidRegion(opts.Region) {
		errs = append(errs, FieldError{Field: "region", Value: opts.Region, Problem: "not an AWS region"})
	}
	for i, t := range opts.Targets {
		if !keypolicy.ValidAccountID(t.AccountID) {
			errs = append(errs, FieldError{Field: fmt.Sprintf("target[%d].account_id", i), Value: t.AccountID, Problem: "not a 12-digit AWS account id"})
		}
	}
	ro := Options{Targets: opts.Targets, TargetOrganizations: opts.TargetOrganizations, TargetOrganizationalUnits: opts.TargetOrganizationalUnits,
		ExcludeAccounts: opts.ExcludeAccounts, OrganizationsRoleARN: opts.OrganizationsRoleARN, KeyPolicyPrincipals: opts.KeyPolicyPrincipals,
		OrganizationTargets: MemberTargets{Paths: opts.MemberPaths}}
	explicit := map[string]bool{}
	for _, t := range opts.Targets {
		explicit[t.AccountID] = true
	}
	errs = append(errs, ro.validateOrganizations(explicit)...)
	if len(errs) > 0 {
		return nil, InputErrors(errs)
	}
	r := newRun(ro, sessions, progress)
	r.regions, r.explicit = []string{opts.Region}, opts.Targets
	kc := r.cl.KMS(source, opts.Region)
	out, err := kc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(opts.KeyID)})
	if isCode(err, "NotFoundException", "InvalidArnException") {
		return nil, InputErrors{{Field: "kms_key_id", Value: opts.KeyID, Problem: "no such key in " + opts.Region + " (or the build's account cannot see it)"}}
	}
	if err != nil {
		return nil, fmt.Errorf("describe key %s: %w", opts.KeyID, err)
	}
	ks := &keyState{region: opts.Region, key: keypolicy.Key{ARN: aws.ToString(out.KeyMetadata.Arn)}}
	if err := r.readKey(ctx, ks); err != nil {
		return nil, err
	}
	rep := &PreflightReport{OK: true, Key: keypolicy.KeyInfo{ARN: ks.key.ARN, Manager: ks.key.Manager, State: ks.key.State},
		Findings: keypolicy.CheckKeyMetadata(ks.key), Planned: map[string][]string{}, Grants: []string{}}
	// The key's own problems fail the build at once; only a good key is
	// worth listing the organization for (a few calls a second).
	if len(rep.Findings) == 0 && len(ro.TargetOrganizations)+len(ro.TargetOrganizationalUnits) > 0 {
		if err := r.resolveOrganizations(ctx, func() {}, func(Target) {}); err != nil {
			return nil, err
		}
		rep.Organization = r.report.Organization
	}
	if len(rep.Findings) == 0 && len(r.opts.Targets) > 0 {
		ks.targets = r.keyTargets(opts.Region)
		ks.planning = r.planning()
		plan, err := ks.planning.plan(ks.key, ks.targets)
		switch {
		case errors.Is(err, keypolicy.ErrPolicyTooLarge):
			ks.plan, ks.planErr = plan, err
			rep.Findings = append(rep.Findings, tooLargeFinding(ks))
		case err != nil:
			return nil, fmt.Errorf("plan key policy of %s: %w", ks.key.ARN, err)
		default:
			rep.Findings = append(rep.Findings, plan.Blocked...)
			rep.Planned = plan.Added
			for _, g := range plan.Grants {
				rep.Grants = append(rep.Grants, g.GranteePrincipal)
			}
			if plan.Changed {
				// The post-processor will patch the policy under its
				// lock: check now that the build's principal may.
				found, err := r.sourcePatchFindings(ctx, ks, keypolicy.SeverityWarning)
				if err != nil {
					return nil, err
				}
				rep.Findings = append(rep.Findings, found...)
			}
		}
	}
	rep.OK = !hasError(rep.Findings)
	return rep, nil
}
