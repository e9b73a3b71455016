package keypolicy

import (
	"os"
	"strings"
	"testing"
)

const (
	writeup1Key  = "arn:aws:kms:us-east-1:444455556666:key/12ee9c11-3476-492c-b5cc-ed4a4d636337"
	writeup1SLR  = "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
	writeup2Key  = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	writeup2Role = "arn:aws:iam::123456789012:role/MyRoleName"
)

func mustPolicy(t testing.TB, doc string) *Policy {
	t.Helper()
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return p
}

func loadPolicy(t testing.TB, name string) *Policy {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return mustPolicy(t, string(data))
}

// writeup1Grant is the grant the first write-up creates from the target.
var writeup1Grant = Grant{
	ID: "cff2", GranteePrincipal: writeup1SLR, IssuingAccount: "arn:aws:iam::111122223333:root",
	Operations: []string{"Decrypt", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo", "CreateGrant"},
}

func pathVerdict(t *testing.T, v Verdict, account string, p Path) PathVerdict {
	t.Helper()
	for _, tv := range v.Targets {
		if tv.Account != account {
			continue
		}
		for _, pv := range tv.Paths {
			if pv.Path == p {
				return pv
			}
		}
	}
	t.Fatalf("no verdict for %s/%s in %+v", account, p, v)
	return PathVerdict{}
}

func codes(fs []Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Code)
	}
	return strings.Join(out, ",")
}

// The first write-up: the key policy allows the target account, the launch
// by Auto Scaling still fails until the service-linked role has a grant.
func TestWriteup1AutoScalingNeedsGrant(t *testing.T) {
	key := Key{ARN: writeup1Key, Manager: "CUSTOMER", State: "Enabled", Policy: loadPolicy(t, "writeup1-policy.json")}
	targets := []Target{{Account: "111122223333"}}

	v := Check(key, targets)
	if v.OK {
		t.Fatal("verdict ok without the grant; want asg to fail")
	}
	asg := pathVerdict(t, v, "111122223333", PathASG)
	if asg.OK || codes(asg.Findings) != CodeGrantMissing {
		t.Fatalf("asg: ok=%v findings=%s, want GRANT_MISSING", asg.OK, codes(asg.Findings))
	}
	if asg.Principal != writeup1SLR {
		t.Errorf("asg principal = %s", asg.Principal)
	}
	fix := asg.Findings[0].Fix
	for _, want := range []string{"aws kms create-grant", "--key-id " + writeup1Key, "--grantee-principal " + writeup1SLR, "Decrypt GenerateDataKeyWithoutPlaintext ReEncryptFrom ReEncryptTo CreateGrant", "# run in account 111122223333"} {
		if !strings.Contains(fix, want) {
			t.Errorf("fix %q lacks %q", fix, want)
		}
	}
	if in := pathVerdict(t, v, "111122223333", PathInstance); !in.OK {
		t.Errorf("instance path fails: %+v", in.Findings)
	}

	key.Grants = []Grant{writeup1Grant}
	if v := Check(key, targets); !v.OK {
		t.Fatalf("with the grant: %+v", v)
	}
}

// A key-policy statement naming the service-linked role is not enough
// across accounts: its identity policy has no KMS permission.
func TestCrossAccountRoleNamedInKeyPolicyStillNeedsGrant(t *testing.T) {
	p := mustPolicy(t, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"`+writeup1SLR+`"},"Action":"kms:*","Resource":"*"}]}`)
	v := Check(Key{ARN: writeup1Key, Policy: p}, []Target{{Account: "111122223333", Paths: []Path{PathASG}}})
	if asg := pathVerdict(t, v, "111122223333", PathASG); asg.OK || codes(asg.Findings) != CodeGrantMissing {
		t.Fatalf("asg = %+v", asg)
	}
	// In the key's own account, naming the role directly suffices.
	sameSLR := DefaultAutoScalingRole("aws", "444455556666")
	p = mustPolicy(t, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"`+sameSLR+`"},"Action":"kms:*","Resource":"*"}]}`)
	v = Check(Key{ARN: writeup1Key, Policy: p}, []Target{{Account: "444455556666", Paths: []Path{PathASG}}})
	if !v.OK {
		t.Fatalf("same-account named role: %+v", v)
	}
	// When the target may not create the grant itself, the fix says to run it
	// from the key owner, and which statement would let the target do it.
	v = Check(Key{ARN: writeup1Key, Policy: loadPolicy(t, "writeup3-fixed-policy.json")}, []Target{{Account: "111122223333", Paths: []Path{PathASG}}})
	fix := pathVerdict(t, v, "111122223333", PathASG).Findings[0].Fix
	if !strings.Contains(fix, "run in the key owner's account 444455556666") || !strings.Contains(fix, SidAutoScalingGrants) {
		t.Errorf("fix when the target cannot create the grant: %s", fix)
	}
	// Root delegation alone does not help the same-account role either.
	p = loadPolicy(t, "writeup3-default-policy.json")
	v = Check(Key{ARN: writeup1Key, Policy: p}, []Target{{Account: "444455556666", Paths: []Path{PathASG}}})
	if asg := pathVerdict(t, v, "444455556666", PathASG); asg.OK || codes(asg.Findings) != CodeGrantMissing {
		t.Fatalf("same-account root delegation: %+v", asg)
	}
}

