package gate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// discover reads, all at once, what the run works on: each AMI with its
// snapshots, keys and launch permissions; each target's Auto Scaling roles;
// and the accounts of the target organizations, each target inspected as
// soon as the page that lists it arrives. An organization of hundreds of
// accounts is listed at AWS Organizations' few calls a second, so while it
// is, the run also does what the accounts already found need (stream).
func (r *runState) discover(ctx context.Context) error {
	for _, region := range r.regions {
		r.images[region] = &imageState{region: region, id: r.opts.AMIs[region]}
	}
	r.explicit = r.opts.Targets[:len(r.opts.Targets):len(r.opts.Targets)]
	orgs := len(r.opts.TargetOrganizations)+len(r.opts.TargetOrganizationalUnits) > 0
	p := newPool(ctx, r.parallelism)
	st := newStream(r, orgs, len(r.explicit))
	r.track.start("inspect", 0)
	var images sync.WaitGroup
	for _, region := range r.regions {
		im := r.images[region]
		images.Add(1)
		r.track.add(1)
		p.Go(func(ctx context.Context) error {
			defer images.Done()
			defer r.track.done()
			return r.inspectImage(ctx, im)
		})
	}
	for _, t := range r.explicit {
		st.found()
		r.inspectTarget(p, t, st.inspectedExplicit)
	}
	if orgs {
		p.lead(func(ctx context.Context) error {
			defer st.walked()
			return r.resolveOrganizations(ctx, st.scoped, func(t Target) {
				st.found()
				r.inspectTarget(p, t, st.inspected)
			})
		})
		p.lead(func(ctx context.Context) error {
			images.Wait()
			return st.run(ctx)
		})
	}
	stop := context.AfterFunc(p.ctx, st.wake)
	defer stop()
	if err := p.Wait(); err != nil {
		return err
	}
	if errs := r.missingGroups(r.opts.Targets); len(errs) > 0 {
		return InputErrors(errs)
	}
	for _, region := range r.regions {
		im := r.images[region]
		info := ImageInfo{Region: region, ID: im.id, Name: im.name, Snapshots: []SnapshotInfo{}}
		for _, sn := range im.snapshots {
			info.Snapshots = append(info.Snapshots, SnapshotInfo{ID: sn.id, Device: sn.device, Encrypted: sn.encrypted, Key: sn.key})
		}
		r.report.Images = append(r.report.Images, info)
		for _, ks := range im.keys {
			r.report.Keys = append(r.report.Keys, KeyInfo{KeyInfo: keypolicy.KeyInfo{ARN: ks.key.ARN, Manager: ks.key.Manager, State: ks.key.State}, Region: region})
		}
		r.say(fmt.Sprintf("inspected %s in %s: %d snapshot(s), %d key(s)", im.id, region, len(im.snapshots), len(im.keys)))
	}
	return nil
}

// inspectTarget reads, through the target's role, what its grants depend
// on: whether its default Auto Scaling role exists, the service-linked
// roles of its groups in each region (and, in an audit, every Auto Scaling
// role of the account); done is called once all of it is known.
func (r *runState) inspectTarget(p *pool, t Target, done func(Target)) {
	var jobs []func(context.Context) error
	var results []asgResult
	if t.RoleARN != "" {
		defaultRole := len(t.AutoScalingGroups) == 0 && len(t.ServiceLinkedRoleARNs) == 0 && hasASGPath(t)
		region := r.targetRegions(t)[0]
		switch {
		case r.opts.Audit && hasASGPath(t):
			// Every Auto Scaling role of the account, the default one
			// among them.
			jobs = append(jobs, func(ctx context.Context) error { return r.discoverAutoScalingRoles(ctx, t, region, defaultRole) })
		case defaultRole:
			// The grant will name the account's default Auto Scaling role,
			// which exists only once Auto Scaling made it. Asking IAM also
			// assumes the role now, while the images are read, rather
			// than on the critical path of the grants.
			jobs = append(jobs, func(ctx context.Context) error { return r.checkDefaultRole(ctx, t, region) })
		}
		if len(t.AutoScalingGroups) > 0 {
			regions := r.targetRegions(t)
			results = make([]asgResult, len(regions))
			for i, region := range regions {
				results[i].region = region
				jobs = append(jobs, func(ctx context.Context) error { return r.readGroups(ctx, t, region, &results[i]) })
			}
		}
	}
	finish := func() {
		r.recordGroups(t, results)
		done(t)
	}
	if len(jobs) == 0 {
		finish()
		return
	}
	r.track.add(len(jobs))
	left := atomic.Int32{}
	left.Store(int32(len(jobs)))
	for _, job := range jobs {
		p.Go(func(ctx context.Context) error {
			defer r.track.done()
			if err := job(ctx); err != nil {
				return err
			}
			if left.Add(-1) == 0 {
				finish()
			}
			return nil
		})
	}
}

// stream does, while the target organizations are still walked, what the
// targets found so far need, so that a run over hundreds of accounts takes
// little longer than listing them (AWS Organizations answers a few calls a
// second): once the key policy of a key must name the organization rather
// than each account — because key_policy_principals = "organization", or
// because the accounts found so far already do not fit in 32 KiB, which
// more accounts would only make worse — it is patched at once, and each
// target then gets its Auto Scaling grants as soon as it is inspected. What
// is left (sharing, the keys still planned per account) is done after the
// walk, as without organizations.
//
// Nothing is changed before everything a bad input could reveal is known:
// the images and their keys passed the key checks, the target
// organizations and OUs exist, and the target blocks' groups were found.
type stream struct {
	r  *runState
	on bool

	mu   sync.Mutex
	cond *sync.Cond
	// ready are the targets inspected, in order; pending counts those
	// found and not yet inspected.
	ready   []Target
	pending int
	// explicitLeft counts the target blocks not yet inspected.
	explicitLeft int
	// orgKnown is set once the organization and its OUs are known to
	// exist, walkDone once the walk ended (well or not).
	orgKnown, walkDone bool
	stopped            bool
}

