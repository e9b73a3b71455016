package trail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amigate/packer-plugin-amigate/internal/awsim/simtest"
	"github.com/amigate/packer-plugin-amigate/internal/trail/trailtest"
)

const (
	target   = trailtest.Target
	asgRole  = "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
	asgSess  = "arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAutoScaling/AutoScaling"
	rootARN  = "arn:aws:iam::111122223333:root"
	simOwner = "444455556666"
)

func encode(t *testing.T, ev map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// simulatedDenials makes the simulated AWS refuse two launches in the
// target, as AWS does: the first write-up's Auto Scaling group (its
// service-linked role has no grant), then a RunInstances after the key
// owner removed the target from the key policy. It returns the KMS events
// the target's CloudTrail recorded, as LookupEvents gives them, and a
// CloudTrail client of the target.
func simulatedDenials(t *testing.T) ([]string, string, *cloudtrail.Client) {
	t.Helper()
	s := simtest.ExampleWorld(t)
	s.SetRetryBackoff(0)
	url := simtest.Serve(t, s)
	ctx := context.Background()
	cfg := func(account string) aws.Config {
		return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: credentials.NewStaticCredentialsProvider("SIM"+account, "x", "")}
	}
	images, err := ec2.NewFromConfig(cfg(simOwner)).DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil || len(images.Images) != 1 {
		t.Fatalf("golden image: %v", err)
	}
	ami := images.Images[0].ImageId
	key, err := kms.NewFromConfig(cfg(simOwner)).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/golden-ami")})
	if err != nil {
		t.Fatal(err)
	}
	keyARN := aws.ToString(key.KeyMetadata.Arn)

	lt, err := ec2.NewFromConfig(cfg(target)).CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("trail"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: ami, InstanceType: ec2types.InstanceTypeT3Micro}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := autoscaling.NewFromConfig(cfg(target)).CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("trail"), MinSize: aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(1),
		AvailabilityZones: []string{"us-east-1a"}, LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId},
	}); err != nil {
		t.Fatal(err)
	}
	ownerOnly := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"}]}`
	if _, err := kms.NewFromConfig(cfg(simOwner)).PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(keyARN), PolicyName: aws.String("default"), Policy: aws.String(ownerOnly)}); err != nil {
		t.Fatal(err)
	}
	// AWS accepts the call and the instance terminates; either way the
	// denial is in CloudTrail.
	_, _ = ec2.NewFromConfig(cfg(target)).RunInstances(ctx, &ec2.RunInstancesInput{ImageId: ami, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})

	ct := cloudtrail.NewFromConfig(cfg(target))
	out, err := ct.LookupEvents(ctx, &cloudtrail.LookupEventsInput{LookupAttributes: []cttypes.LookupAttribute{
		{AttributeKey: cttypes.LookupAttributeKeyEventSource, AttributeValue: aws.String("kms.amazonaws.com")}}})
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, e := range out.Events {
		docs = append(docs, aws.ToString(e.CloudTrailEvent))
	}
	return docs, keyARN, ct
}

