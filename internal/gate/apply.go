package gate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/amigate/packer-plugin-amigate/internal/keylock"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// maxPolicyWrites bounds the PutKeyPolicy calls for one key when other
// writers keep changing the policy at the same time.
const maxPolicyWrites = 3

// apply makes the changes: it shares every AMI (and its snapshots when
// asked) and, for each key at the same time, patches the policy, creates
// the grants and reads them back. Nothing waits for another key or image.
func (r *runState) apply(ctx context.Context) error {
	var jobs []func(context.Context) error
	for _, region := range r.regions {
		im := r.images[region]
		jobs = append(jobs, func(ctx context.Context) error {
			defer r.track.done()
			return r.timed("share", func() error { return r.shareImage(ctx, im) })
		})
		if r.opts.ShareSnapshots {
			for _, sn := range im.snapshots {
				jobs = append(jobs, func(ctx context.Context) error {
					defer r.track.done()
					return r.timed("share", func() error { return r.shareSnapshot(ctx, im, sn) })
				})
			}
		}
		for _, ks := range im.keys {
			jobs = append(jobs, func(ctx context.Context) error {
				err := r.timed("patch", func() error { return r.patchKey(ctx, ks) })
				r.track.done()
				if err != nil {
					return err
				}
				return r.timed("grant", func() error { return r.grantKey(ctx, ks) })
			})
		}
	}
	r.track.start("apply", len(jobs)) // grantKey adds its grants
	return forEach(ctx, len(jobs), r.parallelism, func(ctx context.Context, i int) error { return jobs[i](ctx) })
}

// timed runs fn and keeps the longest time a step took; the steps of
// different keys and images overlap.
func (r *runState) timed(step string, fn func() error) error {
	start := time.Now()
	err := fn()
	r.mu.Lock()
	r.stepTimes[step] = max(r.stepTimes[step], time.Since(start))
	r.mu.Unlock()
	return err
}

// shareImage adds, in one ModifyImageAttribute, a launch permission for
// every target of the region (and every organization and OU) that lacks
// one. Nothing is removed.
func (r *runState) shareImage(ctx context.Context, im *imageState) error {
	if !r.opts.ShareImage {
		return nil
	}
	var add []ec2types.LaunchPermission
	var added []string
	if !im.launch["all"] {
		covered := maps.Clone(im.launch)
		for _, arn := range r.organizationShares(im.region) {
			if !im.launch[arn] {
				if strings.Contains(arn, ":ou/") {
					add = append(add, ec2types.LaunchPermission{OrganizationalUnitArn: aws.String(arn)})
				} else {
					add = append(add, ec2types.LaunchPermission{OrganizationArn: aws.String(arn)})
				}
				added = append(added, arn)
				covered[arn] = true
			}
		}
		for _, t := range r.targetsIn(im.region) {
			if !covered[t.AccountID] && !r.sharedThroughOrganization(covered, t.AccountID) {
				add = append(add, ec2types.LaunchPermission{UserId: aws.String(t.AccountID)})
				added = append(added, t.AccountID)
			}
		}
	}
	if len(add) == 0 {
		return nil
	}
	change := PermissionChange{Region: im.region, Resource: im.id, Added: added}
	in := &ec2.ModifyImageAttributeInput{ImageId: aws.String(im.id), LaunchPermission: &ec2types.LaunchPermissionModifications{Add: add}, DryRun: aws.Bool(r.opts.DryRun)}
	if r.opts.DryRun {
		err := r.dryRunEC2("share "+im.id+" in "+im.region, "ec2:ModifyImageAttribute", func() error {
			_, err := r.cl.EC2(source, im.region).ModifyImageAttribute(ctx, in)
			return err
		})
		if err != nil {
			return err
		}
	} else {
		if _, err := r.cl.EC2(source, im.region).ModifyImageAttribute(ctx, in); err != nil {
			return fmt.Errorf("share %s in %s with %s: %w", im.id, im.region, strings.Join(added, ", "), err)
		}
		change.Applied = true
	}
	for _, a := range added {
		im.launch[a] = true
	}
	r.say(fmt.Sprintf("%s shared %s in %s with %s", r.verb(), im.id, im.region, strings.Join(added, ", ")))
	r.mu.Lock()
	r.report.Changes.LaunchPermissions = append(r.report.Changes.LaunchPermissions, change)
	r.mu.Unlock()
	return nil
}

