package gate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/launch"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// Progress receives one line per step and per target: Packer maps it to
// ui.Say, the CLI to stderr. The gate works on several keys and images at
// once but never calls it concurrently, so it needs no locking of its own.
type Progress func(line string)

// InputErrors are problems with the input that only AWS can reveal (an AMI
// or an Auto Scaling group that does not exist). They are found before any
// change is made.
type InputErrors []FieldError

func (e InputErrors) Error() string {
	parts := make([]string, len(e))
	for i, fe := range e {
		parts[i] = fe.Error()
	}
	return strings.Join(parts, "; ")
}

// DefaultParallelism bounds the API calls in flight at once.
const DefaultParallelism = 256

// Run runs the gate: inspect every AMI, check its keys, then share, patch
// and grant as configured, and re-evaluate every target's paths. A report
// whose OK is false means the gate says no; an error means the run could
// not finish (InputErrors for bad input, anything else from AWS).
func Run(ctx context.Context, opts Options, sessions Sessions, progress Progress) (*Report, error) {
	return newRun(opts, sessions, progress).run(ctx)
}

type runState struct {
	opts        Options
	cl          *clients
	say         Progress
	parallelism int
	calls       CallCounter

	regions []string
	images  map[string]*imageState // by region
	// asgRoles are the service-linked roles of each target's groups, by
	// account and region.
	asgRoles map[string]map[string][]string

	mu     sync.Mutex // guards report.Changes, findings added concurrently and stepTimes
	report *Report
	// stepTimes are the longest times the overlapping apply steps took.
	stepTimes map[string]time.Duration
	// grantTimes are when this run last created a grant, by account.
	grantTimes map[string]time.Time
	// groupsFound are the target groups found, by account/region.
	groupsFound map[string]map[string]bool
	// discoveredRoles are, in an audit, every Auto Scaling service-linked
	// role of a target, by account.
	discoveredRoles map[string][]string
	// missingRoles are the default Auto Scaling roles found not to exist.
	missingRoles map[string]bool
	// cleanups are the test launches' deletions.
	cleanups []*launch.Cleanup
	// failedLaunches are the test launches that failed, with their
	// findings, to put on the paths again when the paths are verified
	// again.
	failedLaunches []failedLaunch
	// explicit are the target blocks (the targets found in the target
	// organizations come after them in opts.Targets).
	explicit []Target
	// track counts the units of work done and the targets failing, for
	// opts.OnStatus.
	track tracker
	// org is the organization the organization targets were found in.
	org *orgState
	// callerState is who the source credentials are, read once.
	callerState
}

func newRun(opts Options, sessions Sessions, progress Progress) *runState {
	say := func(string) {}
	if progress != nil {
		var mu sync.Mutex
		say = func(line string) {
			mu.Lock()
			defer mu.Unlock()
			progress(line)
		}
	}
	r := &runState{
		opts:            opts,
		cl:              newClients(sessions),
		say:             say,
		parallelism:     DefaultParallelism,
		images:          map[string]*imageState{},
		asgRoles:        map[string]map[string][]string{},
		stepTimes:       map[string]time.Duration{},
		grantTimes:      map[string]time.Time{},
		missingRoles:    map[string]bool{},
		discoveredRoles: map[string][]string{},
		groupsFound:     map[string]map[string]bool{},
		report: &Report{DryRun: opts.DryRun, Audit: opts.Audit, RunID: newRunID(), Images: []ImageInfo{}, Keys: []KeyInfo{}, Findings: []keypolicy.Finding{}, Targets: []TargetReport{},
			Changes:  Changes{LaunchPermissions: []PermissionChange{}, SnapshotPermissions: []PermissionChange{}, KeyPolicies: []KeyPolicyChange{}, Grants: []GrantChange{}},
			Launches: []launch.Outcome{}},
	}
	r.track.fn = opts.OnStatus
	if cc, ok := sessions.(CallCounter); ok {
		r.calls = cc
	}
	for region := range opts.AMIs {
		r.regions = append(r.regions, region)
	}
	sort.Strings(r.regions)
	return r
}

