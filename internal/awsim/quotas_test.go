package awsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// The figures of AWS's documents, as the simulator reads them.
func TestQuotaTable(t *testing.T) {
	for _, tc := range []struct {
		service, action, group string
		rate                   float64
		burst                  int
	}{
		{"kms", "CreateGrant", "CreateGrant", 50, 50},
		{"kms", "DescribeKey", "DescribeKey", 2000, 2000},
		{"kms", "PutKeyPolicy", "PutKeyPolicy", 15, 15},
		{"kms", "CreateAlias", "CreateAlias", 5, 5},
		{"kms", "Decrypt", kmsCryptoGroup, 5500, 5500},
		{"ec2", "ModifyImageAttribute", "ModifyImageAttribute", 5, 100},
		{"ec2", "DescribeImages", "DescribeImages", 20, 100},
		{"ec2", "DescribeSnapshots" + Unfiltered, "DescribeSnapshots" + Unfiltered, 10, 50},
		{"ec2", "CreateLaunchTemplate", "CreateLaunchTemplate", 5, 50},
		{"ec2", "RunInstances", "RunInstances", 2, 5},
		{"ec2", "RunInstances" + Instances, "RunInstances" + Instances, 2, 1000},
		{"sts", "AssumeRole", "STS requests", 600, 600},
		{"sts", "GetCallerIdentity", "STS requests", 600, 600},
		{"cloudtrail", "LookupEvents", "LookupEvents", 2, 2},
		{"autoscaling", "DescribeAutoScalingGroups", "Auto Scaling API", 10, 20},
		{"iam", "GetRole", "GetRole", 20, 20},
		{"cloudtrail", "CreateTrail", "", 0, 0},
	} {
		group, rate, burst := Quota(tc.service, tc.action)
		if group != tc.group || rate != tc.rate || burst != tc.burst {
			t.Errorf("Quota(%s, %s) = %q, %v, %d; want %q, %v, %d", tc.service, tc.action, group, rate, burst, tc.group, tc.rate, tc.burst)
		}
	}
	table := QuotaTable()
	seen := map[string]bool{}
	for _, r := range table {
		seen[r.Service+":"+r.Action] = true
		if r.Rate <= 0 || r.Burst < 1 || r.Source == "" || r.Group == "" {
			t.Errorf("incomplete rule %+v", r)
		}
		if (r.Service == "iam" || r.Service == "organizations") != r.Global {
			t.Errorf("%s:%s global = %v", r.Service, r.Action, r.Global)
		}
	}
	for _, op := range []string{"kms:CreateGrant", "ec2:ModifyImageAttribute", "ec2:DescribeSnapshots (unfiltered)", "sts:AssumeRole",
		"iam:SimulatePrincipalPolicy", "autoscaling:CreateAutoScalingGroup", "organizations:ListAccountsForParent",
		"organizations:CreateAccount", "cloudtrail:LookupEvents"} {
		if !seen[op] {
			t.Errorf("%s is not in the table", op)
		}
	}
}