// ParseRecord on the events the simulated AWS writes for failed launches,
// and on real-world shapes it must ignore or accept.
func TestParseRecord(t *testing.T) {
	docs, keyARN, _ := simulatedDenials(t)
	var got []Denial
	for _, doc := range docs {
		d, ok, err := ParseRecord([]byte(doc))
		if err != nil || !ok {
			t.Fatalf("a launch's denial: ok=%v err=%v\n%s", ok, err, doc)
		}
		got = append(got, d)
	}
	if len(got) != 2 {
		t.Fatalf("%d denials in the target's CloudTrail, want the group's and the instance's: %q", len(got), docs)
	}
	byRole := map[string]Denial{}
	for _, d := range got {
		if d.EventID == "" || d.Time.IsZero() || d.Region != "us-east-1" || d.Account != target || d.Key != keyARN || d.ErrorCode != "AccessDenied" {
			t.Errorf("denial: %+v", d)
		}
		byRole[d.Role] = d
	}
	if d := byRole[asgRole]; d.Principal != asgSess || d.InvokedBy != "autoscaling.amazonaws.com" || d.Action != "kms:CreateGrant" {
		t.Errorf("the Auto Scaling role's denial: %+v", d)
	}
	if d := byRole[""]; d.Principal != rootARN || d.InvokedBy != "ec2.amazonaws.com" || !strings.HasPrefix(d.Action, "kms:") {
		t.Errorf("the instance launch's denial: %+v", d)
	}

	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		edit   func(map[string]any)
		ok     bool
		action string
	}{
		"the write-up's event": {func(map[string]any) {}, true, "kms:CreateGrant"},
		"a successful call":    {func(ev map[string]any) { delete(ev, "errorCode"); delete(ev, "errorMessage") }, false, ""},
		"another service's denial": {func(ev map[string]any) {
			ev["eventSource"], ev["eventName"] = "s3.amazonaws.com", "GetObject"
		}, false, ""},
		"an application's denial": {func(ev map[string]any) {
			ev["userIdentity"] = map[string]any{"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/reporting/fn", "accountId": target}
			ev["sourceIPAddress"], ev["errorCode"] = "10.0.0.1", "AccessDeniedException"
			ev["requestParameters"] = map[string]any{"keyId": trailtest.Key, "encryptionContext": map[string]string{"app": "reports"}}
		}, false, ""},
		"a volume's Decrypt from the user's address": {func(ev map[string]any) {
			ev["userIdentity"] = map[string]any{"type": "Root", "arn": rootARN, "accountId": target}
			ev["sourceIPAddress"], ev["eventName"] = "203.0.113.9", "Decrypt"
			ev["requestParameters"] = map[string]any{"keyId": trailtest.Key, "encryptionContext": map[string]string{"aws:ebs:id": "vol-0123"}}
		}, true, "kms:Decrypt"},
		"a disabled key":   {func(ev map[string]any) { ev["errorCode"] = "DisabledException" }, true, "kms:CreateGrant"},
		"a throttled call": {func(ev map[string]any) { ev["errorCode"] = "ThrottlingException" }, false, ""},
	} {
		d, ok, err := ParseRecord(encode(t, edit(trailtest.AutoScalingDenial("e1", at), tc.edit)))
		if err != nil || ok != tc.ok || (ok && d.Action != tc.action) {
			t.Errorf("%s: ok=%v err=%v %+v", name, ok, err, d)
		}
	}
	if _, _, err := ParseRecord([]byte(`{"eventSource": 3`)); err == nil {
		t.Error("a broken record is an error")
	}
}

func edit(ev map[string]any, f func(map[string]any)) map[string]any { f(ev); return ev }

// Online: Lookup reads the simulated target's CloudTrail with the SDK
// client and groups the two denials with their fixes.
func TestLookupSimulated(t *testing.T) {
	_, keyARN, ct := simulatedDenials(t)
	time.Sleep(time.Second) // the simulator allows 2 LookupEvents a second, as CloudTrail does
	g := NewGrouper()
	if err := Lookup(context.Background(), ct, time.Now().Add(-time.Hour), time.Now().Add(time.Minute), func(d Denial) error { g.Add(d); return nil }); err != nil {
		t.Fatal(err)
	}
	found := g.Findings()
	if len(found) != 2 {
		t.Fatalf("%d findings: %+v", len(found), found)
	}
	for _, f := range found {
		switch f.Role {
		case asgRole:
			if !strings.HasPrefix(f.Fix, "aws kms create-grant --region us-east-1 --key-id "+keyARN+" --grantee-principal "+asgRole) ||
				!strings.Contains(f.Message, "only through a grant") {
				t.Errorf("the group's finding: %+v", f)
			}
		case "":
			if f.Principal != rootARN || !strings.Contains(f.Fix, `"Sid":"amigateCreateGrantForEC2"`) || !strings.Contains(f.Fix, "in account "+simOwner) {
				t.Errorf("the instance's finding: %+v", f)
			}
		default:
			t.Errorf("unexpected finding: %+v", f)
		}
	}
}

// fakeTrail serves LookupEvents pages and records when it was called.
type fakeTrail struct {
	mu    sync.Mutex
	pages [][]cttypes.Event
	calls []time.Time
	err   error
}

