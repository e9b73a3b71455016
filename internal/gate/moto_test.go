package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/amigate/packer-plugin-amigate/internal/awsapi"
	"github.com/amigate/packer-plugin-amigate/internal/motoserver"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// The gate's AWS calls against moto, an emulator written independently of
// ours, for the calls moto implements. Where moto 5.2.1 deviates from AWS,
// the tests work around it as this table says, and assert everything else:
//
//	| moto 5.2.1                                     | so the tests                                             |
//	|------------------------------------------------|----------------------------------------------------------|
//	| RegisterImage ignores BlockDeviceMappings and  | TestGateRunEncryptedAgainstMoto reads moto through a     |
//	| RootDeviceName: the image gets a new           | proxy that, in DescribeImages answers only, puts back    |
//	| unencrypted 15 GiB snapshot on /dev/sda1       | the encrypted snapshot the image was registered with;    |
//	| (CreateImage and CopyImage drop the encryption | every other call and answer passes unchanged.            |
//	| too)                                           | TestGateAgainstMoto runs the image path with             |
//	|                                                | allow_unencrypted                                        |
//	| CreateSnapshot of an encrypted volume:         | the image's snapshot is a CopySnapshot with KmsKeyId,    |
//	| Encrypted, but no KmsKeyId in                  | which moto reports                                       |
//	| DescribeSnapshots                              |                                                          |
//	| CreateGrant from another account fails (HTTP   | no target role: grants come from the source; the         |
//	| 500); AssumeRole accepts any role              | target's side (its view of the shared image) is not      |
//	|                                                | checked                                                  |
//	| CreateGrant accepts a grantee role that does   | the target's Auto Scaling role is not created; the       |
//	| not exist (AWS refuses it)                     | grant's grantee is asserted                              |
//	| CreateGrant with a Name already used makes a   | not exercised: the second run must call no CreateGrant   |
//	| second grant (AWS returns the first)           | at all, and moto must still hold exactly one grant       |
//	| ListGrants: no IssuingAccount, no CreationDate | not asserted                                             |
//	| key policies are not enforced                  | the verdict is the gate's own; nothing here depends on   |
//	|                                                | an authorisation                                         |
//	| the account is 123456789012 whatever the       | the source account is read from the key's ARN            |
//	| access key                                     |                                                          |
//	| no IAM policy simulator                        | the dry run cannot check the source user's IAM           |
//	| (SimulatePrincipalPolicy answers HTTP 500)     | permissions: DRY_RUN_UNVERIFIED is asserted              |
//
// Where moto does as AWS does, the tests assert it: DescribeKey's KeyManager
// (CUSTOMER) and KeyState, GetKeyPolicy returning what PutKeyPolicy wrote
// byte for byte, grants by name, grantee and operations in ListGrants,
// launch permissions in DescribeImageAttribute.
//
// TestGateAgainstMoto runs the image path through Run (with the target's
// groups read through its role) and the key path's steps on a moto key;
// TestGateRunEncryptedAgainstMoto runs the whole gate on an encrypted image.

