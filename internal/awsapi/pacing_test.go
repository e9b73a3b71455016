package awsapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/amigate/packer-plugin-amigate/internal/awsim"
)

// The operations amigate calls (the gate, the lock, the test launch, the
// diagnosis, the CLI), by signing name.
var amigateCalls = map[string][]string{
	"ec2": {"DescribeImages", "DescribeSnapshots", "DescribeImageAttribute", "ModifyImageAttribute", "DescribeSnapshotAttribute",
		"ModifySnapshotAttribute", "RunInstances", "TerminateInstances", "DescribeInstances", "CreateLaunchTemplate",
		"CreateLaunchTemplateVersion", "DeleteLaunchTemplateVersions", "DeleteLaunchTemplate", "DescribeLaunchTemplates",
		"DescribeLaunchTemplateVersions"},
	"kms":           {"DescribeKey", "GetKeyPolicy", "PutKeyPolicy", "ListGrants", "CreateGrant", "CreateAlias", "DeleteAlias", "ListAliases"},
	"sts":           {"AssumeRole", "GetCallerIdentity"},
	"iam":           {"GetRole", "ListRoles", "SimulatePrincipalPolicy"},
	"autoscaling":   {"DescribeAutoScalingGroups", "DescribeScalingActivities", "CreateAutoScalingGroup", "DeleteAutoScalingGroup", "UpdateAutoScalingGroup"},
	"cloudtrail":    {"LookupEvents"},
	"organizations": {"DescribeOrganization", "ListAccounts", "ListAccountsForParent", "ListChildren", "ListParents", "ListRoots"},
}

// The client's table and the simulator's are two readings of AWS's
// documents: for every operation the client paces, at any scale, its rate
// and bucket are within the simulator's, and the client's buckets that
// draw on one of the simulator's together stay within it.
func TestPacingWithinTheSimulatorsQuotas(t *testing.T) {
	defer SetPacing(SetPacing(1))
	type op struct{ service, name, variant string }
	var ops []op
	for service, names := range amigateCalls {
		for _, n := range names {
			ops = append(ops, op{service, n, ""})
		}
	}
	for n := range kmsPaces {
		ops = append(ops, op{"kms", n, ""})
	}
	for n := range ec2Paces {
		ops = append(ops, op{"ec2", n, ""})
	}
	for _, n := range ec2Unfiltered {
		ops = append(ops, op{"ec2", n, "unfiltered"})
	}
	for n := range ec2InstancePaces {
		ops = append(ops, op{"ec2", n, "instances"})
	}
	for _, r := range awsim.QuotaTable() {
		ops = append(ops, op{r.Service, r.Action, ""})
	}
	simAction := map[string]string{"": "", "unfiltered": awsim.Unfiltered, "instances": awsim.Instances}
	for _, scale := range []float64{1, 0.2, 0.01, 3} {
		SetPacing(scale)
		type sum struct {
			rate    float64
			burst   int
			buckets map[string]bool
		}
		bySimGroup := map[string]*sum{}
		for _, o := range ops {
			if o.variant == "" && (strings.HasSuffix(o.name, awsim.Unfiltered) || strings.HasSuffix(o.name, awsim.Instances)) {
				continue // the simulator's pseudo-actions, checked as variants
			}
			group, rate, burst := pacing(o.service, o.name, o.variant)
			if o.variant == "" && rate == 0 {
				t.Errorf("%s:%s is not paced", o.service, o.name)
				continue
			}
			if rate == 0 {
				continue
			}
			simGroup, simRate, simBurst := awsim.Quota(o.service, o.name+simAction[o.variant])
			if simRate == 0 {
				t.Errorf("%s:%s %s: paced at %v/s but the simulator has no quota", o.service, o.name, o.variant, rate)
				continue
			}
			simRate *= scale
			simBurst = int(math.Max(1, math.Floor(float64(simBurst)*scale)))
			if rate > simRate || burst > simBurst {
				t.Errorf("scale %v, %s:%s %s: client %v/s, bucket %d; simulator %v/s, bucket %d", scale, o.service, o.name, o.variant, rate, burst, simRate, simBurst)
			}
			k := o.service + ":" + simGroup
			s := bySimGroup[k]
			if s == nil {
				s = &sum{buckets: map[string]bool{}}
				bySimGroup[k] = s
			}
			if !s.buckets[group] {
				s.buckets[group] = true
				s.rate += rate
				s.burst += burst
			}
			if s.rate > simRate*(1+1e-9) || s.burst > simBurst {
				t.Errorf("scale %v, %s: the client's buckets %v draw %v/s and %d at once; the simulator's holds %v/s, %d", scale, k, s.buckets, s.rate, s.burst, simRate, simBurst)
			}
		}
	}
}