func (f *fakeTrail) LookupEvents(_ context.Context, in *cloudtrail.LookupEventsInput, _ ...func(*cloudtrail.Options)) (*cloudtrail.LookupEventsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, time.Now())
	if f.err != nil {
		return nil, f.err
	}
	if len(in.LookupAttributes) != 1 || in.LookupAttributes[0].AttributeKey != cttypes.LookupAttributeKeyEventSource ||
		aws.ToString(in.LookupAttributes[0].AttributeValue) != "kms.amazonaws.com" || in.StartTime == nil || in.EndTime == nil {
		return nil, fmt.Errorf("unexpected input %+v", in)
	}
	i := 0
	if in.NextToken != nil {
		fmt.Sscan(*in.NextToken, &i)
	}
	out := &cloudtrail.LookupEventsOutput{Events: f.pages[i]}
	if i+1 < len(f.pages) {
		out.NextToken = aws.String(fmt.Sprint(i + 1))
	}
	return out, nil
}

// Lookup follows the pages at no more than 2 calls a second, and stops on
// a cancel or an error.
func TestLookupPagesAndRate(t *testing.T) {
	at := time.Now().Add(-time.Minute)
	event := func(id string) cttypes.Event {
		b, _ := json.Marshal(trailtest.AutoScalingDenial(id, at))
		return cttypes.Event{EventId: aws.String(id), CloudTrailEvent: aws.String(string(b))}
	}
	ok, _ := json.Marshal(edit(trailtest.AutoScalingDenial("ok", at), func(ev map[string]any) { delete(ev, "errorCode") }))
	f := &fakeTrail{pages: [][]cttypes.Event{{event("a"), {EventId: aws.String("ok"), CloudTrailEvent: aws.String(string(ok))}}, {event("b")}, {event("c")}}}
	var ids []string
	if err := Lookup(context.Background(), f, at.Add(-time.Hour), time.Now(), func(d Denial) error { ids = append(ids, d.EventID); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, ",") != "a,b,c" || len(f.calls) != 3 {
		t.Fatalf("denials %v in %d calls", ids, len(f.calls))
	}
	for i := 1; i < len(f.calls); i++ {
		if gap := f.calls[i].Sub(f.calls[i-1]); gap < 490*time.Millisecond {
			t.Errorf("call %d came %v after the previous one: more than 2 a second", i, gap)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	f.calls = nil
	err := Lookup(ctx, f, at.Add(-time.Hour), time.Now(), func(Denial) error { cancel(); return nil })
	if !errors.Is(err, context.Canceled) || len(f.calls) != 1 {
		t.Errorf("cancelled: %v after %d calls", err, len(f.calls))
	}
	f.err = errors.New("AccessDeniedException: not authorized to perform cloudtrail:LookupEvents")
	if err := Lookup(context.Background(), f, at, time.Now(), func(Denial) error { return nil }); err == nil || !strings.Contains(err.Error(), "look up KMS events") {
		t.Errorf("an AWS error: %v", err)
	}
}

// Denials are grouped by role and key; the fix fits the cause: a grant for
// Auto Scaling's role, the identity policy when KMS blames it, the key's
// state, or the key-policy statements amigate's patch adds.
func TestGrouper(t *testing.T) {
	g := NewGrouper()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for i, id := range []string{"a", "b", "c"} {
		d, _, _ := ParseRecord(encode(t, trailtest.AutoScalingDenial(id, at.Add(time.Duration(i)*time.Minute))))
		g.Add(d)
	}
	base := Denial{Account: target, Region: "us-east-1", Key: trailtest.Key, Time: at, ErrorCode: "AccessDenied", InvokedBy: "ec2.amazonaws.com"}
	with := func(f func(*Denial)) Denial { d := base; f(&d); return d }
	g.Add(with(func(d *Denial) { d.Principal, d.Action = rootARN, "kms:Decrypt" }))
	g.Add(with(func(d *Denial) { d.Principal, d.Action, d.Time = rootARN, "kms:CreateGrant", at.Add(-time.Hour) }))
	g.Add(with(func(d *Denial) {
		d.Principal, d.Role, d.Action = "arn:aws:sts::111122223333:assumed-role/deployer/ci", "arn:aws:iam::111122223333:role/deployer", "kms:CreateGrant"
		d.ErrorMessage = "User: arn:aws:sts::111122223333:assumed-role/deployer/ci is not authorized to perform: kms:CreateGrant on resource: " + trailtest.Key + " because no identity-based policy allows the kms:CreateGrant action"
	}))
	disabledKey := strings.Replace(trailtest.Key, "12ee9c11", "0000aaaa", 1)
	g.Add(with(func(d *Denial) {
		d.Principal, d.Action, d.Key, d.ErrorCode = rootARN, "kms:Decrypt", disabledKey, "KMSInvalidStateException"
		d.ErrorMessage = disabledKey + " is pending deletion."
	}))
	found := g.Findings()
	if len(found) != 4 {
		t.Fatalf("%d groups: %+v", len(found), found)
	}
	by := map[string]Finding{}
	for _, f := range found {
		by[who(f.Principal, f.Role)+" "+f.Key] = f
	}
	if f := by[asgRole+" "+trailtest.Key]; f.Count != 3 || !f.First.Equal(at) || !f.Last.Equal(at.Add(2*time.Minute)) || f.Principal != asgSess ||
		!strings.HasPrefix(f.Fix, "aws kms create-grant --region us-east-1 --key-id "+trailtest.Key+" --grantee-principal "+asgRole) {
		t.Errorf("the Auto Scaling role: %+v", f)
	}
	if f := by[rootARN+" "+trailtest.Key]; f.Count != 2 || strings.Join(f.Actions, ",") != "kms:CreateGrant,kms:Decrypt" || !f.First.Equal(at.Add(-time.Hour)) ||
		!strings.Contains(f.Fix, `"Condition":{"StringEquals":{"kms:ViaService":["ec2.us-east-1.amazonaws.com"]}}`) ||
		!strings.Contains(f.Fix, `"Condition":{"Bool":{"kms:GrantIsForAWSResource":["true"]}}`) ||
		!strings.Contains(f.Fix, `"Principal":{"AWS":["arn:aws:iam::111122223333:root"]}`) || !strings.Contains(f.Fix, "in account 444455556666") {
		t.Errorf("the account root: %+v", f)
	}
	if f := by["arn:aws:iam::111122223333:role/deployer "+trailtest.Key]; !strings.Contains(f.Fix, "identity policy of arn:aws:iam::111122223333:role/deployer") ||
		!strings.Contains(f.Fix, `"Action":["kms:CreateGrant"]`) {
		t.Errorf("the identity-policy denial: %+v", f)
	}
	if f := by[rootARN+" "+disabledKey]; !strings.Contains(f.Fix, "aws kms cancel-key-deletion --key-id "+disabledKey) || strings.Join(f.ErrorCodes, ",") != "KMSInvalidStateException" {
		t.Errorf("the key pending deletion: %+v", f)
	}
	if got := Group([]Denial{base, base}); len(got) != 1 || got[0].Count != 2 {
		t.Errorf("Group: %+v", got)
	}
}

func logBytes(t testing.TB, n, every int, seed uint64) ([]byte, int) {
	t.Helper()
	var buf bytes.Buffer
	denials, err := trailtest.WriteLog(&buf, n, every, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), rand.New(rand.NewPCG(seed, seed)))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), denials
}

// Offline: a tree as CloudTrail writes it to S3, gzipped and plain files,
// an empty one, files that are not logs; a path given twice is read once.
func TestScanPaths(t *testing.T) {
	dir := t.TempDir()
	want := 0
	for i, name := range []string{
		"AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/01/a.json.gz",
		"AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/02/b.json.gz",
		"AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/02/c.json",
		"exported/d.json", // gzipped, though its name does not say so
	} {
		data, n := logBytes(t, 300, 40, uint64(i))
		want += n
		if strings.HasSuffix(name, ".gz") || strings.HasPrefix(name, "exported/") {
			data = trailtest.Gzip(t, data)
		}
		trailtest.WriteFile(t, filepath.Join(dir, name), data)
	}
	trailtest.WriteFile(t, filepath.Join(dir, "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/03/empty.json"), nil)
	trailtest.WriteFile(t, filepath.Join(dir, "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/03/notes.txt"), []byte("not a log"))
	trailtest.WriteFile(t, filepath.Join(dir, "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/01/digest.json.gz"),
		trailtest.Gzip(t, []byte(`{"awsAccountId":"111122223333","logFiles":[{"s3Object":"kms.amazonaws.com"}]}`)))

	count := func(paths ...string) (int, *Grouper, error) {
		g, n := NewGrouper(), 0
		_, err := ScanPaths(context.Background(), paths, func(_ string, d Denial) error { n++; g.Add(d); return nil })
		return n, g, err
	}
	got, g, err := count(dir)
	if err != nil {
		t.Fatal(err)
	}
	found := g.Findings()
	if got != want || want == 0 || len(found) != 1 || found[0].Count != want || found[0].Role != asgRole {
		t.Fatalf("%d denials, want %d; %+v", got, want, found)
	}
	// Five log files: the digest and the text file are not read.
	if read, err := ScanPaths(context.Background(), []string{dir, filepath.Join(dir, "exported", "d.json")}, func(string, Denial) error { return nil }); err != nil || read != 5 {
		t.Errorf("read %d files, want 5 (%v)", read, err)
	}
	if got, _, err := count(dir, filepath.Join(dir, "exported", "d.json"), dir+"/"); err != nil || got != want {
		t.Errorf("overlapping paths: %d denials, want %d (%v)", got, want, err)
	}
	if _, _, err := count(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "nope")) {
		t.Errorf("a missing path: %v", err)
	}
}