func TestGateAgainstMoto(t *testing.T) {
	url := motoserver.Start(t)
	ctx := context.Background()
	sess, err := awsapi.New(ctx, awsapi.Settings{Region: "us-east-1", AccessKey: "AKIAMOTOSOURCE", SecretKey: "x", Endpoint: url})
	if err != nil {
		t.Fatal(err)
	}
	src := sess.Source("us-east-1")
	ec2c := ec2.NewFromConfig(src)
	vol, err := ec2c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(8)})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := ec2c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	img, err := ec2c.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("golden"), RootDeviceName: aws.String("/dev/xvda"),
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &ec2types.EbsBlockDevice{SnapshotId: snap.SnapshotId}}}})
	if err != nil {
		t.Fatal(err)
	}
	ami := aws.ToString(img.ImageId)

	role := roleARN(target)
	tgt := sess.Role(role, "", "us-east-1")
	lt, err := ec2.NewFromConfig(tgt).CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami), InstanceType: ec2types.InstanceTypeT3Micro}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := autoscaling.NewFromConfig(tgt).CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("web"),
		MinSize: aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(0), AvailabilityZones: []string{"us-east-1a"},
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId}}); err != nil {
		t.Fatal(err)
	}

	// The image path: inspect (with the target's groups read through its
	// role), share, verify; a dry run first, a second run last.
	opts := baseOptions(map[string]string{"us-east-1": ami}, Target{AccountID: target, RoleARN: role, AutoScalingGroups: []string{"web"}})
	opts.AllowUnencrypted = true
	launchPermissions := func() []string {
		out, err := ec2c.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: img.ImageId, Attribute: ec2types.ImageAttributeNameLaunchPermission})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range out.LaunchPermissions {
			ids = append(ids, aws.ToString(p.UserId))
		}
		return ids
	}
	dry := opts
	dry.DryRun = true
	rep, err := Run(ctx, dry, sess, func(l string) { t.Log(l) })
	if err != nil || len(rep.Changes.LaunchPermissions) != 1 || rep.Changes.LaunchPermissions[0].Applied || len(launchPermissions()) != 0 {
		t.Fatalf("dry run: %v %+v %v", err, rep.Changes, launchPermissions())
	}
	rep, err = Run(ctx, opts, sess, func(l string) { t.Log(l) })
	if err != nil || !rep.OK || strings.Join(launchPermissions(), ",") != target {
		t.Fatalf("run: %v ok=%v %s, launch permissions %v", err, rep.OK, codesOf(rep), launchPermissions())
	}
	if rep, err = Run(ctx, opts, sess, nil); err != nil || rep.Changes.Count() != 0 {
		t.Fatalf("second run: %v %+v", err, rep.Changes)
	}

	// The key path, on a moto key: read, plan, patch (read back), grant
	// (from the source) and evaluate again; then nothing is left to do.
	key, err := kms.NewFromConfig(src).CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	opts.GrantFrom = GrantFromSource
	r := newRun(opts, sess, func(l string) { t.Log(l) })
	ks := &keyState{region: "us-east-1", key: keypolicy.Key{ARN: aws.ToString(key.KeyMetadata.Arn)}}
	if err := r.readKey(ctx, ks); err != nil || ks.key.Manager != "CUSTOMER" || ks.key.State != "Enabled" || ks.key.Policy == nil {
		t.Fatalf("read key: %v %+v", err, ks.key)
	}
	original := ks.policyText
	ks.targets = r.keyTargets("us-east-1")
	if err := ks.replan(ks.key.Policy); err != nil || !ks.plan.Changed || len(ks.plan.Grants) != 1 {
		t.Fatalf("plan: %v %+v", err, ks.plan)
	}
	if err := r.patchKey(ctx, ks); err != nil {
		t.Fatalf("patch: %v", err)
	}
	if err := r.grantKey(ctx, ks); err != nil {
		t.Fatalf("grant: %v", err)
	}
	policy, err := kms.NewFromConfig(src).GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: key.KeyMetadata.KeyId, PolicyName: aws.String("default")})
	if err != nil || !strings.Contains(aws.ToString(policy.Policy), keypolicy.SidUseKey) || !strings.HasPrefix(aws.ToString(policy.Policy), kept(original)) {
		t.Fatalf("patched policy (%v):\n%s", err, aws.ToString(policy.Policy))
	}
	if v := keypolicy.Check(ks.key, ks.targets); !v.OK {
		t.Fatalf("after patch and grant: %+v", v)
	}
	again := &keyState{region: "us-east-1", key: keypolicy.Key{ARN: ks.key.ARN}, targets: ks.targets}
	if err := r.readKey(ctx, again); err != nil {
		t.Fatal(err)
	}
	if err := again.replan(again.key.Policy); err != nil || again.plan.Changed || len(again.plan.Grants) != 0 {
		t.Fatalf("a second plan should be empty: %v %+v", err, again.plan)
	}
	if g := again.key.Grants; len(g) != 1 || g[0].Name != keypolicy.GrantName(asgRole(target, "")) {
		t.Fatalf("grants in moto: %+v", g)
	}

}

// kept is what a patch keeps of a policy byte for byte: everything up to
// the end of its last statement.
func kept(policy string) string {
	return strings.TrimRight(policy[:strings.LastIndex(policy, "]")], " \n")
}

// motoState is what a user would read back through the SDK: the image's
// launch permissions, the key policy and the key's grants.
type motoState struct {
	launch []string
	policy string
	grants []string // "name grantee operations id", sorted
}

