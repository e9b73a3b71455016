package gate

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amigate/packer-plugin-amigate/internal/awsapi"
	"github.com/amigate/packer-plugin-amigate/internal/awsim"
	"github.com/amigate/packer-plugin-amigate/internal/launch"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// launchOptions test-launch the target's group "web" with fast polling.
func launchOptions(amis map[string]string, mode string) Options {
	t := Target{AccountID: target, RoleARN: roleARN(target)}
	if mode == TestLaunchASG {
		t.AutoScalingGroups = []string{"web"}
	}
	o := baseOptions(amis, t)
	o.TestLaunch = mode
	o.TestLaunchTimeout = 30 * time.Second
	o.pollMin, o.pollMax, o.trailWait = 10*time.Millisecond, 50*time.Millisecond, 500*time.Millisecond
	return o
}

// leftovers lists what test launches left in the target: groups, live
// instances and launch template versions beyond the world's own.
func (s *sim) leftovers(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	cfg := s.config(target, "us-east-1")
	var out []string
	groups, err := autoscaling.NewFromConfig(cfg).DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups.AutoScalingGroups {
		if strings.HasPrefix(aws.ToString(g.AutoScalingGroupName), "amigate-") {
			out = append(out, "group "+aws.ToString(g.AutoScalingGroupName))
		}
	}
	c := ec2.NewFromConfig(cfg)
	inst, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range inst.Reservations {
		for _, in := range r.Instances {
			if in.State.Name != ec2types.InstanceStateNameTerminated {
				out = append(out, "instance "+aws.ToString(in.InstanceId)+" "+string(in.State.Name))
			}
		}
	}
	lts, err := c.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, lt := range lts.LaunchTemplates {
		vs, err := c.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: lt.LaunchTemplateId})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs.LaunchTemplateVersions {
			if strings.HasPrefix(aws.ToString(v.VersionDescription), "amigate") {
				out = append(out, "template version "+aws.ToString(lt.LaunchTemplateName))
			}
		}
	}
	return out
}

func launchFinding(rep *Report) (keypolicy.Finding, bool) {
	for _, t := range rep.Targets {
		for _, p := range t.Paths {
			for _, f := range p.Findings {
				if f.Code == keypolicy.CodeLaunchFailed {
					return f, true
				}
			}
		}
	}
	return keypolicy.Finding{}, false
}

// The first write-up, launched for real: without the grant the clone of the
// target's group fails, the finding names the denied service-linked role and
// gives the create-grant command; nothing is left behind. With the grant
// (the gate's default) the same launch is green.
func TestTestLaunchWriteup1(t *testing.T) {
	s := startWorld(t, testWorld{policy: writeup1Policy, shared: []string{target}, groups: map[string]string{target: "web"}})
	amis := s.imageIDs(t)
	opts := launchOptions(amis, TestLaunchASG)
	opts.KeyPolicy, opts.CreateGrants = KeyPolicyCheck, false
	rep := run(t, s, opts)
	f, ok := launchFinding(rep)
	if rep.OK || !ok {
		t.Fatalf("want a LAUNCH_FAILED finding, got ok=%v %s", rep.OK, codesOf(rep))
	}
	t.Logf("finding: %s\nfix: %s", f.Message, f.Fix)
	for _, want := range []string{"Client.InternalError", "AWSServiceRoleForAutoScaling", "kms:"} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("message lacks %q: %s", want, f.Message)
		}
	}
	if !strings.Contains(f.Fix, "aws kms create-grant") || !strings.Contains(f.Fix, asgRole(target, "")) {
		t.Errorf("fix = %q", f.Fix)
	}
	if len(rep.Launches) != 1 || rep.Launches[0].OK || rep.Launches[0].ServiceLinkedRole != asgRole(target, "") {
		t.Errorf("launches = %+v", rep.Launches)
	}
	if l := s.leftovers(t); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}

	rep = run(t, s, launchOptions(amis, TestLaunchASG))
	if !rep.OK || len(rep.Launches) != 1 || !rep.Launches[0].OK {
		t.Fatalf("with the grant: ok=%v %s %+v", rep.OK, codesOf(rep), rep.Launches)
	}
	if l := s.leftovers(t); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
}