// A file that is corrupt, cut short or not a CloudTrail log is an error
// naming it, whatever its neighbours.
func TestScanPathsBadFiles(t *testing.T) {
	full, _ := logBytes(t, 20, 5, 9)
	zipped := trailtest.Gzip(t, full)
	for name, data := range map[string][]byte{
		"truncated.json":       full[:len(full)/2],
		"truncated.json.gz":    zipped[:len(zipped)/2],
		"corrupt.json.gz":      append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, bytes.Repeat([]byte{0xff}, 64)...),
		"badheader.json.gz":    {0x1f, 0x8b, 0x63},
		"array.json":           []byte(`["not", "cloudtrail"]`),
		"text.json":            []byte("hello"),
		"no-records.json":      []byte(`{"awsAccountId": "111122223333"}`),
		"records-object.json":  []byte(`{"Records": {"eventSource": "kms.amazonaws.com"}}`),
		"records-strings.json": []byte(`{"Records": ["kms.amazonaws.com"]}`),
		"two-documents.json":   append(append([]byte{}, full...), full...),
		"bad-record.json":      []byte(`{"Records": [{"eventSource": "kms.amazonaws.com", "errorCode": "AccessDenied", "eventTime": 12}]}`),
	} {
		dir := t.TempDir()
		good, _ := logBytes(t, 50, 10, 1)
		trailtest.WriteFile(t, filepath.Join(dir, "a", "good.json.gz"), trailtest.Gzip(t, good))
		bad := trailtest.WriteFile(t, filepath.Join(dir, "b", name), data)
		_, err := ScanPaths(context.Background(), []string{dir}, func(string, Denial) error { return nil })
		if err == nil || !strings.HasPrefix(err.Error(), bad+": ") {
			t.Errorf("%s: err = %v, want one naming the file", name, err)
		}
	}
}