func newStream(r *runState, on bool, explicit int) *stream {
	st := &stream{r: r, on: on, explicitLeft: explicit}
	st.cond = sync.NewCond(&st.mu)
	return st
}

func (st *stream) update(fn func()) {
	st.mu.Lock()
	fn()
	st.mu.Unlock()
	st.cond.Broadcast()
}

func (st *stream) found()  { st.update(func() { st.pending++ }) }
func (st *stream) scoped() { st.update(func() { st.orgKnown = true }) }
func (st *stream) walked() { st.update(func() { st.walkDone = true }) }
func (st *stream) wake()   { st.update(func() { st.stopped = true }) }

func (st *stream) inspected(t Target) {
	st.update(func() { st.ready, st.pending = append(st.ready, t), st.pending-1 })
}

func (st *stream) inspectedExplicit(t Target) {
	st.update(func() { st.ready, st.pending, st.explicitLeft = append(st.ready, t), st.pending-1, st.explicitLeft-1 })
}

// earlyKey is what the stream did with one key.
type earlyKey struct {
	ks *keyState
	// next is how many targets the per-account plan is tried with next
	// (it doubles each time it still fits).
	next int
	// granted counts the ready targets whose grants were made.
	granted int
}

// run works on the targets as they become ready, until the walk ended and
// every target found was inspected.
func (st *stream) run(ctx context.Context) error {
	r := st.r
	if !st.on || r.opts.KeyPolicy != KeyPolicyPatch {
		return nil
	}
	// The inputs first: the organization's scope, the target blocks.
	st.mu.Lock()
	for !st.stopped && !st.walkDone && (!st.orgKnown || st.explicitLeft > 0) {
		st.cond.Wait()
	}
	known := st.orgKnown && st.explicitLeft == 0
	st.mu.Unlock()
	if !known || ctx.Err() != nil || hasError(r.keyFindings()) || len(r.missingGroups(r.explicit)) > 0 {
		return nil // the steps after the walk report it; nothing is changed here
	}
	var keys []*earlyKey
	var shares []func(context.Context) error
	for _, region := range r.regions {
		im := r.images[region]
		for _, ks := range im.keys {
			keys = append(keys, &earlyKey{ks: ks, next: 32})
		}
		if len(r.organizationShares(region)) > 0 {
			// Shared with the organization or OUs, whatever accounts
			// they turn out to hold.
			shares = append(shares, func(ctx context.Context) error { return r.shareImage(ctx, im) })
		}
	}
	if err := forEach(ctx, len(shares), len(shares), func(ctx context.Context, i int) error { return shares[i](ctx) }); err != nil {
		return err
	}
	for seen := 0; ; {
		st.mu.Lock()
		for !st.stopped && len(st.ready) == seen && !(st.walkDone && st.pending == 0) {
			st.cond.Wait()
		}
		ready, last := st.ready, st.walkDone && st.pending == 0
		seen = len(ready)
		st.mu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err := forEach(ctx, len(keys), len(keys), func(ctx context.Context, i int) error { return st.advance(ctx, keys[i], ready) })
		if err != nil || last {
			return err
		}
	}
}

// advance brings one key up to the targets ready: it decides whether the
// key's policy must name the organization, patches it once it must, and
// then creates the grants of the targets that became ready since.
func (st *stream) advance(ctx context.Context, ek *earlyKey, ready []Target) error {
	r, ks := st.r, ek.ks
	targets := func(from int) []keypolicy.Target {
		var out []keypolicy.Target
		for _, t := range ready[from:] {
			if r.inRegion(t, ks.region) {
				out = append(out, r.keyTarget(t, ks.region))
			}
		}
		return out
	}
	org := r.planning().opts
	if !ks.orgEarly {
		if org.Organization == nil { // no scope, or key_policy_principals = "accounts"
			return nil
		}
		if r.opts.KeyPolicyPrincipals != PrincipalsOrganization {
			if len(ready) < ek.next {
				return nil
			}
			// The per-account plan only grows with more accounts: once too
			// large, it stays so.
			if _, err := (planning{}).plan(ks.key, targets(0)); !errors.Is(err, keypolicy.ErrPolicyTooLarge) {
				ek.next *= 2
				return nil
			}
		}
		ks.orgEarly = true
		ks.planning = planning{opts: org}
		r.say(fmt.Sprintf("the key policy of %s names the organization (key_policy_principals = %q): patching it while the organization is still listed", ks.key.ARN, principalsMode(r.opts.KeyPolicyPrincipals)))
		ks.targets = targets(0)
	} else {
		ks.targets = targets(ek.granted)
	}
	if err := ks.replan(ks.key.Policy); err != nil {
		return err
	}
	if ks.plan.Changed && ek.granted > 0 {
		// The new targets need the policy to grow (another OU): plan
		// on all of them.
		ks.targets = targets(0)
		if err := ks.replan(ks.key.Policy); err != nil {
			return err
		}
	}
	if err := r.patchKey(ctx, ks); err != nil || ks.blocked {
		// A policy that cannot be patched leaves the grants to the
		// apply step, which tries each once.
		return err
	}
	ek.granted = len(ready)
	return r.grantKey(ctx, ks)
}

// principalsMode is key_policy_principals, with its default.
func principalsMode(s string) string {
	if s == "" {
		return PrincipalsAuto
	}
	return s
}

func hasError(findings []keypolicy.Finding) bool {
	for _, f := range findings {
		if f.Severity == keypolicy.SeverityError {
			return true
		}
	}
	return false
}
