package gate

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/awsim"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
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
	latency := benchLatency()
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

// benchLatency is the latency of every simulated call: 50 ms, or
// AMIGATE_BENCH_LATENCY.
func benchLatency() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("AMIGATE_BENCH_LATENCY")); err == nil {
		return d
	}
	return 50 * time.Millisecond
}

// quotaBound is the least time the calls of a run need under AWS's request
// quotas as the simulator enforces them: for each bucket (service, quota
// group, calling account, region), the calls beyond its burst at its
// refill rate; the run can be no faster than its slowest bucket.
func quotaBound(calls []awsim.Call) (bound time.Duration, bucket string, n int) {
	global := map[string]bool{}
	for _, q := range awsim.QuotaTable() {
		global[q.Service+":"+q.Action] = q.Global
	}
	counts := map[string]int{}
	rates := map[string]float64{}
	bursts := map[string]int{}
	for _, c := range calls {
		group, rate, burst := awsim.Quota(c.Service, c.Action)
		if rate == 0 {
			continue
		}
		region := c.Region
		if global[c.Service+":"+c.Action] {
			region = ""
		}
		k := c.Service + "/" + group + "/" + c.Account + "/" + region
		counts[k]++
		rates[k], bursts[k] = rate, burst
	}
	for k, calls := range counts {
		if d := time.Duration(float64(max(calls-bursts[k], 0)) / rates[k] * float64(time.Second)); d > bound {
			bound, bucket, n = d, k, calls
		}
	}
	return bound, bucket, n
}

// BenchmarkGate500Accounts4Regions gates an AMI in 4 regions for the 500
// accounts of an organization's OU (10 nested OUs of 50), found through
// AWS Organizations, with 50 ms of latency on every call and the
// simulator enforcing AWS's request quotas. It prints the wall time and
// the quota-bound lower bound (the slowest bucket's calls past its burst
// at its rate, from the calls the run made; or the critical path's
// latency, if longer), and fails unless no call was throttled, the run is
// green, each key got one PutKeyPolicy and its policy is under 32 KiB.
func BenchmarkGate500Accounts4Regions(b *testing.B) {
	latency := benchLatency()
	regions := []string{"us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2"}
	var accounts, units []string
	for u := range 10 {
		var entries []string
		for i := range 50 {
			a := fmt.Sprintf("2%02d%09d", u, i)
			accounts = append(accounts, a)
			entries = append(entries, `{"id": "`+a+`"}`)
		}
		units = append(units, fmt.Sprintf(`{"name": "team%02d", "accounts": [%s]}`, u, strings.Join(entries, ",")))
	}
	org := json.RawMessage(`[{"id": "` + orgID + `", "root_id": "r-ex12", "management_account": "` + owner + `",
		"organizational_units": [{"name": "prod", "id": "` + prodOU + `", "organizational_units": [` + strings.Join(units, ",") + `]}]}]`)
	var total, totalBound time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := startWorld(b, testWorld{regions: regions, targets: accounts, organizations: org})
		amis := s.imageIDs(b, regions...)
		opts := orgOptions(amis, nil, []string{prodOU})
		s.SetFaults(awsim.Faults{LatencyMS: int(latency / time.Millisecond)})
		s.SetQuotas(awsim.QuotaSettings{Enabled: true})
		b.StartTimer()

		start := time.Now()
		rep, err := Run(context.Background(), opts, s.sessions(b), nil)
		took := time.Since(start)
		total += took

		b.StopTimer()
		if err != nil || !rep.OK {
			b.Fatalf("run: %v %.300v", err, rep.Failures())
		}
		calls := s.Calls()[s.setup:]
		throttled := 0
		for _, c := range calls {
			if strings.Contains(c.ErrorCode, "Throttl") || c.ErrorCode == "RequestLimitExceeded" || c.ErrorCode == "TooManyRequestsException" {
				throttled++
			}
		}
		if throttled > 0 {
			b.Errorf("%d calls throttled", throttled)
		}
		m := s.mutations()
		if n := count(m, "kms:PutKeyPolicy"); n != len(regions) {
			b.Fatalf("%d PutKeyPolicy for %d keys", n, len(regions))
		}
		for _, region := range regions {
			if p := s.keyPolicy(b, region); len(p) > keypolicy.MaxPolicySize {
				b.Fatalf("key policy in %s: %d bytes", region, len(p))
			}
		}
		bound, bucket, n := quotaBound(calls)
		lower := max(bound, (criticalPath+4)*latency)
		totalBound += lower
		b.Logf("run %d: %v for %d accounts × %d regions, %d calls, %d throttled; quota bound %v (%s: %d calls); ratio %.2f; steps %v",
			i, took.Round(time.Millisecond), len(accounts), len(regions), len(calls), throttled, bound.Round(time.Millisecond), bucket, n,
			float64(took)/float64(lower), rep.Timings)
		b.StartTimer()
	}
	b.ReportMetric(float64(totalBound.Milliseconds())/float64(b.N), "lowerbound-ms")
	b.ReportMetric(float64(total)/float64(totalBound), "x-lowerbound")
}
