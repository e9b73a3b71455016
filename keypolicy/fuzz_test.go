package keypolicy

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func addSeeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":["111122223333"]},"NotAction":"kms:Decrypt","NotResource":"*","Condition":{"ForAnyValue:StringLikeIfExists":{"kms:GrantOperations":["De*"]},"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","::1"]},"Null":{"kms:GranteePrincipal":true}}}}`))
}

// FuzzParse: the parser never panics, and parse → marshal → parse gives the
// same policy.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			return
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		q, err := Parse(out)
		if err != nil {
			t.Fatalf("marshalled policy does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(semantic(p), semantic(q)) {
			t.Fatalf("round trip changed the policy:\n%+v\n%+v", semantic(p), semantic(q))
		}
	})
}

// semantic strips what only concerns the original text.
func semantic(p *Policy) []Statement {
	out := append([]Statement(nil), p.Statements...)
	return out
}

// FuzzEvaluate: evaluation and the path checks never panic on any policy
// and request, and a decision is always one of the three.
func FuzzEvaluate(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			return
		}
		for _, principal := range []string{"arn:aws:iam::111122223333:root", "arn:aws:sts::111122223333:assumed-role/R/s", "ec2.amazonaws.com", "garbage"} {
			r := p.Evaluate(Request{Principal: principal, Action: "kms:Decrypt", Resource: testKey, Context: map[string][]string{"aws:SourceIp": {"10.1.2.3"}, "kms:GrantOperations": {"Decrypt", "Encrypt"}}})
			if r.Decision < ImplicitDeny || r.Decision > ExplicitDeny {
				t.Fatalf("decision %d", r.Decision)
			}
		}
		key := Key{ARN: testKey, Policy: p}
		all := []Path{PathASG, PathInstance, PathCopy}
		Check(key, []Target{{Account: "111122223333", Paths: all}})
		CheckWith(key, []Target{
			{Account: "111122223333", Paths: all, Principal: "arn:aws:sts::111122223333:assumed-role/R/s", OrgPath: "o-abcdefghij/r-ab12/"},
			{Account: "111122223333", Paths: all, Principal: "arn:aws:iam::111122223333:user/u"},
			{Account: "444455556666", Paths: all, Principal: "arn:aws:iam::444455556666:role/R"},
		}, CheckOptions{Now: testNow})
		if plan, err := PlanPatch(key, []Target{{Account: "111122223333"}}, PlanOptions{}); err == nil && plan.Changed {
			if _, err := Parse(plan.After); err != nil {
				t.Fatalf("patched policy does not parse: %v", err)
			}
		}
	})
}