// The splitter gives the same records whatever the chunks the input
// arrives in, escapes and braces inside strings included.
func TestRecordsChunking(t *testing.T) {
	doc := `{"Records":[{"a":"}{\"x\\"},{"b":"]\\\\\"[","c":{"d":[1,{"e":"\u007d"}]}}], "other": {"c": [1, {"d": 2}]}, "x": [{"y": "Records"}]}`
	var want []string
	if err := records(strings.NewReader(doc), func(rec []byte, _ int64) error { want = append(want, string(rec)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(want) != 2 || want[0] != `{"a":"}{\"x\\"}` || want[1] != `{"b":"]\\\\\"[","c":{"d":[1,{"e":"\u007d"}]}}` {
		t.Fatalf("%q", want)
	}
	generated, _ := logBytes(t, 50, 7, 5)
	var decoded struct{ Records []json.RawMessage }
	if err := json.Unmarshal(generated, &decoded); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		doc  string
		want int
	}{{doc, 2}, {"\ufeff" + string(generated), len(decoded.Records)}} {
		for _, r := range []io.Reader{iotest.OneByteReader(strings.NewReader(tc.doc)), iotest.HalfReader(strings.NewReader(tc.doc)), strings.NewReader(tc.doc)} {
			var got []string
			if err := records(r, func(rec []byte, _ int64) error { got = append(got, string(rec)); return nil }); err != nil || len(got) != tc.want {
				t.Fatalf("%T: %v, %d records, want %d", r, err, len(got), tc.want)
			}
			for i, rec := range got {
				if !json.Valid([]byte(rec)) || (tc.want == 2 && rec != want[i]) || (tc.want > 2 && !bytes.Equal(compact(t, rec), compact(t, string(decoded.Records[i])))) {
					t.Fatalf("%T: record %d = %q", r, i, rec)
				}
			}
		}
	}
}

func compact(t *testing.T, s string) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A cancel stops a scan in the middle of a file.
func TestScanPathsCancel(t *testing.T) {
	data, _ := logBytes(t, 5000, 10, 3)
	name := trailtest.WriteFile(t, filepath.Join(t.TempDir(), "big.json"), data)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := ScanPaths(ctx, []string{name}, func(string, Denial) error { n++; cancel(); return nil })
	if !errors.Is(err, context.Canceled) || n == 0 || n > 200 {
		t.Fatalf("err %v after %d denials", err, n)
	}
}

// BenchmarkScanGzip reports the offline scan's speed over a generated log
// file: mostly S3, EC2 and STS events, some KMS calls, one launch denial
// in 1000 records (MB/s of uncompressed JSON).
func BenchmarkScanGzip(b *testing.B) {
	plain, want := logBytes(b, 20000, 1000, 3)
	zipped := trailtest.Gzip(b, plain)
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := Scan(bytes.NewReader(zipped), func(Denial) error { n++; return nil }); err != nil || n != want {
			b.Fatalf("%v, %d denials", err, n)
		}
	}
}

// FuzzRecords checks the splitter against encoding/json: on a valid
// CloudTrail document it gives exactly the records of the "Records" array,
// whatever the chunking.
func FuzzRecords(f *testing.F) {
	generated, _ := logBytes(f, 5, 2, 7)
	for _, seed := range []string{string(generated), `{"Records":[]}`, `{"Records":[{"a":"}{\"x\\"}]}`, `{"x":[{"y":1}],"Records":[{}]}`, `[1]`, `{"Records":["a"]}`, `{"Records":null}`, "\ufeff{\"Records\":[{}]}"} {
		f.Add([]byte(seed), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		var r io.Reader = bytes.NewReader(data)
		if chunk%3 == 1 {
			r = iotest.OneByteReader(r)
		} else if chunk%3 == 2 {
			r = iotest.HalfReader(r)
		}
		var got [][]byte
		err := records(r, func(rec []byte, _ int64) error { got = append(got, bytes.Clone(rec)); return nil })
		var doc map[string]json.RawMessage
		if json.Unmarshal(data, &doc) != nil || bytes.Count(data, []byte(`"Records"`)) != 1 {
			return // not a document with one unambiguous Records member
		}
		var recs []json.RawMessage
		valid := bytes.HasPrefix(doc["Records"], []byte("[")) && json.Unmarshal(doc["Records"], &recs) == nil
		for _, rec := range recs {
			valid = valid && bytes.HasPrefix(bytes.TrimSpace(rec), []byte("{"))
		}
		if !valid {
			if err == nil {
				t.Fatalf("no error on %q", data)
			}
			return
		}
		if err != nil || len(got) != len(recs) {
			t.Fatalf("%v, %d records, want %d: %q", err, len(got), len(recs), data)
		}
		for i := range recs {
			if !bytes.Equal(compact(t, string(got[i])), compact(t, string(recs[i]))) {
				t.Fatalf("record %d = %q, want %q", i, got[i], recs[i])
			}
		}
	})
}
