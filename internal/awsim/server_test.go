package awsim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

const (
	owner  = "444455556666"
	target = "111122223333"
	region = "us-east-1"
)

func startSim(t *testing.T) (*Server, string) {
	t.Helper()
	s := New()
	ctx, cancel := context.WithCancel(context.Background())
	url, err := s.Start(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = s.Close()
	})
	return s, url
}

func config(url, account string) aws.Config {
	return aws.Config{
		Region:       region,
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("SIM"+account, "secret", ""),
		// The SDK retries LimitExceededException as throttling; one attempt
		// keeps error tests fast.
		RetryMaxAttempts: 1,
	}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

const writeup1Policy = `{"Version":"2012-10-17","Statement":[
 {"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
 {"Sid":"Allow use of the key","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:root"]},"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"},
 {"Sid":"Allow attachment of persistent resources","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:root"]},"Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"],"Resource":"*"}]}`

func TestSTSIdentityAndAssumeRole(t *testing.T) {
	s, url := startSim(t)
	ctx := context.Background()
	out, err := sts.NewFromConfig(config(url, target)).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Account) != target || aws.ToString(out.Arn) != "arn:aws:iam::"+target+":root" {
		t.Fatalf("identity %+v", out)
	}

	// A role that trusts the owner account.
	s.mu.Lock()
	s.world.roles["arn:aws:iam::"+target+":role/amigate"] = &role{
		arn: "arn:aws:iam::" + target + ":role/amigate", name: "amigate", path: "/", account: target,
		trustPolicy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + owner + `:root"},"Action":"sts:AssumeRole"}]}`,
	}
	s.mu.Unlock()
	stsOwner := sts.NewFromConfig(config(url, owner))
	ar, err := stsOwner.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::" + target + ":role/amigate"), RoleSessionName: aws.String("gate")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(url, target)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(ar.Credentials.AccessKeyId), aws.ToString(ar.Credentials.SecretAccessKey), aws.ToString(ar.Credentials.SessionToken))
	who, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(who.Arn) != "arn:aws:sts::"+target+":assumed-role/amigate/gate" {
		t.Errorf("assumed identity %s", aws.ToString(who.Arn))
	}
	// An account the role does not trust is refused.
	_, err = sts.NewFromConfig(config(url, "999988887777")).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::" + target + ":role/amigate"), RoleSessionName: aws.String("x")})
	if apiCode(err) != "AccessDenied" {
		t.Errorf("untrusted AssumeRole: %v", err)
	}

	// A trust policy with an sts:ExternalId condition.
	for _, c := range []struct {
		op, want, given string
		ok              bool
	}{
		{"StringEquals", `"ci-1"`, "ci-1", true},
		{"StringEquals", `["a","ci-1"]`, "ci-1", true},
		{"StringEquals", `"ci-1"`, "", false},
		{"StringEquals", `"ci-1"`, "ci-2", false},
		{"StringLike", `"ci-*"`, "ci-2", true},
		{"StringLike", `"ci-*"`, "cd-2", false},
	} {
		s.mu.Lock()
		s.world.roles["arn:aws:iam::"+target+":role/amigate"].trustPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + owner +
			`:root"},"Action":"sts:AssumeRole","Condition":{"` + c.op + `":{"sts:ExternalId":` + c.want + `}}}]}`
		s.mu.Unlock()
		in := &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::" + target + ":role/amigate"), RoleSessionName: aws.String("x")}
		if c.given != "" {
			in.ExternalId = aws.String(c.given)
		}
		_, err := stsOwner.AssumeRole(ctx, in)
		if ok := err == nil; ok != c.ok || !ok && apiCode(err) != "AccessDenied" {
			t.Errorf("%s %s with external id %q: %v, want allowed=%v", c.op, c.want, c.given, err, c.ok)
		}
	}
}

