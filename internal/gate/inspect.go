package gate

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// imageState is what the run knows about the AMI of one region.
type imageState struct {
	region, id, name string
	snapshots        []*snapshotState
	keys             []*keyState
	// launch holds the image's launch permissions: account ids, and
	// organization or OU ARNs; "all" when it is public.
	launch map[string]bool
}

type snapshotState struct {
	id, device string
	encrypted  bool
	key        string
	// volumeUsers are the accounts with create-volume permission.
	volumeUsers map[string]bool
}

// keyState is one KMS key and the run's plan for it.
type keyState struct {
	region string
	key    keypolicy.Key
	// policyText is the key policy as last read from KMS.
	policyText string
	targets    []keypolicy.Target
	// planning is how the key policy is planned: the organization scope,
	// and whether it is used only when naming each account would not fit.
	planning planning
	plan     *keypolicy.Plan
	planErr  error
	// blocked is set once the key's policy is found not patchable (too
	// large, a deleted principal named): its finding is recorded once.
	blocked bool
	// orgEarly is set when the stream decided, while the organization was
	// walked, that the key's policy names the organization.
	orgEarly bool
	// grantFailures are findings from grants that could not be created, by
	// grantee; unverified, what a dry run could not check about a grant.
	grantFailures, unverified map[string]keypolicy.Finding
}

// planning is how a key policy is planned (key_policy_principals).
type planning struct {
	opts keypolicy.PlanOptions
	// auto names the organization scope only when naming each account
	// would not fit in 32 KiB.
	auto bool
}

func (p planning) plan(key keypolicy.Key, targets []keypolicy.Target) (*keypolicy.Plan, error) {
	// The launches the plan is for happen now: aws:CurrentTime and
	// aws:EpochTime are this moment.
	p.opts.Now = time.Now()
	if p.auto {
		return keypolicy.PlanPatchAuto(key, targets, p.opts)
	}
	return keypolicy.PlanPatch(key, targets, p.opts)
}

// replan computes the patch and grants for the key's current policy.
func (ks *keyState) replan(p *keypolicy.Policy) error {
	key := ks.key
	key.Policy = p
	plan, err := ks.planning.plan(key, ks.targets)
	switch {
	case errors.Is(err, keypolicy.ErrPolicyTooLarge):
		ks.plan, ks.planErr = plan, err
	case err != nil:
		return fmt.Errorf("plan key policy of %s: %w", ks.key.ARN, err)
	default:
		ks.plan, ks.planErr = plan, nil
	}
	return nil
}

// inspectImage reads one AMI: DescribeImages, then its snapshots and keys
// and its launch permissions side by side.
func (r *runState) inspectImage(ctx context.Context, im *imageState) error {
	ec2c := r.cl.EC2(source, im.region)
	out, err := ec2c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{im.id}})
	if err != nil && !isCode(err, "InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable") {
		return fmt.Errorf("describe image %s in %s: %w", im.id, im.region, err)
	}
	if err != nil || out == nil || len(out.Images) == 0 {
		return InputErrors{{Field: "ami_ids[" + im.region + "]", Value: im.id, Problem: "no such AMI in " + im.region + " (or the source account cannot see it)"}}
	}
	img := out.Images[0]
	var errs InputErrors
	for i, t := range r.explicit {
		if t.AccountID == aws.ToString(img.OwnerId) {
			errs = append(errs, FieldError{Field: fmt.Sprintf("target[%d].account_id", i), Value: t.AccountID, Problem: "owns " + im.id + ": the source account is not a target"})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	im.name = aws.ToString(img.Name)
	var snapIDs []string
	for _, bdm := range img.BlockDeviceMappings {
		if bdm.Ebs == nil || aws.ToString(bdm.Ebs.SnapshotId) == "" {
			continue
		}
		im.snapshots = append(im.snapshots, &snapshotState{id: aws.ToString(bdm.Ebs.SnapshotId), device: aws.ToString(bdm.DeviceName)})
		snapIDs = append(snapIDs, aws.ToString(bdm.Ebs.SnapshotId))
	}
	jobs := []func(context.Context) error{
		func(ctx context.Context) error { return r.readLaunchPermissions(ctx, ec2c, im) },
		func(ctx context.Context) error { return r.readSnapshots(ctx, ec2c, im, snapIDs) },
	}
	return forEach(ctx, len(jobs), len(jobs), func(ctx context.Context, i int) error { return jobs[i](ctx) })
}

func (r *runState) readLaunchPermissions(ctx context.Context, ec2c ec2API, im *imageState) error {
	out, err := ec2c.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(im.id), Attribute: ec2types.ImageAttributeNameLaunchPermission})
	if err != nil {
		return fmt.Errorf("read launch permissions of %s in %s: %w", im.id, im.region, err)
	}
	im.launch = map[string]bool{}
	for _, p := range out.LaunchPermissions {
		switch {
		case p.Group == ec2types.PermissionGroupAll:
			im.launch["all"] = true
		case p.UserId != nil:
			im.launch[*p.UserId] = true
		case p.OrganizationArn != nil:
			im.launch[*p.OrganizationArn] = true
		case p.OrganizationalUnitArn != nil:
			im.launch[*p.OrganizationalUnitArn] = true
		}
	}
	return nil
}

