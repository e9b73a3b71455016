package gate

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"sync"
	"time"

	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// keyPolicyCodes are the findings about the key policy, which key_policy =
// "ignore" reports as warnings.
var keyPolicyCodes = map[string]bool{
	keypolicy.CodeKeyPolicyMissing:   true,
	keypolicy.CodeKeyPolicyDenies:    true,
	keypolicy.CodeSourceIPCondition:  true,
	keypolicy.CodeViaServiceMismatch: true,
	keypolicy.CodeIdentityPolicy:     true,
}

// verify re-evaluates every target's paths against the keys as they are now
// (the policy as read back after writing, the grants as KMS confirmed them;
// in a dry run, as the planned changes would leave them), and adds
// what keypolicy cannot see: sharing, and grants that could not be created.
func (r *runState) verify(context.Context) error {
	index := map[string]int{}
	for _, t := range r.opts.Targets {
		index[t.AccountID] = len(r.report.Targets)
		r.report.Targets = append(r.report.Targets, TargetReport{Account: t.AccountID, OK: true, Paths: []PathReport{}})
	}
	var keys []*keyState
	for _, region := range r.regions {
		keys = append(keys, r.images[region].keys...)
	}
	verdicts := make(map[*keyState]keypolicy.Verdict, len(keys))
	results := make([]keypolicy.Verdict, len(keys))
	// The verdict is about launches now (aws:CurrentTime, aws:EpochTime).
	now := time.Now()
	// Evaluating is pure computation: one key per core.
	_ = forEach(context.Background(), len(keys), runtime.GOMAXPROCS(0), func(_ context.Context, i int) error {
		results[i] = keypolicy.CheckWith(keys[i].key, keys[i].targets, keypolicy.CheckOptions{Now: now})
		return nil
	})
	for i, ks := range keys {
		verdicts[ks] = results[i]
	}
	for _, region := range r.regions {
		im := r.images[region]
		for _, ks := range im.keys {
			v := verdicts[ks]
			for _, tv := range v.Targets {
				tr := &r.report.Targets[index[tv.Account]]
				for _, pv := range tv.Paths {
					pr := PathReport{PathVerdict: pv, Region: region, Image: im.id, Key: ks.key.ARN}
					r.annotate(&pr, tv.Account, im, ks)
					tr.OK = tr.OK && pr.OK
					tr.Paths = append(tr.Paths, pr)
				}
			}
		}
		if len(im.keys) == 0 { // unencrypted, allowed: only sharing matters
			for _, t := range r.targetsIn(region) {
				tr := &r.report.Targets[index[t.AccountID]]
				pr := PathReport{PathVerdict: keypolicy.PathVerdict{Path: keypolicy.PathInstance, Principal: keypolicy.AnyPrincipal(partitionOf(t.RoleARN), t.AccountID), OK: true, Findings: []keypolicy.Finding{}},
					Region: region, Image: im.id}
				r.annotate(&pr, t.AccountID, im, nil)
				tr.OK = tr.OK && pr.OK
				tr.Paths = append(tr.Paths, pr)
			}
		}
	}
	r.track.start("verify", len(r.report.Targets))
	for _, tr := range r.report.Targets {
		for _, p := range tr.Paths {
			r.sayPath(tr.Account, p)
		}
		if !tr.OK {
			r.track.fail(tr.Account)
		}
		r.track.done()
	}
	return nil
}