// Over its quota, each service answers with its own throttling error, in
// its wire shape, and the SDK takes it for a throttle; the call log shows
// it.
func TestQuotaErrorsAreThrottlesInTheSDK(t *testing.T) {
	s, url := startSim(t)
	// Every bucket holds one token and refills in minutes.
	s.SetQuotas(QuotaSettings{Enabled: true, Scale: 0.001})
	ctx := context.Background()
	cfg := config(url, target)
	for _, tc := range []struct {
		service, action string
		call            func() error
		code            string
		status          int
	}{
		{"kms", "ListAliases", func() error { _, err := kms.NewFromConfig(cfg).ListAliases(ctx, &kms.ListAliasesInput{}); return err }, "ThrottlingException", 400},
		{"ec2", "DescribeRegions", func() error {
			_, err := ec2.NewFromConfig(cfg).DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
			return err
		}, "RequestLimitExceeded", 503},
		{"sts", "GetCallerIdentity", func() error {
			_, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			return err
		}, "Throttling", 400},
		{"iam", "GetRole", func() error {
			_, err := iam.NewFromConfig(cfg).GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("nobody")})
			return err
		}, "Throttling", 400},
		{"autoscaling", "DescribeAutoScalingGroups", func() error {
			_, err := autoscaling.NewFromConfig(cfg).DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
			return err
		}, "Throttling", 400},
		{"cloudtrail", "LookupEvents", func() error {
			_, err := cloudtrail.NewFromConfig(cfg).LookupEvents(ctx, &cloudtrail.LookupEventsInput{})
			return err
		}, "ThrottlingException", 400},
		{"organizations", "ListAccounts", func() error {
			_, err := organizations.NewFromConfig(cfg).ListAccounts(ctx, &organizations.ListAccountsInput{})
			return err
		}, "TooManyRequestsException", 400},
	} {
		t.Run(tc.service, func(t *testing.T) {
			_ = tc.call() // takes the bucket's only token
			err := tc.call()
			checkThrottle(t, err, tc.code, tc.status)
			calls := s.Calls()
			last := calls[len(calls)-1]
			if last.Service != tc.service || last.Action != tc.action || last.ErrorCode != tc.code || last.Status != tc.status {
				t.Fatalf("logged as %+v", last)
			}
		})
	}
}

func checkThrottle(t *testing.T, err error, code string, status int) {
	t.Helper()
	var re *awshttp.ResponseError
	if apiCode(err) != code || !errors.As(err, &re) || re.HTTPStatusCode() != status {
		t.Fatalf("got %v, want %s with HTTP %d", err, code, status)
	}
	if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) != aws.TrueTernary {
		t.Fatalf("the SDK does not take %v for a throttle", err)
	}
	if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) != aws.TrueTernary {
		t.Fatalf("the SDK does not retry %v", err)
	}
}

// A bucket starts full, refills at its rate and holds no more than its
// size.
func TestQuotaBucketRefillsAtItsRate(t *testing.T) {
	s := New()
	s.SetQuotas(QuotaSettings{Enabled: true})
	c := caller{account: target, region: region}
	grant := []draw{{"CreateGrant", 1}}
	t0 := time.Now()
	burst := func(at time.Time) int {
		n := 0
		for s.take(c, "kms", grant, 1, at) {
			n++
		}
		return n
	}
	if n := burst(t0); n != 50 {
		t.Fatalf("a full CreateGrant bucket let %d through, want 50", n)
	}
	if n := burst(t0.Add(100 * time.Millisecond)); n != 5 {
		t.Fatalf("after 100 ms at 50/s, %d through, want 5", n)
	}
	if n := burst(t0.Add(time.Minute)); n != 50 {
		t.Fatalf("after a minute, %d through, want the bucket's 50", n)
	}
	// Scaled to a tenth: 5 per second, and a bucket of 5 (the scaled
	// bucket holds at most its size, whatever the unscaled one held).
	scaled := 0
	for s.take(c, "kms", grant, 0.1, t0.Add(3*time.Minute)) {
		scaled++
	}
	if scaled != 5 {
		t.Fatalf("scaled bucket let %d through, want 5", scaled)
	}
	if s.take(c, "kms", grant, 0.1, t0.Add(3*time.Minute+150*time.Millisecond)) {
		t.Fatal("a token after 150 ms at 5/s")
	}
	if !s.take(c, "kms", grant, 0.1, t0.Add(3*time.Minute+210*time.Millisecond)) {
		t.Fatal("no token after 210 ms at 5/s")
	}
}