const pacingWorld = `{"roles": [
 {"account": "111122223333", "name": "amigate",
  "trust_policy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "sts:AssumeRole"}]},
  "policies": {"all": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}}},
 {"account": "222233334444", "name": "amigate",
  "trust_policy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "sts:AssumeRole"}]},
  "policies": {"all": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}}}],
 "keys": [{"account": "444455556666", "region": "us-east-1", "alias": "alias/golden", "policy": {"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "kms:*", "Resource": "*"},
  {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:root", "arn:aws:iam::222233334444:root"]}, "Action": "kms:CreateGrant", "Resource": "*"}]}}]}`

// startQuotas serves a simulator holding pacingWorld and returns it, its
// URL and the key's ARN. Quotas are switched on by the test.
func startQuotas(t *testing.T) (*awsim.Server, string, string) {
	t.Helper()
	sim := awsim.New()
	if err := sim.LoadWorld(bytes.NewReader([]byte(pacingWorld))); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	owner := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: credentials.NewStaticCredentialsProvider("SIM444455556666", "x", "")}
	out, err := kms.NewFromConfig(owner).DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String("alias/golden")})
	if err != nil {
		t.Fatal(err)
	}
	return sim, srv.URL, aws.ToString(out.KeyMetadata.Arn)
}

var targets = []string{"111122223333", "222233334444"}

// grants makes perAccount CreateGrant calls in each target account, all at
// once, half through each of two sessions (as two runs in one process),
// and returns how long they took.
func grants(t *testing.T, url, keyARN string, perAccount int) (time.Duration, []error) {
	t.Helper()
	ctx := context.Background()
	var sessions []*Session
	for range 2 {
		sess, err := New(ctx, Settings{Region: "us-east-1", AccessKey: "SIM444455556666", SecretKey: "x", Endpoint: url, RetryMaxBackoff: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, sess)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	start := time.Now()
	for _, account := range targets {
		role := "arn:aws:iam::" + account + ":role/amigate"
		for i := range perAccount {
			c := kms.NewFromConfig(sessions[i%2].Role(role, "", "us-east-1"))
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(keyARN), GranteePrincipal: aws.String(role),
					Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt}, Name: aws.String(fmt.Sprintf("g%d", i))})
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return time.Since(start), errs
}

// throttled counts the calls the simulator throttled, by action.
func throttled(sim *awsim.Server) map[string]int {
	n := map[string]int{}
	for _, c := range sim.Calls() {
		if c.ErrorCode == "ThrottlingException" || c.ErrorCode == "Throttling" || c.ErrorCode == "RequestLimitExceeded" {
			n[c.Service+":"+c.Action]++
		}
	}
	return n
}

// Concurrent grants in two target accounts, through two sessions of one
// process, under the simulator's quotas (scaled to a fifth: CreateGrant
// 10 a second, a bucket of 10): none is throttled, each account's calls
// take at least the time its quota allows, and not much more.
func TestPacedCallsStayWithinTheQuotas(t *testing.T) {
	const scale, perAccount = 0.2, 30
	defer SetPacing(SetPacing(scale))
	sim, url, keyARN := startQuotas(t)
	sim.SetQuotas(awsim.QuotaSettings{Enabled: true, Scale: scale})

	took, errs := grants(t, url, keyARN, perAccount)
	if len(errs) > 0 {
		t.Fatalf("%d calls failed, first %v", len(errs), errs[0])
	}
	if n := throttled(sim); len(n) > 0 {
		t.Fatalf("the simulator throttled %v", n)
	}
	_, rate, burst := awsim.Quota("kms", "CreateGrant")
	rate, burst = rate*scale, int(float64(burst)*scale)
	bound := time.Duration(float64(perAccount-burst) / rate * float64(time.Second))
	t.Logf("%d CreateGrant in each of %d accounts: %v; the quota allows them in %v at best (%.2f×)", perAccount, len(targets), took.Round(time.Millisecond), bound, float64(took)/float64(bound))
	if took < bound {
		t.Fatalf("%v is faster than the quota allows (%v)", took, bound)
	}
	if took > bound*13/10 {
		t.Fatalf("%v is more than 1.3 × the quota's %v", took, bound)
	}
	granted := map[string]int{}
	for _, c := range sim.Calls() {
		if c.Action == "CreateGrant" && c.Status == 200 {
			granted[c.Account]++
		}
	}
	for _, a := range targets {
		if granted[a] != perAccount {
			t.Fatalf("grants by account: %v", granted)
		}
	}
}

// Without pacing the same calls are throttled, and with a short back-off
// some give up: the test above measures the pacing, not a lenient
// simulator.
func TestUnpacedCallsAreThrottled(t *testing.T) {
	const scale, perAccount = 0.2, 30
	defer SetPacing(SetPacing(0))
	sim, url, keyARN := startQuotas(t)
	sim.SetQuotas(awsim.QuotaSettings{Enabled: true, Scale: scale})
	took, errs := grants(t, url, keyARN, perAccount)
	n := throttled(sim)
	t.Logf("unpaced: %v, throttled %v, %d of %d calls failed", took.Round(time.Millisecond), n, len(errs), perAccount*len(targets))
	if n["kms:CreateGrant"] == 0 {
		t.Fatal("nothing was throttled")
	}
}

// A call waiting for its token gives up as soon as its context ends, and
// is never sent; a run of few calls does not wait at all.
func TestPacingStopsOnCancel(t *testing.T) {
	const scale = 0.01 // CreateGrant 0.5 a second, a bucket of 1
	defer SetPacing(SetPacing(scale))
	sim, url, keyARN := startQuotas(t)
	sim.SetQuotas(awsim.QuotaSettings{Enabled: true, Scale: scale})
	sess, err := New(context.Background(), Settings{Region: "us-east-1", AccessKey: "SIM444455556666", SecretKey: "x", Endpoint: url})
	if err != nil {
		t.Fatal(err)
	}
	c := kms.NewFromConfig(sess.Source("us-east-1"))
	grant := func(ctx context.Context) error {
		_, err := c.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(keyARN), GranteePrincipal: aws.String("arn:aws:iam::111122223333:role/amigate"),
			Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt}})
		return err
	}
	start := time.Now()
	if err := grant(context.Background()); err != nil || time.Since(start) > time.Second {
		t.Fatalf("the first call: %v after %v", err, time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	err = grant(ctx)
	took := time.Since(start)
	t.Logf("the second call waited %v for a token due in about 2.2 s, then: %v", took.Round(time.Millisecond), err)
	if !errors.Is(err, context.Canceled) || took > 300*time.Millisecond {
		t.Fatalf("after %v: %v", took, err)
	}
	// A deadline works the same way.
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := grant(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with a deadline: %v", err)
	}
	n := 0
	for _, call := range sim.Calls() {
		if call.Action == "CreateGrant" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the simulator saw %d CreateGrant, want the first only", n)
	}
}

// AMIGATE_PACING_SCALE sets the scale of a process when it starts; New
// refuses a bad one, and pacing keeps to AWS's figures meanwhile.
func TestPacingScaleFromTheEnvironment(t *testing.T) {
	const child = "AMIGATE_TEST_BAD_PACING_SCALE"
	if os.Getenv(child) != "" {
		// A process started with AMIGATE_PACING_SCALE=lots.
		if _, err := New(context.Background(), Settings{Region: "us-east-1", AccessKey: "AKID", SecretKey: "x"}); err == nil {
			t.Fatal("New accepted AMIGATE_PACING_SCALE=lots")
		}
		if process.scale != 1 {
			t.Fatalf("scale %v with AMIGATE_PACING_SCALE=lots, want 1", process.scale)
		}
		return
	}
	for v, want := range map[string]float64{"": 1, "1": 1, "0.1": 0.1, "0": 0, "2.5": 2.5} {
		if got, err := parseScale(v); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", v, got, err, want)
		}
	}
	for _, v := range []string{"-1", "fast", "NaN", "+Inf"} {
		if _, err := parseScale(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPacingScaleFromTheEnvironment$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), PacingScaleEnv+"=lots", child+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestPacingScaleFromTheEnvironment")) {
		t.Fatalf("a process started with AMIGATE_PACING_SCALE=lots: %v\n%s", err, out)
	}
}