// The instance path of the third write-up: KMS's default key policy makes
// the instance terminate; patched, it runs; either way it is terminated.
func TestTestLaunchInstance(t *testing.T) {
	s := startWorld(t, testWorld{shared: []string{target}})
	amis := s.imageIDs(t)
	opts := launchOptions(amis, TestLaunchInstance)
	opts.KeyPolicy = KeyPolicyCheck
	rep := run(t, s, opts)
	if f, ok := launchFinding(rep); rep.OK || !ok || !strings.Contains(f.Message, "Client.InternalError") {
		t.Fatalf("want LAUNCH_FAILED, got ok=%v %s", rep.OK, codesOf(rep))
	}
	if l := s.leftovers(t); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
	rep = run(t, s, launchOptions(amis, TestLaunchInstance))
	if !rep.OK || len(rep.Launches) != 1 || !rep.Launches[0].OK {
		t.Fatalf("patched: ok=%v %s %+v", rep.OK, codesOf(rep), rep.Launches)
	}
	if l := s.leftovers(t); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
}

// A grant that takes a while to reach KMS: the first launch fails on the
// key, the gate says it waits for propagation, Auto Scaling retries and the
// launch goes green within the window.
func TestTestLaunchWaitsForGrantPropagation(t *testing.T) {
	s := startWorld(t, testWorld{policy: writeup1Policy, shared: []string{target}, groups: map[string]string{target: "web"}})
	s.SetFaults(awsim.Faults{Service: "kms", GrantDelayMS: 300})
	opts := launchOptions(s.imageIDs(t), TestLaunchASG)
	opts.TestLaunchGrantWait = 10 * time.Second
	var said []string
	var mu sync.Mutex
	rep, err := Run(context.Background(), opts, s.sessions(t), func(l string) { mu.Lock(); said = append(said, l); mu.Unlock() })
	if err != nil || !rep.OK || len(rep.Launches) != 1 || !rep.Launches[0].WaitedForGrants {
		t.Fatalf("err=%v ok=%v %s launches=%+v\n%s", err, rep.OK, codesOf(rep), rep.Launches, strings.Join(said, "\n"))
	}
	if !strings.Contains(strings.Join(said, "\n"), "may not have propagated yet") {
		t.Errorf("the wait was not said:\n%s", strings.Join(said, "\n"))
	}
	if l := s.leftovers(t); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
}

// cancelAt serves the simulator and cancels the run's context when the
// n-th request of one of the given actions arrives; AWS applies that
// request a moment later, as a request whose answer the client gave up on
// may still be.
type cancelAt struct {
	sim     *awsim.Server
	actions map[string]bool
	n       int
	cancel  context.CancelFunc

	mu   sync.Mutex
	seen int
}

func (c *cancelAt) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	action := r.Header.Get("X-Amz-Target")
	if action == "" {
		_ = r.ParseForm()
		action = r.Form.Get("Action")
	}
	c.mu.Lock()
	late := false
	if c.actions[action] {
		c.seen++
		if c.seen == c.n {
			c.cancel()
			late = true
		}
	}
	c.mu.Unlock()
	if late {
		time.Sleep(100 * time.Millisecond)
	}
	c.sim.ServeHTTP(w, r)
}

// Ctrl-C (the context cancelled) at each step of a test launch leaves
// nothing behind: the cleanup runs with a fresh context.
func TestTestLaunchCancelledAtEachStepLeavesNothing(t *testing.T) {
	steps := []string{"DescribeAutoScalingGroups", "DescribeLaunchTemplateVersions", "CreateLaunchTemplateVersion", "CreateAutoScalingGroup", "DescribeScalingActivities"}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			s := startWorld(t, testWorld{policy: writeup1Policy, shared: []string{target}, groups: map[string]string{target: "web"}})
			opts := launchOptions(s.imageIDs(t), TestLaunchASG)
			opts.KeyPolicy, opts.CreateGrants = KeyPolicyCheck, false // the launch fails and is polled
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			n := 1
			if step == "DescribeAutoScalingGroups" {
				n = 2 // the first one reads the target's groups in the inspect step
			}
			proxy := httptest.NewServer(&cancelAt{sim: s.Server, actions: map[string]bool{step: true}, n: n, cancel: cancel})
			defer proxy.Close()
			sess, err := awsapi.New(ctx, awsapi.Settings{Region: "us-east-1", AccessKey: "SIM" + owner, SecretKey: "x", Endpoint: proxy.URL})
			if err != nil {
				t.Fatal(err)
			}
			_, err = Run(ctx, opts, sess, func(l string) { t.Log(l) })
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want the cancellation", err)
			}
			time.Sleep(200 * time.Millisecond) // the request the run gave up on lands
			if l := s.leftovers(t); len(l) > 0 {
				t.Fatalf("cancelled at %s, left behind: %v", step, l)
			}
		})
	}
}