// The second write-up: a SourceIp condition makes EC2's calls fail; IAM
// alone cannot grant access unless the key policy delegates to the account.
func TestWriteup2SourceIP(t *testing.T) {
	key := Key{ARN: writeup2Key, Policy: loadPolicy(t, "writeup2-sourceip-policy.json")}
	target := Target{Account: "123456789012", Principal: writeup2Role, Paths: []Path{PathInstance}}
	v := Check(key, []Target{target})
	in := pathVerdict(t, v, "123456789012", PathInstance)
	if in.OK || codes(in.Findings) != CodeSourceIPCondition {
		t.Fatalf("instance: ok=%v findings=%s, want SOURCE_IP_CONDITION", in.OK, codes(in.Findings))
	}
	f := in.Findings[0]
	if f.Statement != "Allow use of the key" || !strings.Contains(f.Fix, "kms:ViaService") {
		t.Errorf("finding = %+v", f)
	}
	if len(f.Actions) != 4 { // Decrypt, DescribeKey, GenerateDataKeyWithoutPlaintext, ReEncryptFrom/To merge
		t.Logf("actions: %v", f.Actions)
	}

	// The write-up's remedy: the same statement limited with kms:ViaService.
	fixed := strings.Replace(string(loadPolicy(t, "writeup2-sourceip-policy.json").raw),
		`"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:db8::/32"]}`,
		`"StringEquals": {"kms:ViaService": "ec2.us-west-2.amazonaws.com"}`, 1)
	key.Policy = mustPolicy(t, fixed)
	if v := Check(key, []Target{target}); !v.OK {
		t.Fatalf("with kms:ViaService: %+v", v)
	}

	// A Deny with NotIpAddress blocks the same calls explicitly.
	deny := mustPolicy(t, `{"Version":"2012-10-17","Statement":[
	 {"Sid":"use","Effect":"Allow","Principal":{"AWS":"`+writeup2Role+`"},"Action":"kms:*","Resource":"*"},
	 {"Sid":"office only","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}]}`)
	v = Check(Key{ARN: writeup2Key, Policy: deny}, []Target{target})
	in = pathVerdict(t, v, "123456789012", PathInstance)
	if in.OK || codes(in.Findings) != CodeSourceIPCondition || in.Findings[0].Statement != "office only" {
		t.Fatalf("deny NotIpAddress: %+v", in)
	}
}