// shareSnapshot gives the region's targets create-volume permission on a
// snapshot, which copying the AMI needs.
func (r *runState) shareSnapshot(ctx context.Context, im *imageState, sn *snapshotState) error {
	var add []ec2types.CreateVolumePermission
	var added []string
	if !sn.volumeUsers["all"] {
		for _, t := range r.targetsIn(im.region) {
			if !sn.volumeUsers[t.AccountID] {
				add = append(add, ec2types.CreateVolumePermission{UserId: aws.String(t.AccountID)})
				added = append(added, t.AccountID)
			}
		}
	}
	if len(add) == 0 {
		return nil
	}
	change := PermissionChange{Region: im.region, Resource: sn.id, Added: added}
	in := &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(sn.id), Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission,
		CreateVolumePermission: &ec2types.CreateVolumePermissionModifications{Add: add}, DryRun: aws.Bool(r.opts.DryRun)}
	if r.opts.DryRun {
		err := r.dryRunEC2("share snapshot "+sn.id+" in "+im.region, "ec2:ModifySnapshotAttribute", func() error {
			_, err := r.cl.EC2(source, im.region).ModifySnapshotAttribute(ctx, in)
			return err
		})
		if err != nil {
			return err
		}
	} else {
		if _, err := r.cl.EC2(source, im.region).ModifySnapshotAttribute(ctx, in); err != nil {
			return fmt.Errorf("share snapshot %s in %s with %s: %w", sn.id, im.region, strings.Join(added, ", "), err)
		}
		change.Applied = true
	}
	for _, a := range added {
		sn.volumeUsers[a] = true
	}
	r.say(fmt.Sprintf("%s shared snapshot %s in %s with %s", r.verb(), sn.id, im.region, strings.Join(added, ", ")))
	r.mu.Lock()
	r.report.Changes.SnapshotPermissions = append(r.report.Changes.SnapshotPermissions, change)
	r.mu.Unlock()
	return nil
}

// verb prefixes a change in the progress lines.
func (r *runState) verb() string {
	if r.opts.DryRun {
		return "would have"
	}
	return "✔"
}