// A panic in the middle of a test launch is reported as an error after the
// cleanup ran.
func TestTestLaunchPanicCleansUp(t *testing.T) {
	s := startWorld(t, testWorld{policy: writeup1Policy, shared: []string{target}, groups: map[string]string{target: "web"}})
	opts := launchOptions(s.imageIDs(t), TestLaunchASG)
	r := newRun(opts, s.sessions(t), func(l string) {
		if strings.HasPrefix(l, "test launch: group") {
			panic("boom")
		}
	})
	_, err := r.run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
	if l := s.leftovers(t); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
}

// amigate cleanup's sweep finds what a run killed hard left, by tag.
func TestSweepFindsLeftovers(t *testing.T) {
	s := startWorld(t, testWorld{policy: writeup1Policy, shared: []string{target}, groups: map[string]string{target: "web"}})
	cfg := s.config(target, "us-east-1")
	l := &launch.Launcher{EC2: ec2.NewFromConfig(cfg), AutoScaling: autoscaling.NewFromConfig(cfg)}
	cleanup := &launch.Cleanup{}
	ctx, cancel := context.WithCancel(context.Background())
	_, _ = l.Run(ctx, launch.Request{Mode: launch.ModeASG, RunID: "killed", Account: target, Region: "us-east-1", AMI: s.imageIDs(t)["us-east-1"],
		Group: "web", Timeout: time.Second, PollMin: time.Millisecond, PollMax: time.Millisecond}, cleanup)
	cancel() // the run is killed: its cleanup never runs
	if len(s.leftovers(t)) == 0 || len(cleanup.Pending()) != 2 {
		t.Fatalf("the killed run should have left its group and version: %v / %v", s.leftovers(t), cleanup.Pending())
	}
	found, err := launch.Sweep(context.Background(), ec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg), time.Now().Add(-time.Hour), false)
	if err != nil || len(found) != 0 {
		t.Fatalf("an hour's cutoff must spare a fresh run: %v %+v", err, found)
	}
	found, err = launch.Sweep(context.Background(), ec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg), time.Now().Add(time.Minute), false)
	if err != nil || len(found) < 2 {
		t.Fatalf("sweep: %v %+v", err, found)
	}
	if l := s.leftovers(t); len(l) > 0 {
		t.Fatalf("after the sweep: %v", l)
	}
}

// CloudTrail delivers the KMS event late: the diagnosis waits for it
// (within its bound) and still names the denied role.
func TestTestLaunchLateCloudTrail(t *testing.T) {
	s := startWorld(t, testWorld{policy: writeup1Policy, shared: []string{target}, groups: map[string]string{target: "web"}})
	s.SetFaults(awsim.Faults{Service: "cloudtrail", TrailDelayMS: 1500})
	opts := launchOptions(s.imageIDs(t), TestLaunchASG)
	opts.KeyPolicy, opts.CreateGrants = KeyPolicyCheck, false
	opts.trailWait = 10 * time.Second
	rep := run(t, s, opts)
	f, ok := launchFinding(rep)
	if !ok || !strings.Contains(f.Message, "CloudTrail: KMS denied") || !strings.Contains(f.Message, asgRole(target, "")) {
		t.Fatalf("the late event was not waited for: %+v", f)
	}
	// With a bound shorter than the delay the finding still stands, from
	// the activity and the static verdict, without CloudTrail's word.
	s = startWorld(t, testWorld{policy: writeup1Policy, shared: []string{target}, groups: map[string]string{target: "web"}})
	s.SetFaults(awsim.Faults{Service: "cloudtrail", TrailDelayMS: 1500})
	opts.AMIs = s.imageIDs(t)
	opts.trailWait = 100 * time.Millisecond
	rep = run(t, s, opts)
	if f, ok := launchFinding(rep); !ok || strings.Contains(f.Message, "CloudTrail") || !strings.Contains(f.Fix, "aws kms create-grant") {
		t.Fatalf("short bound: %+v", f)
	}
}