func TestKMSKeysPoliciesAndGrants(t *testing.T) {
	s, url := startSim(t)
	ctx := context.Background()
	kc := kms.NewFromConfig(config(url, owner))
	created, err := kc.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("golden")})
	if err != nil {
		t.Fatal(err)
	}
	md := created.KeyMetadata
	if md.KeyManager != kmstypes.KeyManagerTypeCustomer || md.KeyState != kmstypes.KeyStateEnabled || !strings.HasPrefix(aws.ToString(md.Arn), "arn:aws:kms:us-east-1:"+owner+":key/") {
		t.Fatalf("metadata %+v", md)
	}
	keyARN := aws.ToString(md.Arn)
	pol, err := kc.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: md.KeyId, PolicyName: aws.String("default")})
	if err != nil || !strings.Contains(aws.ToString(pol.Policy), `"AWS" : "arn:aws:iam::`+owner+`:root"`) {
		t.Fatalf("default policy: %v %s", err, aws.ToString(pol.Policy))
	}

	// PutKeyPolicy rejects invalid JSON and oversized policies.
	_, err = kc.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: md.KeyId, PolicyName: aws.String("default"), Policy: aws.String("{not json")})
	if apiCode(err) != "MalformedPolicyDocumentException" {
		t.Errorf("invalid JSON: %v", err)
	}
	big := `{"Version":"2012-10-17","Statement":[],"Id":"` + strings.Repeat("x", maxKeyPolicySize) + `"}`
	_, err = kc.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: md.KeyId, PolicyName: aws.String("default"), Policy: aws.String(big)})
	if apiCode(err) != "LimitExceededException" {
		t.Errorf("oversized policy: %v", err)
	}

	// The default policy lets no other account in.
	tc := kms.NewFromConfig(config(url, target))
	if _, err := tc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyARN)}); apiCode(err) != "AccessDeniedException" {
		t.Errorf("cross-account with the default policy: %v", err)
	}
	// The first write-up's policy lets the target use the key and create grants.
	if _, err := kc.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: md.KeyId, PolicyName: aws.String("default"), Policy: aws.String(writeup1Policy)}); err != nil {
		t.Fatal(err)
	}
	// Another account reaches the key only by ARN.
	if _, err := tc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: md.KeyId}); apiCode(err) != "NotFoundException" {
		t.Errorf("cross-account by id: %v", err)
	}
	if _, err := tc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyARN)}); err != nil {
		t.Errorf("cross-account by ARN: %v", err)
	}

	// CreateGrant with the same name and parameters is idempotent.
	slr := "arn:aws:iam::" + target + ":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
	in := &kms.CreateGrantInput{KeyId: aws.String(keyARN), GranteePrincipal: aws.String(slr), Name: aws.String("amigate-asg"),
		Operations: []kmstypes.GrantOperation{"Decrypt", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo", "CreateGrant"}}
	g1, err := tc.CreateGrant(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := tc.CreateGrant(ctx, in)
	if err != nil || aws.ToString(g2.GrantId) != aws.ToString(g1.GrantId) {
		t.Fatalf("second CreateGrant: %v %s != %s", err, aws.ToString(g2.GrantId), aws.ToString(g1.GrantId))
	}
	list, err := kc.ListGrants(ctx, &kms.ListGrantsInput{KeyId: md.KeyId})
	if err != nil || len(list.Grants) != 1 || aws.ToString(list.Grants[0].GranteePrincipal) != slr || aws.ToString(list.Grants[0].IssuingAccount) != "arn:aws:iam::"+target+":root" {
		t.Fatalf("grants: %v %+v", err, list)
	}
	if _, err := kc.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: md.KeyId, GrantId: g1.GrantId}); err != nil {
		t.Fatal(err)
	}

	// The AWS-managed aws/ebs key exists on first use, and cannot be changed.
	ebs, err := kc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/aws/ebs")})
	if err != nil || ebs.KeyMetadata.KeyManager != kmstypes.KeyManagerTypeAws {
		t.Fatalf("aws/ebs: %v %+v", err, ebs)
	}
	_, err = kc.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: ebs.KeyMetadata.KeyId, PolicyName: aws.String("default"), Policy: pol.Policy})
	if err == nil {
		t.Error("the aws/ebs key policy was changed")
	}

	// A grant limited to EC2 (kms:GrantIsForAWSResource) refuses a direct call.
	limited := strings.Replace(writeup1Policy, `"Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"],"Resource":"*"`,
		`"Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}`, 1)
	if _, err := kc.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: md.KeyId, PolicyName: aws.String("default"), Policy: aws.String(limited)}); err != nil {
		t.Fatal(err)
	}
	in.Name = aws.String("another")
	if _, err := tc.CreateGrant(ctx, in); apiCode(err) != "AccessDeniedException" {
		t.Errorf("direct CreateGrant under kms:GrantIsForAWSResource: %v", err)
	}

	// The call log records every call and whether it changed state.
	var mutating []string
	for _, c := range s.Calls() {
		if c.Mutating && c.Status == http.StatusOK {
			mutating = append(mutating, c.Action)
		}
	}
	if strings.Join(mutating, ",") != "CreateKey,PutKeyPolicy,CreateGrant,CreateGrant,RevokeGrant,PutKeyPolicy" {
		t.Errorf("mutating calls %v", mutating)
	}
}

func TestMalformedRequests(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	kc := kms.NewFromConfig(config(url, owner))
	if _, err := kc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("")}); apiCode(err) == "" {
		t.Errorf("empty KeyId: %v", err)
	}
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("{not json"))
	req.Header.Set("X-Amz-Target", "TrentService.DescribeKey")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=SIM"+owner+"/20261122/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusBadRequest || body["__type"] != "SerializationException" {
		t.Errorf("malformed body: %d %v", resp.StatusCode, body)
	}
}

func TestLoopbackOnly(t *testing.T) {
	if _, err := New().Start(context.Background(), "0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "loopback only") {
		t.Fatalf("err = %v", err)
	}
}

