package gate

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/launch"
	"github.com/amigate/packer-plugin-amigate/internal/trail"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// Test-launch defaults.
const (
	// DefaultGrantWait is how long after creating a grant a launch failing
	// on the key is retried: grants take up to about five minutes to reach
	// every KMS host.
	DefaultGrantWait = 5 * time.Minute
	// DefaultTrailWait bounds the wait for CloudTrail to deliver the KMS
	// event of a failed launch (it usually takes minutes).
	DefaultTrailWait = 2 * time.Minute
)

// testLaunch launches the AMI in every target and region, as configured,
// also where the verdict already fails (the launch is AWS's own word, and
// its evidence names what the verdict guessed), and turns each failure into
// a LAUNCH_FAILED finding. Every resource it creates is deleted
// before it returns, whatever happens.
func (r *runState) testLaunch(ctx context.Context) error {
	if r.opts.TestLaunch == TestLaunchNone {
		return nil
	}
	if r.opts.DryRun {
		f := testLaunchUnverified(r.opts.TestLaunch)
		r.say("✘ " + f.Code + ": " + f.Message)
		r.addFinding(f)
		return nil
	}
	type job struct {
		t      Target
		region string
		group  string
	}
	var jobs []job
	for _, t := range r.opts.Targets {
		for _, region := range r.targetRegions(t) {
			if r.opts.TestLaunch == TestLaunchInstance {
				jobs = append(jobs, job{t, region, ""})
				continue
			}
			for _, g := range t.AutoScalingGroups {
				if r.groupsFound[t.AccountID+"/"+region][g] { // a group may live in some regions only
					jobs = append(jobs, job{t, region, g})
				}
			}
		}
	}
	r.track.start("test launch", len(jobs))
	return forEach(ctx, len(jobs), r.parallelism, func(ctx context.Context, i int) error {
		defer r.track.done()
		return r.launchOne(ctx, jobs[i].t, jobs[i].region, jobs[i].group)
	})
}

// launchOne runs one test launch and its cleanup.
func (r *runState) launchOne(ctx context.Context, t Target, region, group string) (err error) {
	who := t.principal()
	l := &launch.Launcher{EC2: r.cl.EC2(who, region), AutoScaling: r.cl.AutoScaling(who, region), Say: r.say}
	cleanup := r.newCleanup()
	clean := func() error {
		if cerr := cleanup.Run(ctx); cerr != nil {
			r.say("✘ test launch left resources behind: " + cerr.Error())
			return fmt.Errorf("test launch in %s %s: %w", t.AccountID, region, cerr)
		}
		return nil
	}
	defer func() { // after a panic or an error; a no-op once clean has run
		if cerr := clean(); err == nil {
			err = cerr
		}
	}()
	req := launch.Request{
		Mode: r.opts.TestLaunch, RunID: r.report.RunID, Account: t.AccountID, Region: region, AMI: r.opts.AMIs[region], Group: group,
		InstanceType: r.opts.InstanceType, SubnetID: r.opts.SubnetID, Timeout: r.opts.TestLaunchTimeout,
		RetryKMSUntil: r.grantedAt(t.AccountID).Add(r.grantWait()), PollMin: r.opts.pollMin, PollMax: r.opts.pollMax,
	}
	out, err := l.Run(ctx, req, cleanup)
	if err != nil {
		return fmt.Errorf("test launch in %s %s: %w", t.AccountID, region, err)
	}
	// Delete what the launch made before the diagnosis waits on CloudTrail.
	if err := clean(); err != nil {
		return err
	}
	r.mu.Lock()
	r.report.Launches = append(r.report.Launches, out)
	r.mu.Unlock()
	where := t.AccountID + " " + region
	if group != "" {
		where += " (group " + group + ")"
	}
	if out.OK {
		r.say(fmt.Sprintf("✔ test launch in %s: %s in service after %s", where, out.InstanceID, out.Took.Round(time.Millisecond)))
		return nil
	}
	r.say(fmt.Sprintf("✘ test launch in %s failed: %s", where, out.Reason))
	f := r.diagnose(ctx, t, region, out)
	r.track.fail(t.AccountID) // outside r.mu: it calls the UI
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failedLaunches = append(r.failedLaunches, failedLaunch{t, region, out, f})
	r.addLaunchFinding(t, region, out, f)
	return nil
}

// failedLaunch is a test launch that failed, and what it found.
type failedLaunch struct {
	t       Target
	region  string
	out     launch.Outcome
	finding keypolicy.Finding
}

func (r *runState) grantWait() time.Duration {
	if r.opts.TestLaunchGrantWait > 0 {
		return r.opts.TestLaunchGrantWait
	}
	return DefaultGrantWait
}

// grantedAt is when this run created the last grant for one of the
// account's roles, or the zero time.
func (r *runState) grantedAt(account string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.grantTimes[account]
}

func (r *runState) newCleanup() *launch.Cleanup {
	c := &launch.Cleanup{}
	r.mu.Lock()
	r.cleanups = append(r.cleanups, c)
	r.mu.Unlock()
	return c
}