// A request's shape is read once and serves both the call counts (a dry
// run counted apart) and pacing (EC2's unfiltered and per-instance
// buckets). At a hundredth of AWS's rates the buckets refill too slowly
// for the test to see it.
func TestRequestShapeReachesCountsAndPacing(t *testing.T) {
	defer SetPacing(SetPacing(0.01))
	_, url, _ := startQuotas(t)
	ctx := context.Background()
	sess, err := New(ctx, Settings{Region: "us-east-1", AccessKey: "SIM444455556666", SecretKey: "x", Endpoint: url})
	if err != nil {
		t.Fatal(err)
	}
	ec := ec2.NewFromConfig(sess.Source("us-east-1"))
	_, _ = ec.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{DryRun: aws.Bool(true)})
	_, _ = ec.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(5)})
	_, _ = ec.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{"i-0123456789abcdef0", "i-0123456789abcdef1"}})
	calls := sess.Calls()
	if calls["ec2:DescribeSnapshots (dry run)"] != 1 || calls["ec2:DescribeSnapshots"] != 1 || calls["ec2:TerminateInstances"] != 1 {
		t.Errorf("calls %v", calls)
	}
	process.mu.Lock()
	tokens := map[string]float64{}
	for k, lim := range process.buckets {
		tokens[k.group] = lim.Tokens()
	}
	process.mu.Unlock()
	for _, b := range []struct {
		group, op, variant string
		taken              int
	}{
		{"DescribeSnapshots unfiltered", "DescribeSnapshots", "unfiltered", 1},
		{"DescribeSnapshots", "DescribeSnapshots", "", 1},
		{"TerminateInstances", "TerminateInstances", "", 1},
		{"TerminateInstances instances", "TerminateInstances", "instances", 2},
	} {
		_, _, burst := pacing("ec2", b.op, b.variant)
		if got, ok := tokens[b.group]; !ok || math.Floor(got) != float64(burst-b.taken) {
			t.Errorf("bucket %q: %v tokens (present %v), want %d", b.group, got, ok, burst-b.taken)
		}
	}
}