func newRunID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (r *runState) run(ctx context.Context) (rep *Report, err error) {
	// Whatever happens, test-launch resources are deleted; a panic becomes
	// an error once they are.
	defer func() {
		p := recover()
		if cerr := r.cleanupAll(ctx); cerr != nil && err == nil {
			err = cerr
		}
		if p != nil {
			r.finish()
			rep, err = r.report, fmt.Errorf("internal error (cleaned up): %v", p)
		}
		if err != nil && rep != nil {
			// No verdict: a report read by a pipeline must not pass.
			rep.OK, rep.Error = false, err.Error()
		}
	}()
	if errs := r.opts.Validate(); len(errs) > 0 {
		return nil, InputErrors(errs)
	}
	if errs := r.checkRegions(); len(errs) > 0 {
		return nil, InputErrors(errs)
	}
	r.say("amigate run " + r.report.RunID)
	if r.opts.DryRun {
		r.say("dry run: every change is computed and printed, none is made")
	}
	if r.opts.Audit {
		r.say("audit: checking what was released, changing nothing")
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"inspect", r.discover},
		{"check keys", r.checkKeys},
		{"apply", r.apply},
		{"verify", r.verify},
		{"test launch", r.testLaunch},
		{"confirm", r.confirm},
	}
	for _, step := range steps {
		start := time.Now()
		err := step.fn(ctx)
		r.report.Timings = append(r.report.Timings, Timing{Step: step.name, Milliseconds: time.Since(start).Milliseconds()})
		if step.name == "apply" {
			for _, sub := range []string{"share", "patch", "grant"} {
				r.report.Timings = append(r.report.Timings, Timing{Step: "apply: " + sub, Milliseconds: r.stepTimes[sub].Milliseconds()})
			}
		}
		if errors.Is(err, errStop) {
			break
		}
		if err != nil {
			r.finish()
			return r.report, err
		}
	}
	r.finish()
	return r.report, nil
}

// errStop ends the run early with the report as it is (a key check failed).
var errStop = errors.New("stop")

func (r *runState) finish() {
	if r.calls != nil {
		r.report.APICalls = r.calls.Calls()
	}
	r.report.OK = true
	for _, f := range r.report.Findings {
		if f.Severity == keypolicy.SeverityError {
			r.report.OK = false
		}
	}
	for _, t := range r.report.Targets {
		r.report.OK = r.report.OK && t.OK
	}
}

// checkRegions rejects target regions that have no AMI to gate.
func (r *runState) checkRegions() []FieldError {
	var errs []FieldError
	check := func(field string, regions []string) {
		for _, region := range regions {
			if _, ok := r.opts.AMIs[region]; !ok {
				errs = append(errs, FieldError{Field: field, Value: region,
					Problem: "has no AMI to gate (the AMIs are in " + strings.Join(r.regions, ", ") + ")"})
			}
		}
	}
	for i, t := range r.opts.Targets {
		check(fmt.Sprintf("target[%d].regions", i), t.Regions)
	}
	check("organization_targets.regions", r.opts.OrganizationTargets.Regions)
	return errs
}

// targetRegions are the regions a target launches in.
func (r *runState) targetRegions(t Target) []string {
	if len(t.Regions) == 0 {
		return r.regions
	}
	return t.Regions
}