// The second write-up's IAM half: with the default key policy the role
// needs its own identity policy.
func TestWriteup2IdentityPolicy(t *testing.T) {
	key := Key{ARN: writeup2Key, Policy: mustPolicy(t, `{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"kms:*","Resource":"*"}]}`)}
	iam := mustPolicy(t, `{"Version":"2012-10-17","Statement":[{"Sid":"VisualEditor0","Effect":"Allow","Action":["kms:Decrypt","kms:ReEncrypt*","kms:Encrypt","kms:GenerateDataKey*","kms:DescribeKey","kms:CreateGrant"],"Resource":"`+writeup2Key+`"}]}`)
	target := Target{Account: "123456789012", Principal: writeup2Role, Identity: iam, Paths: []Path{PathInstance}}
	if v := Check(key, []Target{target}); !v.OK {
		t.Fatalf("with the IAM policy: %+v", v)
	}
	target.Identity = mustPolicy(t, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}`)
	v := Check(key, []Target{target})
	in := pathVerdict(t, v, "123456789012", PathInstance)
	if in.OK || codes(in.Findings) != CodeIdentityPolicy {
		t.Fatalf("without KMS in the IAM policy: %+v", in)
	}
}

// The third write-up: the default key policy does not let another account's
// EC2 create grants; the remedy limits CreateGrant with kms:ViaService.
func TestWriteup3StartInstances(t *testing.T) {
	target := []Target{{Account: "111122223333", Paths: []Path{PathInstance}}}
	v := Check(Key{ARN: writeup1Key, Policy: loadPolicy(t, "writeup3-default-policy.json")}, target)
	in := pathVerdict(t, v, "111122223333", PathInstance)
	if in.OK || codes(in.Findings) != CodeKeyPolicyMissing {
		t.Fatalf("default policy: %+v", in)
	}
	// Both purposes are missing: the one fix gives both statements.
	if !strings.Contains(in.Findings[0].Fix, SidEC2Grants) || !strings.Contains(in.Findings[0].Fix, SidUseKey) {
		t.Errorf("fix does not give both statements: %q", in.Findings[0].Fix)
	}
	if v := Check(Key{ARN: writeup1Key, Policy: loadPolicy(t, "writeup3-fixed-policy.json")}, target); !v.OK {
		t.Fatalf("remedied policy: %+v", v)
	}
	// The same remedy limited to another service is a mismatch.
	other := strings.Replace(string(loadPolicy(t, "writeup3-fixed-policy.json").raw), "ec2.us-east-1", "s3.us-east-1", 1)
	v = Check(Key{ARN: writeup1Key, Policy: mustPolicy(t, other)}, target)
	in = pathVerdict(t, v, "111122223333", PathInstance)
	if in.OK || codes(in.Findings) != CodeViaServiceMismatch {
		t.Fatalf("s3 ViaService: %+v", in)
	}
}

func TestKeyMetadataChecks(t *testing.T) {
	for _, tc := range []struct {
		key  Key
		want string
	}{
		{Key{ARN: writeup1Key, Manager: "AWS", State: "Enabled"}, CodeAWSManagedKey},
		{Key{ARN: writeup1Key, Manager: "CUSTOMER", State: "Disabled"}, CodeKeyNotEnabled},
		{Key{ARN: writeup1Key, Manager: "CUSTOMER", State: "PendingDeletion"}, CodeKeyNotEnabled},
		{Key{ARN: writeup1Key, Manager: "CUSTOMER", State: "Enabled", Spec: "RSA_2048", Usage: "ENCRYPT_DECRYPT"}, CodeKeySpec},
		{Key{ARN: writeup1Key, Manager: "CUSTOMER", State: "Enabled"}, ""},
	} {
		if got := codes(CheckKeyMetadata(tc.key)); got != tc.want {
			t.Errorf("%+v: findings %q, want %q", tc.key, got, tc.want)
		}
	}
	v := Check(Key{ARN: writeup1Key, Manager: "AWS", State: "Enabled", Policy: loadPolicy(t, "writeup1-policy.json")}, nil)
	if v.OK {
		t.Error("AWS managed key passed")
	}
}

// The EC2 Auto Scaling User Guide's same-account example: the key policy
// names the service-linked role directly, with CreateGrant limited by
// kms:GrantIsForAWSResource. No grant is needed in the key's own account.
func TestAutoScalingGuideSameAccountExample(t *testing.T) {
	slr := DefaultAutoScalingRole("aws", "444455556666")
	p := mustPolicy(t, `{"Version":"2012-10-17","Statement":[
	  {"Sid":"Allow service-linked role use of the customer managed key","Effect":"Allow","Principal":{"AWS":["`+slr+`"]},
	   "Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"},
	  {"Sid":"Allow attachment of persistent resources","Effect":"Allow","Principal":{"AWS":["`+slr+`"]},
	   "Action":["kms:CreateGrant"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":true}}}]}`)
	v := Check(Key{ARN: writeup1Key, Policy: p}, []Target{{Account: "444455556666", Paths: []Path{PathASG}}})
	if !v.OK {
		t.Fatalf("guide example fails: %+v", v)
	}
	// Without the GrantIsForAWSResource-limited CreateGrant, the launch's
	// CreateGrant is refused.
	p.Statements = p.Statements[:1]
	v = Check(Key{ARN: writeup1Key, Policy: p}, []Target{{Account: "444455556666", Paths: []Path{PathASG}}})
	if asg := pathVerdict(t, v, "444455556666", PathASG); asg.OK || asg.Findings[0].Actions[0] != "kms:CreateGrant" {
		t.Fatalf("without CreateGrant: %+v", asg)
	}
}