func readMotoState(t *testing.T, ec2c *ec2.Client, kc *kms.Client, ami, keyID string) motoState {
	t.Helper()
	ctx := context.Background()
	var st motoState
	attr, err := ec2c.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(ami), Attribute: ec2types.ImageAttributeNameLaunchPermission})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range attr.LaunchPermissions {
		st.launch = append(st.launch, aws.ToString(p.UserId)+string(p.Group)+aws.ToString(p.OrganizationArn)+aws.ToString(p.OrganizationalUnitArn))
	}
	sort.Strings(st.launch)
	pol, err := kc.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(keyID), PolicyName: aws.String("default")})
	if err != nil {
		t.Fatal(err)
	}
	st.policy = aws.ToString(pol.Policy)
	grants, err := kc.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(keyID)})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range grants.Grants {
		st.grants = append(st.grants, strings.Join([]string{aws.ToString(g.Name), aws.ToString(g.GranteePrincipal), grantOps(g.Operations), aws.ToString(g.GrantId)}, " "))
	}
	sort.Strings(st.grants)
	return st
}

func grantOps(ops []kmstypes.GrantOperation) string {
	s := make([]string, len(ops))
	for i, op := range ops {
		s[i] = string(op)
	}
	return sortedList(s)
}

func sortedList(s []string) string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return strings.Join(s, ",")
}

// snapshotSwap is a reverse proxy to moto that, in DescribeImages answers
// only, replaces the snapshot moto made up for a registered image with the
// one it was registered with (see the table above). Everything else passes
// unchanged.
type snapshotSwap struct {
	from, to string
	mu       sync.Mutex
	swapped  int
	problem  error
}