func (r *runState) targetsIn(region string) []Target {
	r.mu.Lock() // the walk of the target organizations adds targets
	defer r.mu.Unlock()
	var out []Target
	for _, t := range r.opts.Targets {
		for _, tr := range r.targetRegions(t) {
			if tr == region {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// grantFrom is where a target's Auto Scaling grants are created.
func (r *runState) grantFrom(t Target) string {
	if r.opts.GrantFrom != "" {
		return r.opts.GrantFrom
	}
	if t.RoleARN != "" {
		return GrantFromTarget
	}
	return GrantFromSource
}

func (t Target) principal() principal { return principal{roleARN: t.RoleARN, externalID: t.ExternalID} }

// checkKeys applies the key checks of DESIGN §1.1 and stops the run before
// any change when one fails.
func (r *runState) checkKeys(ctx context.Context) error {
	findings := r.keyFindings()
	r.report.Findings = append(r.report.Findings, findings...)
	for _, f := range findings {
		if f.Severity == keypolicy.SeverityError {
			r.say(fmt.Sprintf("✘ %s: %s", f.Code, f.Message))
			r.say("  fix: " + f.Fix)
		}
	}
	if hasError(findings) {
		r.say("✘ a key check failed: stopping before any change")
		return errStop
	}
	if len(findings) == 0 {
		r.say("✔ every snapshot is encrypted with an enabled customer managed key")
	}
	for _, f := range findings { // warnings: allowed unencrypted snapshots
		r.say(fmt.Sprintf("! %s: %s", f.Code, f.Message))
	}
	var keys []*keyState
	for _, region := range r.regions {
		for _, ks := range r.images[region].keys {
			ks.targets = r.keyTargets(region)
			if !ks.orgEarly { // else decided while the organization was walked
				ks.planning = r.planning()
			}
			keys = append(keys, ks)
		}
	}
	// Planning is pure computation: one key per core.
	return forEach(ctx, len(keys), runtime.GOMAXPROCS(0), func(_ context.Context, i int) error {
		return keys[i].replan(keys[i].key.Policy)
	})
}

// keyFindings are the key checks' findings (DESIGN §1.1): unencrypted
// snapshots, and keys that are AWS managed, not enabled or not symmetric.
func (r *runState) keyFindings() []keypolicy.Finding {
	var findings []keypolicy.Finding
	for _, region := range r.regions {
		im := r.images[region]
		for _, sn := range im.snapshots {
			if !sn.encrypted {
				sev := keypolicy.SeverityError
				if r.opts.AllowUnencrypted {
					sev = keypolicy.SeverityWarning
				}
				findings = append(findings, keypolicy.Finding{Code: keypolicy.CodeUnencryptedSnapshot, Severity: sev, Actions: []string{},
					Message: fmt.Sprintf("snapshot %s (%s) of %s in %s is not encrypted", sn.id, sn.device, im.id, region),
					Fix:     "bake the image encrypted with a customer managed key (encrypt_boot = true and kms_key_id in the amazon builder), or set allow_unencrypted = true"})
			}
		}
		for _, ks := range im.keys {
			findings = append(findings, keypolicy.CheckKeyMetadata(ks.key)...)
		}
	}
	return findings
}

// keyTargets are the targets of a region, as keypolicy sees them.
func (r *runState) keyTargets(region string) []keypolicy.Target {
	var out []keypolicy.Target
	for _, t := range r.targetsIn(region) {
		out = append(out, r.keyTarget(t, region))
	}
	return out
}

// keyTarget is a target in a region, as keypolicy sees it.
func (r *runState) keyTarget(t Target, region string) keypolicy.Target {
	path := r.orgPath(t.AccountID)
	r.mu.Lock()
	defer r.mu.Unlock()
	roles := append([]string(nil), r.asgRoles[t.AccountID][region]...)
	for _, list := range [][]string{t.ServiceLinkedRoleARNs, r.discoveredRoles[t.AccountID]} {
		for _, arn := range list {
			if !contains(roles, arn) {
				roles = append(roles, arn)
			}
		}
	}
	return keypolicy.Target{Account: t.AccountID, ASGRoles: roles, Paths: t.Paths, GrantFromSource: r.grantFrom(t) == GrantFromSource, OrgPath: path}
}

// inRegion reports whether a target launches in region.
func (r *runState) inRegion(t Target, region string) bool {
	return slices.Contains(r.targetRegions(t), region)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// addFinding records an image- or key-level finding.
func (r *runState) addFinding(f keypolicy.Finding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report.Findings = append(r.report.Findings, f)
}