// cleanupAll runs every cleanup still pending: after a panic, or when the
// run ends in any other way.
func (r *runState) cleanupAll(ctx context.Context) error {
	r.mu.Lock()
	cs := r.cleanups
	r.mu.Unlock()
	var errs []string
	for _, c := range cs {
		if err := c.Run(ctx); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("test launch cleanup: %s", strings.Join(errs, "; "))
	}
	return nil
}

// diagnose explains a failed launch: AWS's message, the KMS denials
// CloudTrail recorded in the target during the launch (waiting a bounded
// time for their delivery), and the static verdict's fix.
func (r *runState) diagnose(ctx context.Context, t Target, region string, out launch.Outcome) keypolicy.Finding {
	f := keypolicy.Finding{Code: keypolicy.CodeLaunchFailed, Severity: keypolicy.SeverityError, Actions: []string{},
		Message: fmt.Sprintf("the test launch of %s in %s %s failed: %s", r.opts.AMIs[region], t.AccountID, region, out.Reason)}
	if out.WaitedForGrants {
		f.Message += fmt.Sprintf(" (still failing %s after the grant was created)", r.grantWait())
	}
	var found []trail.Finding
	if out.KMS {
		found = r.lookupDenials(ctx, t, region, out)
	}
	for _, d := range found {
		f.Actions = append(f.Actions, d.Actions...)
		f.Message += fmt.Sprintf("; CloudTrail: KMS denied %s to %s on %s", strings.Join(d.Actions, ", "), orRole(d), d.Key)
		if f.Fix == "" {
			f.Fix = d.Fix
		}
	}
	if f.Fix == "" {
		f.Fix = r.staticFix(t.AccountID, region, out)
	}
	if f.Fix == "" {
		f.Fix = "read the scaling activity and the instance's state reason in account " + t.AccountID + "; the key policy and grants pass amigate's checks, so look for an identity policy or a service control policy denying KMS in the target"
	}
	return f
}

func orRole(d trail.Finding) string {
	if d.Role != "" {
		return d.Role
	}
	return d.Principal
}

// lookupDenials reads the target's CloudTrail for KMS denials since the
// launch started, polling while the events may still be on their way.
func (r *runState) lookupDenials(ctx context.Context, t Target, region string, out launch.Outcome) []trail.Finding {
	wait := r.opts.trailWait
	if wait == 0 {
		wait = DefaultTrailWait
	}
	deadline := time.Now().Add(wait)
	client := r.cl.CloudTrail(t.principal(), region)
	for delay := time.Second; ; delay = min(2*delay, 15*time.Second) {
		g := trail.NewGrouper()
		err := trail.Lookup(ctx, client, out.Started.Add(-time.Minute), time.Now().Add(time.Minute), func(d trail.Denial) error {
			g.Add(d)
			return nil
		})
		if err != nil {
			r.say(fmt.Sprintf("! cannot read CloudTrail in %s %s: %v", t.AccountID, region, err))
			return nil
		}
		if found := g.Findings(); len(found) > 0 || time.Now().Add(delay).After(deadline) {
			return found
		}
		if sleepCtx(ctx, delay) != nil {
			return nil
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// staticFix is the fix the verdict gave for the launching principal, if any.
func (r *runState) staticFix(account, region string, out launch.Outcome) string {
	for _, tr := range r.report.Targets {
		if tr.Account != account {
			continue
		}
		for _, p := range tr.Paths {
			if p.Region != region || string(p.Path) != out.Mode {
				continue
			}
			for _, f := range p.Findings {
				if f.Fix != "" && f.Code != keypolicy.CodeLaunchFailed {
					return f.Fix
				}
			}
		}
	}
	return ""
}

// addLaunchFinding puts the finding on the path the launch took; the caller
// holds r.mu.
func (r *runState) addLaunchFinding(t Target, region string, out launch.Outcome, f keypolicy.Finding) {
	for i := range r.report.Targets {
		tr := &r.report.Targets[i]
		if tr.Account != t.AccountID {
			continue
		}
		tr.OK = false
		for j := range tr.Paths {
			p := &tr.Paths[j]
			if p.Region == region && string(p.Path) == out.Mode && (out.Mode != launch.ModeASG || out.ServiceLinkedRole == "" || p.Principal == out.ServiceLinkedRole) {
				p.Findings = append(p.Findings, f)
				p.OK = false
				return
			}
		}
		principal := out.ServiceLinkedRole
		if principal == "" {
			principal = keypolicy.AnyPrincipal(partitionOf(t.RoleARN), t.AccountID)
		}
		tr.Paths = append(tr.Paths, PathReport{PathVerdict: keypolicy.PathVerdict{Path: keypolicy.Path(out.Mode), Principal: principal, Findings: []keypolicy.Finding{f}},
			Region: region, Image: r.opts.AMIs[region]})
		return
	}
}