// patchKey writes the planned key policy under the key's policy lock
// (internal/keylock), so that runs gating on the same key at the same time
// take turns: under it, it reads the policy again and plans on what it
// reads, writes (at most one PutKeyPolicy, unless a writer that does not
// take the lock changes the policy at the same time) and reads back what
// it wrote. A writer outside the lock that replaced the policy is planned
// on again, so neither its statements nor amigate's are lost.
func (r *runState) patchKey(ctx context.Context, ks *keyState) (err error) {
	if r.opts.KeyPolicy != KeyPolicyPatch || ks.blocked {
		return nil
	}
	if ks.planErr != nil {
		r.block(ks, tooLargeFinding(ks))
		return nil
	}
	if !ks.plan.Changed {
		return nil
	}
	if stale := ks.key.Policy.StalePrincipals(); len(stale) > 0 {
		// KMS would refuse the PutKeyPolicy: say so, in a dry run too.
		r.block(ks, stalePrincipalFinding(ks, stale))
		r.say(fmt.Sprintf("✘ %s: the key policy of %s names a deleted principal; the patch cannot be written", keypolicy.CodeStalePrincipal, ks.key.ARN))
		return nil
	}
	change := KeyPolicyChange{Key: ks.key.ARN, Before: ks.policyText}
	if r.opts.DryRun {
		findings, err := r.sourcePatchFindings(ctx, ks, keypolicy.SeverityError)
		if err != nil {
			return err
		}
		for _, f := range findings {
			r.say("✘ " + f.Code + ": " + f.Message)
			r.addFinding(f)
		}
		change.After, change.Added = string(ks.plan.After), ks.plan.Added
		change.Diff = keypolicy.Diff(ks.plan.Before, ks.plan.After)
		p, err := keypolicy.Parse(ks.plan.After)
		if err != nil {
			return fmt.Errorf("planned key policy of %s: %w", ks.key.ARN, err)
		}
		ks.key.Policy = p
		r.recordPolicyChange(ks, change)
		return nil
	}
	kc := r.cl.KMS(source, ks.region)
	locker := &keylock.Locker{KMS: kc, KeyARN: ks.key.ARN, RunID: r.report.RunID, Wait: r.opts.LockTimeout, Say: r.say}
	lock, err := locker.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("patch key policy of %s: %w", ks.key.ARN, err)
	}
	defer func() {
		if rerr := lock.Release(ctx); rerr != nil && err == nil {
			err = rerr
		}
	}()
	change.LockWaitMS, change.LockTakenOver = lock.Waited.Milliseconds(), lock.TookOver
	// Nothing is sent under the lock after the holder's budget.
	ctx, cancel := lock.Context(ctx)
	defer cancel()
	basis := ks.policyText
	for {
		current, err := getKeyPolicy(ctx, kc, ks.key.ARN)
		if err != nil {
			return underLock(err, ks)
		}
		if current != basis {
			if done, err := r.replanOn(ks, current); done || err != nil {
				return err
			}
			basis = current
		}
		if change.Attempts == maxPolicyWrites {
			return fmt.Errorf("patch key policy of %s: it changed under amigate %d times; a writer that does not take amigate's lock (%s) keeps replacing it", ks.key.ARN, maxPolicyWrites, keylock.Name(ks.key.ARN))
		}
		planned := ks.plan
		if lock.Left() == 0 { // the machine slept past the budget
			return underLock(context.DeadlineExceeded, ks)
		}
		_, err = kc.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(ks.key.ARN), PolicyName: aws.String("default"), Policy: aws.String(string(planned.After))})
		if err != nil {
			return underLock(fmt.Errorf("put key policy of %s: %w", ks.key.ARN, err), ks)
		}
		change.Attempts++
		written, err := getKeyPolicy(ctx, kc, ks.key.ARN)
		if err != nil {
			return underLock(err, ks)
		}
		if written == string(planned.After) {
			change.Before, change.After, change.Added, change.Applied = basis, written, planned.Added, true
			change.Diff = keypolicy.Diff([]byte(basis), planned.After)
			if err := ks.adopt(written); err != nil {
				return err
			}
			r.recordPolicyChange(ks, change)
			return nil
		}
		r.say(fmt.Sprintf("! key policy of %s was changed by a writer outside amigate's lock while amigate wrote it; planning again on the new policy", ks.key.ARN))
		if done, err := r.replanOn(ks, written); done || err != nil {
			return err
		}
		basis = written
	}
}

// underLock explains an error that ran out the lock holder's budget.
func underLock(err error, ks *keyState) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (amigate holds the key policy lock of %s for at most %s, and stopped before finishing; nothing more was written)", err, ks.key.ARN, keylock.Hold)
	}
	return err
}

// replanOn plans again on a policy another writer wrote; done is true when
// it already gives the targets what they need.
func (r *runState) replanOn(ks *keyState, text string) (done bool, err error) {
	if err := ks.adopt(text); err != nil {
		return true, err
	}
	if err := ks.replan(ks.key.Policy); err != nil {
		return true, err
	}
	if ks.planErr != nil {
		r.block(ks, tooLargeFinding(ks))
		return true, nil
	}
	return !ks.plan.Changed, nil
}