// readSnapshots reads the snapshots, then each distinct key and, when the
// snapshots are to be shared, their create-volume permissions.
func (r *runState) readSnapshots(ctx context.Context, ec2c ec2API, im *imageState, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	out, err := ec2c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: ids})
	if err != nil {
		return fmt.Errorf("describe snapshots of %s in %s: %w", im.id, im.region, err)
	}
	byID := map[string]ec2types.Snapshot{}
	for _, s := range out.Snapshots {
		byID[aws.ToString(s.SnapshotId)] = s
	}
	keys := map[string]*keyState{}
	for _, sn := range im.snapshots {
		s, ok := byID[sn.id]
		if !ok {
			return fmt.Errorf("describe snapshots of %s in %s: snapshot %s is missing from the answer", im.id, im.region, sn.id)
		}
		sn.encrypted = aws.ToBool(s.Encrypted)
		sn.key = aws.ToString(s.KmsKeyId)
		if sn.encrypted && keys[sn.key] == nil {
			keys[sn.key] = &keyState{region: im.region, key: keypolicy.Key{ARN: sn.key}}
			im.keys = append(im.keys, keys[sn.key])
		}
	}
	var jobs []func(context.Context) error
	for _, ks := range im.keys {
		jobs = append(jobs, func(ctx context.Context) error { return r.readKey(ctx, ks) })
	}
	if r.opts.ShareSnapshots {
		for _, sn := range im.snapshots {
			jobs = append(jobs, func(ctx context.Context) error { return readVolumePermissions(ctx, ec2c, im.region, sn) })
		}
	}
	return forEach(ctx, len(jobs), r.parallelism, func(ctx context.Context, i int) error { return jobs[i](ctx) })
}

func readVolumePermissions(ctx context.Context, ec2c ec2API, region string, sn *snapshotState) error {
	out, err := ec2c.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(sn.id), Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil {
		return fmt.Errorf("read create-volume permissions of %s in %s: %w", sn.id, region, err)
	}
	sn.volumeUsers = map[string]bool{}
	for _, p := range out.CreateVolumePermissions {
		if p.Group == ec2types.PermissionGroupAll {
			sn.volumeUsers["all"] = true
		} else if p.UserId != nil {
			sn.volumeUsers[*p.UserId] = true
		}
	}
	return nil
}

// readKey reads the key's metadata, policy and grants side by side. The
// policy and grants matter only for an enabled customer managed key, so
// their errors are ignored for any other.
func (r *runState) readKey(ctx context.Context, ks *keyState) error {
	kc := r.cl.KMS(source, ks.region)
	var (
		meta            *kmstypes.KeyMetadata
		policy          string
		grants          []keypolicy.Grant
		policyErr, gErr error
	)
	jobs := []func(context.Context) error{
		func(ctx context.Context) error {
			out, err := kc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(ks.key.ARN)})
			if err != nil {
				return fmt.Errorf("describe key %s: %w", ks.key.ARN, err)
			}
			meta = out.KeyMetadata
			return nil
		},
		func(ctx context.Context) error { policy, policyErr = getKeyPolicy(ctx, kc, ks.key.ARN); return nil },
		func(ctx context.Context) error { grants, gErr = listGrants(ctx, kc, ks.key.ARN); return nil },
	}
	if err := forEach(ctx, len(jobs), len(jobs), func(ctx context.Context, i int) error { return jobs[i](ctx) }); err != nil {
		return err
	}
	ks.key.Manager, ks.key.State = string(meta.KeyManager), string(meta.KeyState)
	ks.key.Spec, ks.key.Usage, ks.key.Origin = string(meta.KeySpec), string(meta.KeyUsage), string(meta.Origin)
	if meta.KeyManager != kmstypes.KeyManagerTypeCustomer || meta.KeyState != kmstypes.KeyStateEnabled {
		return nil
	}
	if policyErr != nil {
		return policyErr
	}
	if gErr != nil {
		return gErr
	}
	p, err := keypolicy.Parse([]byte(policy))
	if err != nil {
		return fmt.Errorf("parse key policy of %s: %w", ks.key.ARN, err)
	}
	ks.policyText, ks.key.Policy, ks.key.Grants = policy, p, grants
	return nil
}