func TestFaults(t *testing.T) {
	s, url := startSim(t)
	ctx := context.Background()
	resp, err := http.Post(url+"/_sim/faults", "application/json", strings.NewReader(`{"service":"kms","throttle_rate":1}`))
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /_sim/faults: %v %v", err, resp)
	}
	resp.Body.Close()
	cfg := config(url, owner)
	if _, err := kms.NewFromConfig(cfg).ListAliases(ctx, &kms.ListAliasesInput{}); apiCode(err) != "ThrottlingException" {
		t.Errorf("throttled KMS: %v", err)
	}
	if _, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		t.Errorf("STS is not throttled: %v", err)
	}
	resp, _ = http.Post(url+"/_sim/faults", "application/json", strings.NewReader(`{"throttle_rate":2}`))
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a rate over 1 was accepted: %d", resp.StatusCode)
	}
	resp.Body.Close()

	// A grant delay: the grant exists at once but is not usable until it
	// has propagated.
	s.Reset()
	s.SetFaults(Faults{GrantDelayMS: 300})
	kc := kms.NewFromConfig(cfg)
	k, err := kc.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: k.KeyMetadata.Arn, GranteePrincipal: aws.String("arn:aws:iam::" + target + ":root"), Operations: []kmstypes.GrantOperation{"DescribeKey"}}); err != nil {
		t.Fatal(err)
	}
	tk := kms.NewFromConfig(config(url, target))
	if _, err := tk.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: k.KeyMetadata.Arn}); apiCode(err) != "AccessDeniedException" {
		t.Errorf("grant usable before its delay: %v", err)
	}
	time.Sleep(350 * time.Millisecond)
	if _, err := tk.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: k.KeyMetadata.Arn}); err != nil {
		t.Errorf("grant not usable after its delay: %v", err)
	}
}

func TestLookupEventsThrottledAtTwoPerSecond(t *testing.T) {
	_, url := startSim(t)
	ct := cloudtrail.NewFromConfig(config(url, target))
	var throttled int
	for i := 0; i < 4; i++ {
		if _, err := ct.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{}); apiCode(err) == "ThrottlingException" {
			throttled++
		}
	}
	if throttled < 2 {
		t.Fatalf("%d of 4 back-to-back LookupEvents throttled, want at least 2", throttled)
	}
}

func TestPutKeyPolicySafetyChecks(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	kc := kms.NewFromConfig(config(url, owner))
	k, err := kc.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	put := func(policy string, bypass bool) error {
		_, err := kc.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: k.KeyMetadata.KeyId, PolicyName: aws.String("default"), Policy: aws.String(policy), BypassPolicyLockoutSafetyCheck: bypass})
		return err
	}
	missingRole := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
	 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/NoSuchRole"},"Action":"kms:Decrypt","Resource":"*"}]}`
	if apiCode(put(missingRole, false)) != "MalformedPolicyDocumentException" {
		t.Error("a policy naming a missing role was accepted")
	}
	lockout := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}`
	if apiCode(put(lockout, false)) != "MalformedPolicyDocumentException" {
		t.Error("a policy locking the owner out was accepted")
	}
	if err := put(lockout, true); err != nil {
		t.Errorf("BypassPolicyLockoutSafetyCheck: %v", err)
	}
}

func TestDirectCryptoAndSnapshotSharing(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	keyARN, _ := bakeImage(t, url)
	kc := kms.NewFromConfig(config(url, owner))
	dk, err := kc.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(keyARN), KeySpec: kmstypes.DataKeySpecAes256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob}); err != nil {
		t.Errorf("owner Decrypt: %v", err)
	}
	// The default policy lets no other account decrypt.
	if _, err := kms.NewFromConfig(config(url, target)).Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob}); apiCode(err) != "AccessDeniedException" {
		t.Errorf("target Decrypt with the default policy: %v", err)
	}

	ec := ec2.NewFromConfig(config(url, owner))
	snaps, err := ec.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{})
	if err != nil || len(snaps.Snapshots) != 1 {
		t.Fatalf("DescribeSnapshots: %v", err)
	}
	id := snaps.Snapshots[0].SnapshotId
	if _, err := ec.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: id, Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission,
		CreateVolumePermission: &ec2types.CreateVolumePermissionModifications{Add: []ec2types.CreateVolumePermission{{UserId: aws.String(target)}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ec.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: id, Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission,
		OperationType: ec2types.OperationTypeAdd, UserIds: []string{"555566667777"}}); err != nil {
		t.Fatal(err)
	}
	attr, err := ec.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: id, Attribute: ec2types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil || len(attr.CreateVolumePermissions) != 2 {
		t.Fatalf("DescribeSnapshotAttribute: %v %+v", err, attr)
	}
	if _, err := ec2.NewFromConfig(config(url, target)).DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(id)}}); err != nil {
		t.Errorf("shared snapshot not visible to the target: %v", err)
	}
}