// annotate adds sharing and grant-creation findings to a path, applies
// key_policy = "ignore", and sets OK from the errors left.
func (r *runState) annotate(pr *PathReport, account string, im *imageState, ks *keyState) {
	if !im.launch["all"] && !im.launch[account] && !r.sharedThroughOrganization(im.launch, account) {
		pr.Findings = append(pr.Findings, keypolicy.Finding{Code: keypolicy.CodeImageNotShared, Severity: keypolicy.SeverityError, Actions: []string{},
			Message: fmt.Sprintf("%s in %s has no launch permission for account %s", im.id, im.region, account),
			Fix:     fmt.Sprintf("set share_image = true, or: aws ec2 modify-image-attribute --region %s --image-id %s --launch-permission 'Add=[{UserId=%s}]'", im.region, im.id, account)})
	}
	if pr.Path == keypolicy.PathCopy {
		for _, sn := range im.snapshots {
			if sn.volumeUsers != nil && !sn.volumeUsers["all"] && !sn.volumeUsers[account] {
				pr.Findings = append(pr.Findings, keypolicy.Finding{Code: keypolicy.CodeSnapshotNotShared, Severity: keypolicy.SeverityError, Actions: []string{},
					Message: fmt.Sprintf("snapshot %s of %s has no create-volume permission for account %s, which copying the image needs", sn.id, im.id, account),
					Fix:     fmt.Sprintf("aws ec2 modify-snapshot-attribute --region %s --snapshot-id %s --attribute createVolumePermission --operation-type add --user-ids %s", im.region, sn.id, account)})
			}
		}
	}
	if pr.Path == keypolicy.PathASG && r.missingRoles[pr.Principal] {
		pr.Findings = append(pr.Findings, keypolicy.Finding{Code: keypolicy.CodeServiceLinkedRole, Severity: keypolicy.SeverityError, Actions: []string{},
			Message: fmt.Sprintf("account %s has no %s yet: Auto Scaling creates it with the account's first group, and no grant can name it before", account, pr.Principal),
			Fix:     fmt.Sprintf("in account %s: aws iam create-service-linked-role --aws-service-name autoscaling.amazonaws.com, then run amigate again (or name the groups in autoscaling_groups)", account)})
	}
	if ks != nil && pr.Path == keypolicy.PathASG {
		if f, ok := ks.unverified[pr.Principal]; ok {
			pr.Findings = append(pr.Findings, f)
		}
		if f, failed := ks.grantFailures[pr.Principal]; failed && !pr.OK {
			for i := range pr.Findings {
				if pr.Findings[i].Code == keypolicy.CodeGrantMissing {
					pr.Findings[i] = f
				}
			}
		}
	}
	pr.OK = true
	for i := range pr.Findings {
		f := &pr.Findings[i]
		if r.opts.KeyPolicy == KeyPolicyIgnore && keyPolicyCodes[f.Code] {
			f.Severity = keypolicy.SeverityWarning
		}
		if f.Severity == keypolicy.SeverityError {
			pr.OK = false
		}
	}
}

func (r *runState) sayPath(account string, p PathReport) {
	mark := "✔"
	if !p.OK {
		mark = "✘"
	}
	r.say(fmt.Sprintf("%s %s %s %-8s %s", mark, account, p.Region, p.Path, p.Principal))
	for _, f := range p.Findings {
		r.say(fmt.Sprintf("    %s %s", f.Severity, f.Code))
	}
}

// confirm reads again, right before the verdict is given, what it rests on
// that another writer could change during the run: each key's policy and
// each AMI's launch permissions. When either changed since it was
// verified, every target is verified again on what AWS holds now, so a
// green never stands on a state that no longer exists. (Grants are taken
// as CreateGrant confirmed them: ListGrants may not list a new grant yet.)
func (r *runState) confirm(ctx context.Context) error {
	if r.opts.DryRun {
		return nil
	}
	var (
		mu      sync.Mutex
		changed []string
		jobs    []func(context.Context) error
	)
	note := func(what string) {
		mu.Lock()
		changed = append(changed, what)
		mu.Unlock()
	}
	for _, region := range r.regions {
		im := r.images[region]
		jobs = append(jobs, func(ctx context.Context) error {
			before := im.launch
			if err := r.readLaunchPermissions(ctx, r.cl.EC2(source, im.region), im); err != nil {
				return err
			}
			if !maps.Equal(before, im.launch) {
				note("the launch permissions of " + im.id + " in " + im.region)
			}
			return nil
		})
		for _, ks := range im.keys {
			if ks.key.Policy == nil {
				continue
			}
			jobs = append(jobs, func(ctx context.Context) error {
				text, err := getKeyPolicy(ctx, r.cl.KMS(source, ks.region), ks.key.ARN)
				if err != nil || text == ks.policyText {
					return err
				}
				note("the key policy of " + ks.key.ARN)
				return ks.adopt(text)
			})
		}
	}
	if err := forEach(ctx, len(jobs), r.parallelism, func(ctx context.Context, i int) error { return jobs[i](ctx) }); err != nil {
		return fmt.Errorf("read again what the verdict rests on: %w", err)
	}
	if len(changed) == 0 {
		return nil
	}
	for _, what := range changed {
		r.say("! " + what + " changed during the run (another writer): verifying every target again on what AWS holds now")
	}
	r.report.Targets = []TargetReport{}
	if err := r.verify(ctx); err != nil {
		return err
	}
	for _, fl := range r.failedLaunches {
		r.track.fail(fl.t.AccountID)
		r.addLaunchFinding(fl.t, fl.region, fl.out, fl.finding)
	}
	return nil
}