func getKeyPolicy(ctx context.Context, kc kmsAPI, keyARN string) (string, error) {
	out, err := kc.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(keyARN), PolicyName: aws.String("default")})
	if err != nil {
		return "", fmt.Errorf("get key policy of %s: %w", keyARN, err)
	}
	return aws.ToString(out.Policy), nil
}

func listGrants(ctx context.Context, kc kmsAPI, keyARN string) ([]keypolicy.Grant, error) {
	var out []keypolicy.Grant
	pages := kms.NewListGrantsPaginator(kc, &kms.ListGrantsInput{KeyId: aws.String(keyARN)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list grants of %s: %w", keyARN, err)
		}
		for _, g := range page.Grants {
			kg := keypolicy.Grant{
				ID: aws.ToString(g.GrantId), Name: aws.ToString(g.Name),
				GranteePrincipal: aws.ToString(g.GranteePrincipal), RetiringPrincipal: aws.ToString(g.RetiringPrincipal),
				IssuingAccount: aws.ToString(g.IssuingAccount),
			}
			for _, op := range g.Operations {
				kg.Operations = append(kg.Operations, string(op))
			}
			if g.Constraints != nil {
				kg.EncryptionContextEquals, kg.EncryptionContextSubset = g.Constraints.EncryptionContextEquals, g.Constraints.EncryptionContextSubset
			}
			out = append(out, kg)
		}
	}
	return out, nil
}

func hasASGPath(t Target) bool {
	if len(t.Paths) == 0 {
		return true
	}
	for _, p := range t.Paths {
		if p == keypolicy.PathASG {
			return true
		}
	}
	return false
}

// checkDefaultRole asks IAM, through the target's role, whether the
// account's default Auto Scaling service-linked role exists. Without
// iam:GetRole the check is skipped with a warning.
func (r *runState) checkDefaultRole(ctx context.Context, t Target, region string) error {
	name := path.Base(keypolicy.DefaultAutoScalingRole("aws", t.AccountID))
	_, err := r.cl.IAM(t.principal(), region).GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	switch {
	case err == nil:
		return nil
	case isCode(err, "NoSuchEntity"):
		r.mu.Lock()
		r.missingRoles[keypolicy.DefaultAutoScalingRole(partitionOf(t.RoleARN), t.AccountID)] = true
		r.mu.Unlock()
		return nil
	case assumeRoleFailed(err):
		return fmt.Errorf("assume role %s of target %s: %w", t.RoleARN, t.AccountID, err)
	case isCode(err, "AccessDenied", "AccessDeniedException"):
		r.say(fmt.Sprintf("! cannot check that %s exists in %s (the role needs iam:GetRole): assuming it does", name, t.AccountID))
		return nil
	}
	return fmt.Errorf("read role %s of target %s as %s: %w", name, t.AccountID, t.RoleARN, err)
}