// Buckets are per account and Region; IAM's are per account.
func TestQuotasPerAccountAndRegion(t *testing.T) {
	s := New()
	s.SetQuotas(QuotaSettings{Enabled: true})
	now := time.Now()
	drain := func(c caller, service, action string) int {
		n := 0
		for s.take(c, service, []draw{{action, 1}}, 1, now) {
			n++
		}
		return n
	}
	a1 := caller{account: owner, region: "us-east-1"}
	a2 := caller{account: owner, region: "eu-west-1"}
	b1 := caller{account: target, region: "us-east-1"}
	if n := drain(a1, "kms", "CreateAlias"); n != 5 {
		t.Fatal(n)
	}
	if n := drain(a1, "kms", "DeleteAlias"); n != 15 {
		t.Fatalf("DeleteAlias has a bucket of its own, of 15: %d", n)
	}
	if n := drain(b1, "kms", "CreateAlias"); n != 5 {
		t.Fatalf("another account: %d", n)
	}
	if n := drain(a2, "kms", "CreateAlias"); n != 5 {
		t.Fatalf("another region: %d", n)
	}
	if n := drain(a1, "iam", "GetRole"); n != 20 {
		t.Fatal(n)
	}
	if n := drain(a2, "iam", "GetRole"); n != 0 {
		t.Fatalf("IAM is global, yet another region had %d", n)
	}
	if n := drain(b1, "iam", "GetRole"); n != 20 {
		t.Fatalf("IAM, another account: %d", n)
	}
	// EC2's unfiltered calls draw from their own bucket; starting
	// instances also takes a token per instance.
	if n := drain(a1, "ec2", "DescribeSnapshots"+Unfiltered); n != 50 {
		t.Fatal(n)
	}
	if n := drain(a1, "ec2", "DescribeSnapshots"); n != 100 {
		t.Fatalf("filtered DescribeSnapshots: %d", n)
	}
	if !s.take(a1, "ec2", []draw{{"RunInstances", 1}, {"RunInstances" + Instances, 1000}}, 1, now) {
		t.Fatal("1000 instances at once")
	}
	if s.take(a1, "ec2", []draw{{"RunInstances", 1}, {"RunInstances" + Instances, 1}}, 1, now) {
		t.Fatal("instance 1001 launched")
	}
	if n := drain(a1, "ec2", "RunInstances"); n != 4 {
		t.Fatalf("a refused launch took a request token: %d left", n)
	}
}

// Quotas are off by default and after a reset; the admin endpoint turns
// them on and lists the table.
func TestQuotasAdminEndpoint(t *testing.T) {
	s, url := startSim(t)
	if s.Quotas().Enabled {
		t.Fatal("quotas on by default")
	}
	post := func(body string) int {
		resp, err := http.Post(url+"/_sim/quotas", "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(`{"enabled": true, "scale": 0.5}`); code != http.StatusNoContent {
		t.Fatal(code)
	}
	if code := post(`{"enabled": true, "rate": 2}`); code != http.StatusBadRequest {
		t.Fatal(code)
	}
	resp, err := http.Get(url + "/_sim/quotas")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Enabled bool        `json:"enabled"`
		Scale   float64     `json:"scale"`
		Table   []QuotaRule `json:"table"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || !got.Enabled || got.Scale != 0.5 || len(got.Table) != len(QuotaTable()) {
		t.Fatalf("%v %+v", err, got)
	}
	ct := cloudtrail.NewFromConfig(config(url, target))
	_, _ = ct.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{})
	if _, err := ct.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{}); apiCode(err) != "ThrottlingException" {
		t.Fatalf("LookupEvents at half its quota: %v", err)
	}
	s.Reset()
	if s.Quotas().Enabled {
		t.Fatal("quotas on after a reset")
	}
}

// A draw on no modelled quota takes nothing, and the others still take
// their own tokens.
func TestQuotaTakeSkipsUnmodelledDraws(t *testing.T) {
	s := New()
	s.SetQuotas(QuotaSettings{Enabled: true})
	c := caller{account: owner, region: region}
	now := time.Now()
	if !s.take(c, "ec2", []draw{{"DescribeImages" + Instances, 1}, {"RunInstances" + Instances, 1000}}, 1, now) {
		t.Fatal("1000 instances at once")
	}
	if s.take(c, "ec2", []draw{{"RunInstances" + Instances, 1}}, 1, now) {
		t.Fatal("the instance bucket gave a token after 1000 were taken")
	}
}
