package keypolicy

import (
	"fmt"
	"strings"
	"testing"
)

// bigPolicy builds a key policy of about size bytes: the default root
// statement, amigate's statements for many accounts, and filler statements
// with conditions, as a long-lived shared key accumulates them.
func bigPolicy(tb testing.TB, size int, targets []Target) *Policy {
	tb.Helper()
	var b strings.Builder
	b.WriteString(`{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"}`)
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, `,{"Sid":"Team%d","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::444455556666:role/team%d","arn:aws:iam::444455556666:role/ci%d"]},"Action":["kms:Encrypt","kms:Decrypt","kms:GenerateDataKey*"],"Resource":"*","Condition":{"StringEquals":{"kms:ViaService":["s3.us-east-1.amazonaws.com","ec2.us-east-1.amazonaws.com"]},"IpAddress":{"aws:SourceIp":["10.%d.0.0/16"]}}}`, i, i, i, i%250)
	}
	b.WriteString("]}")
	p := mustPolicy(tb, b.String())
	key := Key{ARN: testKey, Policy: p}
	return p.withTargets(tb, key, targets)
}

func (p *Policy) withTargets(tb testing.TB, key Key, targets []Target) *Policy {
	plan, err := PlanPatch(key, targets, PlanOptions{GrantFromSource: true})
	if err != nil && !strings.Contains(err.Error(), "32 KiB") {
		tb.Fatal(err)
	}
	return mustPolicy(tb, string(plan.After))
}

func hundredTargets() []Target {
	var ts []Target
	for i := 0; i < 100; i++ {
		ts = append(ts, Target{Account: fmt.Sprintf("2000000%05d", i)})
	}
	return ts
}

// BenchmarkCheck100Targets: both default paths (asg, instance) for 100
// targets against a ~30 KiB key policy with the targets' grants, at a
// given time, as the gate checks.
func BenchmarkCheck100Targets(b *testing.B) {
	targets := hundredTargets()
	p := bigPolicy(b, 24*1024, targets)
	key := Key{ARN: testKey, Manager: "CUSTOMER", State: "Enabled", Policy: p}
	for _, t := range targets {
		key.Grants = append(key.Grants, Grant{GranteePrincipal: DefaultAutoScalingRole("aws", t.Account), Operations: AutoScalingGrantOperations})
	}
	b.ReportAllocs()
	for b.Loop() {
		if v := CheckWith(key, targets, CheckOptions{Now: testNow}); !v.OK {
			b.Fatalf("verdict not ok: %+v", v.Targets[0])
		}
	}
	b.ReportMetric(float64(len(p.raw)), "policy-bytes")
}

// BenchmarkEvaluate: one request against a ~30 KiB policy.
func BenchmarkEvaluate(b *testing.B) {
	p := bigPolicy(b, 30*1024, nil)
	req := testEnv(ARN{Partition: "aws", Service: "kms", Region: "us-east-1", Account: "444455556666", Resource: "key/1234abcd-12ab-34cd-56ef-1234567890ab"}).serviceRequest("arn:aws:iam::111122223333:root", PathInstance, pathAction{action: "kms:Decrypt", withContext: true}, nil)
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(req)
	}
}

// BenchmarkParse30KiB parses a ~30 KiB key policy.
func BenchmarkParse30KiB(b *testing.B) {
	raw := bigPolicy(b, 30*1024, nil).raw
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlan100Targets: the key-policy patch for 100 targets, both
// default paths, against a ~24 KiB key policy that has none of them yet.
func BenchmarkPlan100Targets(b *testing.B) {
	targets := hundredTargets()
	key := Key{ARN: testKey, Manager: "CUSTOMER", State: "Enabled", Policy: bigPolicy(b, 24*1024, nil)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PlanPatch(key, targets, PlanOptions{}); err != nil && !strings.Contains(err.Error(), "32 KiB") {
			b.Fatal(err)
		}
	}
}
