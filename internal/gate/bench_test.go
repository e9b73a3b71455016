package gate

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/awsim"
)

// criticalPath is the longest chain of calls that depend on each other in
// a run that shares, patches and grants (targets with roles, no groups):
// DescribeImages → DescribeSnapshots → DescribeKey|GetKeyPolicy|ListGrants
// → GetKeyPolicy (re-read) → PutKeyPolicy → GetKeyPolicy (verify) →
// CreateGrant. AssumeRole, DescribeImageAttribute and ModifyImageAttribute
// run beside it.
const criticalPath = 7

// BenchmarkGate50Targets3Regions runs the gate for 50 targets in 3 regions
// with 50 ms of latency on every call, and compares the time with the
// critical path's lower bound (criticalPath × latency, as if every call
// off the path were free). It fails unless there is exactly one
// PutKeyPolicy per key and one ModifyImageAttribute per AMI, and a second
// run changes nothing.
func BenchmarkGate50Targets3Regions(b *testing.B) {
	latency := 50 * time.Millisecond
	if v := os.Getenv("AMIGATE_BENCH_LATENCY"); v != "" {
		latency, _ = time.ParseDuration(v)
	}
	regions := []string{"us-east-1", "eu-west-1", "ap-southeast-2"}
	var accounts []string
	for i := 0; i < 50; i++ {
		accounts = append(accounts, fmt.Sprintf("1000000000%02d", i))
	}
	lower := criticalPath * latency
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := startWorld(b, testWorld{regions: regions, targets: accounts})
		amis := s.imageIDs(b, regions...)
		var targets []Target
		for _, a := range accounts {
			targets = append(targets, Target{AccountID: a, RoleARN: roleARN(a)})
		}
		opts := baseOptions(amis, targets...)
		s.SetFaults(awsim.Faults{LatencyMS: int(latency / time.Millisecond)})
		b.StartTimer()

		start := time.Now()
		rep, err := Run(context.Background(), opts, s.sessions(b), nil)
		took := time.Since(start)
		total += took

		b.StopTimer()
		if err != nil || !rep.OK {
			b.Fatalf("run: %v %v", err, rep.Failures())
		}
		m := s.mutations()
		if n := count(m, "kms:PutKeyPolicy"); n != len(regions) {
			b.Fatalf("%d PutKeyPolicy for %d keys", n, len(regions))
		}
		if n := count(m, "ec2:ModifyImageAttribute"); n != len(regions) {
			b.Fatalf("%d ModifyImageAttribute for %d AMIs", n, len(regions))
		}
		if n := count(m, "kms:CreateGrant"); n != len(regions)*len(accounts) {
			b.Fatalf("%d CreateGrant, want %d", n, len(regions)*len(accounts))
		}
		s.SetFaults(awsim.Faults{})
		before := len(m)
		if rep, err := Run(context.Background(), opts, s.sessions(b), nil); err != nil || !rep.OK || len(s.mutations()) != before {
			b.Fatalf("re-run: %v, %d mutating calls", err, len(s.mutations())-before)
		}
		b.Logf("steps %v", rep.Timings)
		b.Logf("run %d: %v for %d targets × %d regions; critical-path lower bound %v; ratio %.2f; %d calls",
			i, took.Round(time.Millisecond), len(accounts), len(regions), lower, float64(took)/float64(lower), len(s.Calls()))
		b.StartTimer()
	}
	b.ReportMetric(float64(lower.Milliseconds()), "lowerbound-ms")
	b.ReportMetric(float64(total)/float64(b.N)/float64(lower), "x-lowerbound")
}