// BenchmarkLaunchFailureToVerdict measures, with the default polling and
// CloudTrail settings, the time from the simulator failing a test launch
// (when the temporary group is created) to the red verdict; the goal is at
// most 15 s.
func BenchmarkLaunchFailureToVerdict(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := startWorld(b, testWorld{policy: writeup1Policy, shared: []string{target}, groups: map[string]string{target: "web"}})
		opts := launchOptions(s.imageIDs(b), TestLaunchASG)
		opts.KeyPolicy, opts.CreateGrants = KeyPolicyCheck, false
		opts.pollMin, opts.pollMax, opts.trailWait = 0, 0, 0 // the defaults
		var failedAt time.Time
		var mu sync.Mutex
		say := func(l string) {
			if strings.HasPrefix(l, "test launch: group") {
				mu.Lock()
				failedAt = time.Now() // the simulator fails the launch as the group is created
				mu.Unlock()
			}
		}
		b.StartTimer()
		rep, err := Run(context.Background(), opts, s.sessions(b), say)
		b.StopTimer()
		if _, ok := launchFinding(rep); err != nil || !ok {
			b.Fatalf("no red verdict: %v", err)
		}
		took := time.Since(failedAt)
		b.ReportMetric(float64(took.Milliseconds()), "failure-to-verdict-ms")
		if took > 15*time.Second {
			b.Fatalf("%v from the failure to the verdict, goal 15 s", took)
		}
		b.StartTimer()
	}
}

// A launch that never comes up within test_launch_timeout is red, says so,
// and leaves nothing behind.
func TestTestLaunchTimeout(t *testing.T) {
	s := startWorld(t, testWorld{policy: writeup1Policy, shared: []string{target}, groups: map[string]string{target: "web"}})
	s.SetFaults(awsim.Faults{Service: "kms", GrantDelayMS: int(time.Hour / time.Millisecond)}) // the grant never arrives in time
	opts := launchOptions(s.imageIDs(t), TestLaunchASG)
	opts.TestLaunchGrantWait, opts.TestLaunchTimeout = time.Hour, 300*time.Millisecond
	rep := run(t, s, opts)
	f, ok := launchFinding(rep)
	if rep.OK || !ok || !strings.Contains(f.Message, "no instance in service after 300ms") || !strings.Contains(f.Message, "Client.InternalError") {
		t.Fatalf("timeout: ok=%v %+v", rep.OK, f)
	}
	if l := s.leftovers(t); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
}

// A group with a MixedInstancesPolicy is cloned with its instance types:
// its template names none, so a clone without the overrides could not
// launch. The clone launches the first type, On-Demand, with the new AMI.
func TestTestLaunchMixedInstancesGroup(t *testing.T) {
	s := startWorld(t, testWorld{shared: []string{target}})
	amis := s.imageIDs(t)
	ctx := context.Background()
	cfg := s.config(target, "us-east-1")
	if _, err := ec2.NewFromConfig(cfg).CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("mixed"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(amis["us-east-1"])}}); err != nil {
		t.Fatal(err)
	}
	if _, err := autoscaling.NewFromConfig(cfg).CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("mixed"),
		MixedInstancesPolicy: &astypes.MixedInstancesPolicy{LaunchTemplate: &astypes.LaunchTemplate{
			LaunchTemplateSpecification: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("mixed"), Version: aws.String("$Latest")},
			Overrides:                   []astypes.LaunchTemplateOverrides{{InstanceType: aws.String("c5.large")}, {InstanceType: aws.String("m5.large")}}}},
		MinSize: aws.Int32(0), MaxSize: aws.Int32(0), AvailabilityZones: []string{"us-east-1a"}}); err != nil {
		t.Fatal(err)
	}
	opts := launchOptions(amis, TestLaunchASG)
	opts.Targets[0].AutoScalingGroups = []string{"mixed"}
	rep := run(t, s, opts)
	if !rep.OK || len(rep.Launches) != 1 || !rep.Launches[0].OK {
		t.Fatalf("ok=%v %s %+v", rep.OK, codesOf(rep), rep.Launches)
	}
	out, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{rep.Launches[0].InstanceID}})
	if err != nil {
		t.Fatal(err)
	}
	in := out.Reservations[0].Instances[0]
	if in.InstanceType != ec2types.InstanceTypeC5Large || aws.ToString(in.ImageId) != amis["us-east-1"] {
		t.Errorf("the test instance is a %s of %s, want a c5.large of %s", in.InstanceType, aws.ToString(in.ImageId), amis["us-east-1"])
	}
	if l := s.leftovers(t); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
}