func (s *snapshotSwap) start(t *testing.T, motoURL string) string {
	t.Helper()
	u, err := url.Parse(motoURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		ModifyResponse: func(resp *http.Response) error {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if bytes.Contains(body, []byte("<DescribeImagesResponse")) {
				s.mu.Lock()
				if resp.Header.Get("Content-Encoding") != "" {
					s.problem = fmt.Errorf("DescribeImages answer encoded %q", resp.Header.Get("Content-Encoding"))
				}
				old := []byte("<snapshotId>" + s.from + "</snapshotId>")
				if n := bytes.Count(body, old); n > 0 {
					s.swapped += n
					body = bytes.ReplaceAll(body, old, []byte("<snapshotId>"+s.to+"</snapshotId>"))
				}
				s.mu.Unlock()
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			return nil
		},
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv.URL
}

func (s *snapshotSwap) count(t *testing.T) int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.problem != nil {
		t.Fatal(s.problem)
	}
	return s.swapped
}

// TestGateRunEncryptedAgainstMoto runs the gate on an AMI whose snapshot is
// encrypted with a customer managed moto key, for one target without a
// role: patch the key policy, grant from the source. A dry run first must
// leave moto as it was; the run must leave what a user checks with the SDK;
// a second run must change nothing.
func TestGateRunEncryptedAgainstMoto(t *testing.T) {
	motoURL := motoserver.Start(t)
	ctx := context.Background()

	// The world, made directly in moto.
	direct := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(motoURL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIAMOTOSOURCE", "x", "")}
	ec2c, kc := ec2.NewFromConfig(direct), kms.NewFromConfig(direct)
	key, err := kc.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("golden-ami")})
	if err != nil {
		t.Fatal(err)
	}
	keyARN, keyID := aws.ToString(key.KeyMetadata.Arn), aws.ToString(key.KeyMetadata.KeyId)
	parsedKey, err := keypolicy.ParseKeyARN(keyARN)
	if err != nil {
		t.Fatal(err)
	}
	source := parsedKey.Account
	vol, err := ec2c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(8), Encrypted: aws.Bool(true), KmsKeyId: aws.String(keyARN)})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ec2c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := ec2c.CopySnapshot(ctx, &ec2.CopySnapshotInput{SourceSnapshotId: raw.SnapshotId, SourceRegion: aws.String("us-east-1"), Encrypted: aws.Bool(true), KmsKeyId: aws.String(keyARN)})
	if err != nil {
		t.Fatal(err)
	}
	encSnap := aws.ToString(enc.SnapshotId)
	snaps, err := ec2c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{encSnap}})
	if err != nil || len(snaps.Snapshots) != 1 || !aws.ToBool(snaps.Snapshots[0].Encrypted) || aws.ToString(snaps.Snapshots[0].KmsKeyId) != keyARN {
		t.Fatalf("the copied snapshot should be encrypted with %s: %v %+v", keyARN, err, snaps)
	}
	img, err := ec2c.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("golden"), RootDeviceName: aws.String("/dev/xvda"),
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &ec2types.EbsBlockDevice{SnapshotId: aws.String(encSnap)}}}})
	if err != nil {
		t.Fatal(err)
	}
	ami := aws.ToString(img.ImageId)
	imgs, err := ec2c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{ami}})
	if err != nil || len(imgs.Images) != 1 || len(imgs.Images[0].BlockDeviceMappings) != 1 || imgs.Images[0].BlockDeviceMappings[0].Ebs == nil {
		t.Fatalf("DescribeImages: %v %+v", err, imgs)
	}
	swap := &snapshotSwap{from: aws.ToString(imgs.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId), to: encSnap}
	if swap.from == encSnap {
		t.Log("moto kept the registered snapshot: the proxy has nothing to swap (update the table)")
	}
	gateURL := swap.start(t, motoURL)

	sessions := func() *awsapi.Session {
		sess, err := awsapi.New(ctx, awsapi.Settings{Region: "us-east-1", AccessKey: "AKIAMOTOSOURCE", SecretKey: "x", Endpoint: gateURL, RetryMaxBackoff: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return sess
	}
	opts := baseOptions(map[string]string{"us-east-1": ami}, Target{AccountID: target})
	opts.GrantFrom = GrantFromSource
	role := asgRole(target, "")
	mutating := []string{"ec2:ModifyImageAttribute", "ec2:ModifySnapshotAttribute", "kms:PutKeyPolicy", "kms:CreateGrant"}
	mutations := func(rep *Report) []string {
		var out []string
		for _, c := range mutating {
			if rep.APICalls[c] > 0 {
				out = append(out, fmt.Sprintf("%s×%d", c, rep.APICalls[c]))
			}
		}
		return out
	}
	// What the gate saw of the image and its key.
	checkInspected := func(name string, rep *Report) {
		t.Helper()
		if len(rep.Images) != 1 || len(rep.Images[0].Snapshots) != 1 {
			t.Fatalf("%s: images %+v", name, rep.Images)
		}
		if sn := rep.Images[0].Snapshots[0]; sn.ID != encSnap || !sn.Encrypted || sn.Key != keyARN {
			t.Errorf("%s: snapshot %+v, want %s encrypted with %s", name, sn, encSnap, keyARN)
		}
		if len(rep.Keys) != 1 || rep.Keys[0].ARN != keyARN || rep.Keys[0].Manager != "CUSTOMER" || rep.Keys[0].State != "Enabled" {
			t.Errorf("%s: keys %+v", name, rep.Keys)
		}
	}

	before := readMotoState(t, ec2c, kc, ami, keyID)
	if len(before.launch) != 0 || len(before.grants) != 0 {
		t.Fatalf("a new image and key: %+v", before)
	}

	// A dry run plans every change and makes none. moto's caller is an IAM
	// user and moto has no policy simulator, so the dry run cannot tell
	// whether that user may patch the key policy and create the grant: it
	// says so, and is not green.
	dry := opts
	dry.DryRun = true
	rep, err := Run(ctx, dry, sessions(), func(l string) { t.Log(l) })
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	checkInspected("dry run", rep)
	c := rep.Changes
	if !rep.DryRun || rep.OK || codesOf(rep) != "DRY_RUN_UNVERIFIED,111122223333/asg:DRY_RUN_UNVERIFIED" || len(c.LaunchPermissions) != 1 || len(c.KeyPolicies) != 1 || len(c.Grants) != 1 || len(c.SnapshotPermissions) != 0 {
		t.Fatalf("dry run: ok=%v %s, changes %+v; want only DRY_RUN_UNVERIFIED", rep.OK, codesOf(rep), c)
	}
	if c.LaunchPermissions[0].Applied || c.KeyPolicies[0].Applied || c.Grants[0].Applied || c.Grants[0].Grantee != role {
		t.Errorf("dry run changes: %+v", c)
	}
	if m := mutations(rep); len(m) != 0 {
		t.Errorf("dry run made %v", m)
	}
	if after := readMotoState(t, ec2c, kc, ami, keyID); !reflect.DeepEqual(after, before) {
		t.Fatalf("the dry run changed moto:\nbefore %+v\nafter  %+v", before, after)
	}

	// The run.
	rep, err = Run(ctx, opts, sessions(), func(l string) { t.Log(l) })
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkInspected("run", rep)
	c = rep.Changes
	if !rep.OK || len(c.LaunchPermissions) != 1 || len(c.KeyPolicies) != 1 || len(c.Grants) != 1 || len(c.SnapshotPermissions) != 0 {
		t.Fatalf("run: ok=%v %s, changes %+v", rep.OK, codesOf(rep), c)
	}
	grant := c.Grants[0]
	if !c.LaunchPermissions[0].Applied || !c.KeyPolicies[0].Applied || !grant.Applied || grant.GrantID == "" || grant.From != GrantFromSource ||
		grant.Grantee != role || grant.Name != keypolicy.GrantName(role) || grant.Key != keyARN {
		t.Errorf("run changes: %+v", c)
	}
	for _, tr := range rep.Targets {
		if tr.Account != target || !tr.OK || len(tr.Paths) == 0 {
			t.Errorf("target report: %+v", tr)
		}
	}

	// What a user checks through the SDK, directly against moto.
	after := readMotoState(t, ec2c, kc, ami, keyID)
	if strings.Join(after.launch, ",") != target {
		t.Errorf("launch permissions: %v, want %s", after.launch, target)
	}
	var orig, patched struct {
		Statement []map[string]any
	}
	if err := json.Unmarshal([]byte(before.policy), &orig); err != nil || len(orig.Statement) == 0 {
		t.Fatalf("original policy (%v):\n%s", err, before.policy)
	}
	if err := json.Unmarshal([]byte(after.policy), &patched); err != nil {
		t.Fatalf("patched policy (%v):\n%s", err, after.policy)
	}
	var sids []string
	for _, st := range patched.Statement {
		if sid, _ := st["Sid"].(string); strings.HasPrefix(sid, "amigate") {
			sids = append(sids, sid)
		}
	}
	sort.Strings(sids)
	if want := sortedKeys(c.KeyPolicies[0].Added); len(sids) == 0 || !reflect.DeepEqual(sids, want) || !contains(sids, keypolicy.SidUseKey) {
		t.Errorf("amigate statements in moto's policy: %v, the report added %v\n%s", sids, want, after.policy)
	}
	for _, o := range orig.Statement {
		found := false
		for _, p := range patched.Statement {
			found = found || reflect.DeepEqual(o, p)
		}
		if !found {
			t.Errorf("the original statement %v is gone:\n%s", o, after.policy)
		}
	}
	if !strings.Contains(after.policy, "arn:aws:iam::"+source+":root") || after.policy != c.KeyPolicies[0].After {
		t.Errorf("moto's policy is not the one the report says was written:\n%s\nreport:\n%s", after.policy, c.KeyPolicies[0].After)
	}
	if want := strings.Join([]string{grant.Name, role, sortedList(grant.Operations), grant.GrantID}, " "); len(after.grants) != 1 || after.grants[0] != want {
		t.Errorf("grants in moto: %q, want [%q]", after.grants, want)
	}

	// A second run finds nothing to do, and moto stays as it is.
	rep, err = Run(ctx, opts, sessions(), func(l string) { t.Log(l) })
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	checkInspected("second run", rep)
	if !rep.OK || rep.Changes.Count() != 0 {
		t.Errorf("second run: ok=%v %s, %d change(s): %+v", rep.OK, codesOf(rep), rep.Changes.Count(), rep.Changes)
	}
	if m := mutations(rep); len(m) != 0 {
		t.Errorf("second run made %v", m)
	}
	if again := readMotoState(t, ec2c, kc, ami, keyID); !reflect.DeepEqual(again, after) {
		t.Errorf("the second run changed moto:\nbefore %+v\nafter  %+v", after, again)
	}
	if swap.count(t) == 0 {
		t.Error("the proxy swapped no snapshot: the gate did not read the image through it")
	}
}
