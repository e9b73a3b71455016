package trail

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/trail/trailtest"
)

func encode(t *testing.T, ev map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRecord(t *testing.T) {
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	d, ok, err := ParseRecord(encode(t, trailtest.AutoScalingDenial("e1", at)))
	if err != nil || !ok {
		t.Fatalf("the write-up's denial: ok=%v err=%v", ok, err)
	}
	want := Denial{Time: at, EventID: "e1", Account: trailtest.Target, Region: "us-east-1",
		Principal: "arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAutoScaling/AutoScaling",
		Role:      "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
		InvokedBy: "autoscaling.amazonaws.com", Action: "kms:CreateGrant", Key: trailtest.Key, ErrorCode: "AccessDenied"}
	d.ErrorMessage = ""
	if d != want {
		t.Fatalf("got  %+v\nwant %+v", d, want)
	}

	ok200 := trailtest.AutoScalingDenial("e2", at)
	delete(ok200, "errorCode")
	if _, ok, _ := ParseRecord(encode(t, ok200)); ok {
		t.Error("a successful KMS call is not a denial")
	}
	lambda := trailtest.AutoScalingDenial("e3", at)
	lambda["userIdentity"] = map[string]any{"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/reporting/fn", "accountId": "111122223333"}
	lambda["sourceIPAddress"] = "10.0.0.1"
	lambda["requestParameters"] = map[string]any{"keyId": trailtest.Key}
	if _, ok, _ := ParseRecord(encode(t, lambda)); ok {
		t.Error("a denial outside a launch is not reported")
	}
	ebs := trailtest.AutoScalingDenial("e4", at)
	ebs["userIdentity"] = map[string]any{"type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"}
	ebs["sourceIPAddress"], ebs["eventName"] = "203.0.113.9", "Decrypt"
	ebs["requestParameters"] = map[string]any{"keyId": trailtest.Key, "encryptionContext": map[string]string{"aws:ebs:id": "vol-0123"}}
	if d, ok, _ := ParseRecord(encode(t, ebs)); !ok || d.Action != "kms:Decrypt" || d.Role != "" {
		t.Errorf("an EBS volume's denial: ok=%v %+v", ok, d)
	}
}

// Denials are grouped by role and key, counted once per event, and the fix
// fits the principal: a grant for Auto Scaling's role, a key-policy
// statement through EC2 for the account.
func TestGrouper(t *testing.T) {
	g := NewGrouper()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for i, id := range []string{"a", "b", "a"} {
		d, _, _ := ParseRecord(encode(t, trailtest.AutoScalingDenial(id, at.Add(time.Duration(i)*time.Minute))))
		g.Add(d)
	}
	g.Add(Denial{EventID: "c", Account: trailtest.Target, Region: "us-east-1", Principal: "arn:aws:iam::111122223333:root", Action: "kms:Decrypt", Key: trailtest.Key, Time: at})
	g.Add(Denial{EventID: "d", Account: trailtest.Target, Region: "us-east-1", Principal: "arn:aws:iam::111122223333:root", Action: "kms:CreateGrant", Key: trailtest.Key, Time: at})
	found := g.Findings()
	if len(found) != 2 {
		t.Fatalf("%d groups: %+v", len(found), found)
	}
	asg, root := found[0], found[1]
	if !strings.Contains(asg.Principal, "assumed-role/AWSServiceRoleForAutoScaling") {
		asg, root = root, asg
	}
	if asg.Count != 2 || !asg.First.Equal(at) || !strings.HasPrefix(asg.Fix, "aws kms create-grant") || !strings.Contains(asg.Fix, "--grantee-principal "+asg.Role) {
		t.Errorf("auto scaling group: %+v", asg)
	}
	if root.Count != 2 || strings.Join(root.Actions, ",") != "kms:CreateGrant,kms:Decrypt" ||
		!strings.Contains(root.Fix, `"kms:ViaService":"ec2.us-east-1.amazonaws.com"`) || !strings.Contains(root.Fix, `"kms:GrantIsForAWSResource":"true"`) {
		t.Errorf("root group: %+v", root)
	}
}

func writeGzip(t *testing.T, name string, data []byte) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	zw.Close()
	if err := os.WriteFile(name, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Offline: a tree of gzipped and plain files, an empty one among them; a
// corrupt, a truncated or a foreign file is an error naming it.
func TestScanPaths(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	var want int
	for i, sub := range []string{"a", "a/b", "c"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		n, err := trailtest.WriteLog(&buf, 200, 50, time.Date(2026, 11, 1, i, 0, 0, 0, time.UTC), r)
		if err != nil {
			t.Fatal(err)
		}
		want += n
		if i == 1 {
			os.WriteFile(filepath.Join(dir, sub, "log.json"), buf.Bytes(), 0o644)
		} else {
			writeGzip(t, filepath.Join(dir, sub, "log.json.gz"), buf.Bytes())
		}
	}
	os.WriteFile(filepath.Join(dir, "c", "empty.json"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "c", "notes.txt"), []byte("not a log"), 0o644)
	g := NewGrouper()
	got := 0
	if err := ScanPaths(context.Background(), []string{dir}, func(_ string, d Denial) error { got++; g.Add(d); return nil }); err != nil {
		t.Fatal(err)
	}
	if got != want || want == 0 || len(g.Findings()) != 1 || g.Findings()[0].Count != want {
		t.Fatalf("%d denials, want %d; %+v", got, want, g.Findings())
	}

	var buf bytes.Buffer
	trailtest.WriteLog(&buf, 20, 5, time.Now(), r)
	full := buf.Bytes()
	for name, data := range map[string][]byte{
		"truncated.json":  full[:len(full)/2],
		"corrupt.json.gz": append([]byte{0x1f, 0x8b, 8, 0}, bytes.Repeat([]byte{0xff}, 64)...),
		"foreign.json":    []byte(`["not", "cloudtrail"]`),
		"text.json":       []byte("hello"),
	} {
		bad := filepath.Join(t.TempDir(), name)
		os.WriteFile(bad, data, 0o644)
		err := ScanPaths(context.Background(), []string{bad}, func(string, Denial) error { return nil })
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: err = %v, want one naming the file", name, err)
		}
	}
	half := filepath.Join(t.TempDir(), "half.json.gz")
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(full)
	zw.Close()
	os.WriteFile(half, z.Bytes()[:z.Len()/2], 0o644)
	if err := ScanPaths(context.Background(), []string{half}, func(string, Denial) error { return nil }); err == nil || !strings.Contains(err.Error(), half) {
		t.Errorf("truncated gzip: %v", err)
	}
}

// Braces and quotes inside values do not split records.
func TestRecordsWithTrickyStrings(t *testing.T) {
	doc := `{"Records":[{"a":"}{\"x\\"},{"b":"]"}], "other": {"c": [1, {"d": 2}]}}`
	var got []string
	err := records(bufioReader(doc), func(rec []byte) error { got = append(got, string(rec)); return nil })
	if err != nil || len(got) != 2 || got[0] != `{"a":"}{\"x\\"}` || got[1] != `{"b":"]"}` {
		t.Fatalf("%v %q", err, got)
	}
}

// BenchmarkScanGzip reports the offline scan's speed over generated log
// files (uncompressed MB/s).
func BenchmarkScanGzip(b *testing.B) {
	var plain bytes.Buffer
	trailtest.WriteLog(&plain, 20000, 1000, time.Now(), rand.New(rand.NewPCG(3, 4)))
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(plain.Bytes())
	zw.Close()
	b.SetBytes(int64(plain.Len()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		if err := Scan(bytes.NewReader(z.Bytes()), func(Denial) error { n++; return nil }); err != nil || n != 20 {
			b.Fatalf("%v, %d denials", err, n)
		}
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