// block records, once, why the key's policy cannot be patched: the run
// (and an organization run's every batch of targets) tries no more.
func (r *runState) block(ks *keyState, f keypolicy.Finding) {
	if !ks.blocked {
		ks.blocked = true
		r.addFinding(f)
	}
}

// adopt makes text the key's known policy.
func (ks *keyState) adopt(text string) error {
	p, err := keypolicy.Parse([]byte(text))
	if err != nil {
		return fmt.Errorf("parse key policy of %s: %w", ks.key.ARN, err)
	}
	ks.policyText, ks.key.Policy = text, p
	return nil
}

func (r *runState) recordPolicyChange(ks *keyState, change KeyPolicyChange) {
	var parts []string
	for _, sid := range sortedKeys(change.Added) {
		parts = append(parts, fmt.Sprintf("%s += %s", sid, strings.Join(change.Added[sid], ", ")))
	}
	r.say(fmt.Sprintf("%s patched the key policy of %s: %s", r.verb(), ks.key.ARN, strings.Join(parts, "; ")))
	r.mu.Lock()
	r.report.Changes.KeyPolicies = append(r.report.Changes.KeyPolicies, change)
	r.mu.Unlock()
}

func stalePrincipalFinding(ks *keyState, stale []keypolicy.Stale) keypolicy.Finding {
	var where []string
	for _, st := range stale {
		where = append(where, st.ID+" in statement "+st.Statement)
	}
	return keypolicy.Finding{Code: keypolicy.CodeStalePrincipal, Severity: keypolicy.SeverityError, Actions: []string{"kms:PutKeyPolicy"},
		Statement: stale[0].Statement,
		Message: fmt.Sprintf("the key policy of %s names deleted principals by their unique ids (%s): KMS refuses any PutKeyPolicy that keeps them, so the targets' statements cannot be added",
			ks.key.ARN, strings.Join(where, ", ")),
		Fix: "the key owner removes those principals (or the statements, if nothing else is in them) from the key policy, then runs amigate again; amigate never edits statements it does not own"}
}