// discoverAutoScalingRoles lists, for an audit, every Auto Scaling
// service-linked role of a target (the default one and those with a custom
// suffix that groups made since the release), so that each is checked: a
// group created later with a new role would fail to launch the image. The
// list also says whether the default role exists (defaultRole: the target
// names no group), which a release asks GetRole.
func (r *runState) discoverAutoScalingRoles(ctx context.Context, t Target, region string, defaultRole bool) error {
	var roles []string
	pages := iam.NewListRolesPaginator(r.cl.IAM(t.principal(), region), &iam.ListRolesInput{PathPrefix: aws.String("/aws-service-role/autoscaling.amazonaws.com/")})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		switch {
		case assumeRoleFailed(err):
			return fmt.Errorf("assume role %s of target %s: %w", t.RoleARN, t.AccountID, err)
		case isCode(err, "AccessDenied", "AccessDeniedException"):
			r.say(fmt.Sprintf("! cannot list the Auto Scaling roles of %s (the role needs iam:ListRoles): checking the default one and those of the groups", t.AccountID))
			if defaultRole {
				return r.checkDefaultRole(ctx, t, region)
			}
			return nil
		case err != nil:
			return fmt.Errorf("list the Auto Scaling roles of %s as %s: %w", t.AccountID, t.RoleARN, err)
		}
		for _, role := range page.Roles {
			if arn := aws.ToString(role.Arn); keypolicy.IsAutoScalingServiceLinkedRole(arn) {
				roles = append(roles, arn)
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.discoveredRoles[t.AccountID] = roles
	if def := keypolicy.DefaultAutoScalingRole(partitionOf(t.RoleARN), t.AccountID); defaultRole && !contains(roles, def) {
		r.missingRoles[def] = true // the list answers what GetRole would
	}
	return nil
}

// asgResult is what one DescribeAutoScalingGroups in a target found.
type asgResult struct {
	region string
	found  map[string]string // group name → service-linked role ARN
}

// readGroups reads a target's Auto Scaling groups in a region, through the
// target's role, for their service-linked roles.
func (r *runState) readGroups(ctx context.Context, t Target, region string, res *asgResult) error {
	res.found = map[string]string{}
	pages := autoscaling.NewDescribeAutoScalingGroupsPaginator(r.cl.AutoScaling(t.principal(), region),
		&autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: t.AutoScalingGroups})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("describe Auto Scaling groups of %s in %s as %s: %w", t.AccountID, region, t.RoleARN, err)
		}
		for _, g := range page.AutoScalingGroups {
			role := aws.ToString(g.ServiceLinkedRoleARN)
			if role == "" {
				role = keypolicy.DefaultAutoScalingRole(partitionOf(t.RoleARN), t.AccountID)
			}
			res.found[aws.ToString(g.AutoScalingGroupName)] = role
		}
	}
	return nil
}

// recordGroups records the service-linked roles of a target's groups, by
// region, as they were found.
func (r *runState) recordGroups(t Target, results []asgResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, res := range results {
		if r.asgRoles[t.AccountID] == nil {
			r.asgRoles[t.AccountID] = map[string][]string{}
		}
		where := t.AccountID + "/" + res.region
		if r.groupsFound[where] == nil {
			r.groupsFound[where] = map[string]bool{}
		}
		for _, name := range sortedKeys(res.found) {
			r.groupsFound[where][name] = true
			if role := res.found[name]; !contains(r.asgRoles[t.AccountID][res.region], role) {
				r.asgRoles[t.AccountID][res.region] = append(r.asgRoles[t.AccountID][res.region], role)
			}
		}
	}
}

// missingGroups reports the groups of the target blocks found in none of
// their regions. organization_targets names the groups of every account,
// and an account may have none of them: that is only said.
func (r *runState) missingGroups(targets []Target) []FieldError {
	var errs []FieldError
	var absent []string // said after r.mu is let go: saying calls the UI
	defer func() {
		for _, line := range absent {
			r.say(line)
		}
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, t := range targets {
		if t.RoleARN == "" {
			continue
		}
		for _, name := range t.AutoScalingGroups {
			found := false
			for _, region := range r.targetRegions(t) {
				found = found || r.groupsFound[t.AccountID+"/"+region][name]
			}
			switch {
			case found:
			case t.member:
				absent = append(absent, fmt.Sprintf("! %s has no Auto Scaling group %s in %v", t.AccountID, name, r.targetRegions(t)))
			default:
				errs = append(errs, FieldError{Field: fmt.Sprintf("target[%d].autoscaling_groups", i), Value: name,
					Problem: fmt.Sprintf("no such Auto Scaling group in account %s in %v", t.AccountID, r.targetRegions(t))})
			}
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Field+errs[i].Value < errs[j].Field+errs[j].Value })
	return errs
}

func partitionOf(arn string) string {
	if a, err := keypolicy.ParseARN(arn); err == nil {
		return a.Partition
	}
	return "aws"
}

// assumeRoleFailed reports whether a call failed because its credentials,
// from sts:AssumeRole, could not be had: the role is not the one denying.
func assumeRoleFailed(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		var op *smithy.OperationError
		if !errors.As(err, &op) {
			return false
		}
		if op.Service() == "STS" && op.Operation() == "AssumeRole" {
			return true
		}
		err = op // continue below this operation
	}
	return false
}

// isCode reports whether err is an AWS API error with one of the codes.
func isCode(err error, codes ...string) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.ErrorCode() == c {
			return true
		}
	}
	return false
}