func tooLargeFinding(ks *keyState) keypolicy.Finding {
	return keypolicy.Finding{Code: keypolicy.CodeKeyPolicyTooLarge, Severity: keypolicy.SeverityError, Actions: []string{},
		Message: fmt.Sprintf("the key policy of %s cannot take the targets: %v", ks.key.ARN, ks.planErr),
		Fix:     "name the targets by their organization or OUs (target_organizations, target_organizational_units): past 32 KiB amigate then writes one statement per purpose limited by aws:PrincipalOrgID or aws:PrincipalOrgPaths (key_policy_principals)"}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// grantKey creates, for each Auto Scaling service-linked role of the key's
// targets without one, the grant it needs: from the target through its role
// (AWS's documented way), or from the source account. Names are
// deterministic, so CreateGrant is idempotent. The verdict counts the
// grants KMS confirmed by answering CreateGrant, rather than reading them
// back: ListGrants is eventually consistent and may not list a new grant
// yet.
func (r *runState) grantKey(ctx context.Context, ks *keyState) error {
	if !r.opts.CreateGrants || ks.plan == nil || len(ks.plan.Grants) == 0 {
		return nil
	}
	var grants []keypolicy.Grant
	r.mu.Lock()
	for _, g := range ks.plan.Grants {
		if !r.missingRoles[g.GranteePrincipal] { // no grant can name a role that does not exist
			grants = append(grants, g)
		}
	}
	r.mu.Unlock()
	r.track.add(len(grants))
	return forEach(ctx, len(grants), r.parallelism, func(ctx context.Context, i int) error {
		defer r.track.done()
		return r.createGrant(ctx, ks, grants[i])
	})
}

func (r *runState) createGrant(ctx context.Context, ks *keyState, g keypolicy.Grant) error {
	grantee, _ := keypolicy.ParseARN(g.GranteePrincipal)
	t, ok := r.target(grantee.Account)
	if !ok {
		return fmt.Errorf("grant for %s: account %s is not a target", g.GranteePrincipal, grantee.Account)
	}
	from, who, fromAccount := GrantFromSource, source, ""
	if r.grantFrom(t) == GrantFromTarget {
		from, who, fromAccount = GrantFromTarget, t.principal(), t.AccountID
	}
	if keyARN, err := keypolicy.ParseKeyARN(ks.key.ARN); err == nil && fromAccount == "" {
		fromAccount = keyARN.Account
	}
	change := GrantChange{Key: ks.key.ARN, Grantee: g.GranteePrincipal, Name: g.Name, Operations: g.Operations, From: from}
	ops := make([]kmstypes.GrantOperation, len(g.Operations))
	for i, op := range g.Operations {
		ops[i] = kmstypes.GrantOperation(op)
	}
	in := &kms.CreateGrantInput{KeyId: aws.String(ks.key.ARN), GranteePrincipal: aws.String(g.GranteePrincipal), Operations: ops, Name: aws.String(g.Name)}
	if r.opts.DryRun {
		if ok, err := r.dryRunGrant(ctx, ks, g, t, who, from, fromAccount, in); !ok || err != nil {
			return err
		}
	} else {
		out, err := r.cl.KMS(who, ks.region).CreateGrant(ctx, in)
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) {
			r.grantFailed(ks, g, t, from, fromAccount, apiErr.ErrorCode()+": "+apiErr.ErrorMessage())
			return nil
		}
		if err != nil {
			return fmt.Errorf("create grant for %s on %s from %s: %w", g.GranteePrincipal, ks.key.ARN, fromAccount, err)
		}
		change.GrantID, change.Applied = aws.ToString(out.GrantId), true
		r.mu.Lock()
		r.grantTimes[t.AccountID] = time.Now()
		r.mu.Unlock()
	}
	r.say(fmt.Sprintf("%s created grant %s for %s on %s from %s", r.verb(), g.Name, g.GranteePrincipal, ks.key.ARN, fromAccount))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report.Changes.Grants = append(r.report.Changes.Grants, change)
	g.ID, g.IssuingAccount = change.GrantID, fromAccount
	ks.key.Grants = append(ks.key.Grants, g)
	return nil
}

// grantFailed records that the grant could not be created (or, in a dry
// run, would not be): the target's Auto Scaling path reports why.
func (r *runState) grantFailed(ks *keyState, g keypolicy.Grant, t Target, from, fromAccount, why string) {
	r.track.fail(t.AccountID)
	r.say(fmt.Sprintf("✘ %s grant %s for %s from %s failed: %s", map[bool]string{true: "checking (dry run) the", false: "creating"}[r.opts.DryRun], g.Name, g.GranteePrincipal, fromAccount, why))
	r.mu.Lock()
	defer r.mu.Unlock()
	if ks.grantFailures == nil {
		ks.grantFailures = map[string]keypolicy.Finding{}
	}
	ks.grantFailures[g.GranteePrincipal] = keypolicy.Finding{Code: keypolicy.CodeGrantMissing, Severity: keypolicy.SeverityError, Actions: []string{"kms:CreateGrant"},
		Message: fmt.Sprintf("amigate could not create the grant for %s from account %s: %s", g.GranteePrincipal, fromAccount, why),
		Fix:     grantFix(ks, g.GranteePrincipal, t.AccountID, from == GrantFromTarget)}
}

func grantFix(ks *keyState, role, account string, fromTarget bool) string {
	keyARN, err := keypolicy.ParseKeyARN(ks.key.ARN)
	if err != nil {
		return ""
	}
	return keypolicy.GrantCommand(keyARN, role, account, fromTarget)
}

func (r *runState) target(account string) (Target, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.opts.Targets {
		if t.AccountID == account {
			return t, true
		}
	}
	return Target{}, false
}
