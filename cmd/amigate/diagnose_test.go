package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/amigate/packer-plugin-amigate/internal/trail/trailtest"
)

const diagnoseASGRole = "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"

// trailTree writes CloudTrail's S3 layout: gzipped hourly files of the
// first write-up's Auto Scaling denial among ordinary events, a plain
// .json export holding an instance launch the key policy refused, and an
// empty file. It returns the folder and the Auto Scaling denials written.
func trailTree(t *testing.T) (string, int) {
	t.Helper()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 1))
	asg := 0
	for i, day := range []string{"2026/11/01", "2026/11/01", "2026/11/02"} {
		var plain bytes.Buffer
		n, err := trailtest.WriteLog(&plain, 100, 10, time.Date(2026, 11, 1, i, 0, 0, 0, time.UTC), r)
		if err != nil {
			t.Fatal(err)
		}
		asg += n
		trailtest.WriteFile(t, filepath.Join(dir, "AWSLogs", "111122223333", "CloudTrail", "us-east-1", day, fmt.Sprintf("111122223333_CloudTrail_us-east-1_%d.json.gz", i)), trailtest.Gzip(t, plain.Bytes()))
	}
	var records []map[string]any
	for i, action := range []string{"CreateGrant", "Decrypt", "CreateGrant"} {
		ev := trailtest.AutoScalingDenial(fmt.Sprintf("run-%d", i), time.Date(2026, 11, 2, 9, i, 0, 0, time.UTC))
		ev["eventName"] = action
		ev["userIdentity"] = map[string]any{"type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333", "invokedBy": "ec2.amazonaws.com"}
		ev["sourceIPAddress"], ev["userAgent"] = "ec2.amazonaws.com", "ec2.amazonaws.com"
		records = append(records, ev)
	}
	doc, err := json.MarshalIndent(map[string]any{"Records": records}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	trailtest.WriteFile(t, filepath.Join(dir, "exports", "instances.json"), doc)
	trailtest.WriteFile(t, filepath.Join(dir, "AWSLogs", "111122223333", "CloudTrail", "us-east-1", "2026/11/03", "empty.json"), nil)
	return dir, asg
}

// Offline: each principal and key once, with the count and the fix that
// fits it; the same data as JSON.
func TestDiagnoseOffline(t *testing.T) {
	dir, asg := trailTree(t)
	r := amigate(t, "", "diagnose", "--cloudtrail", filepath.Join(dir, "AWSLogs"), "--cloudtrail", filepath.Join(dir, "exports"))
	for _, want := range []string{
		fmt.Sprintf("✘ %s on %s: kms:CreateGrant (%d)", diagnoseASGRole, trailtest.Key, asg),
		"fix: aws kms create-grant --region us-east-1 --key-id " + trailtest.Key + " --grantee-principal " + diagnoseASGRole,
		"only through a grant",
		"✘ arn:aws:iam::111122223333:root on " + trailtest.Key + ": kms:CreateGrant, kms:Decrypt (3)",
		`fix: in account 444455556666, add to the key policy of ` + trailtest.Key + ` (or let amigate patch it): {"Sid":"amigateUseKeyThroughEC2"`,
		`"Condition":{"StringEquals":{"kms:ViaService":["ec2.us-east-1.amazonaws.com"]}}`,
		`"Condition":{"Bool":{"kms:GrantIsForAWSResource":["true"]}}`,
		"✘ 2 principal(s) and key(s) with KMS denials on a launch path",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if r.code != exitGateSaysNo || r.stderr != "" || t.Failed() {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = amigate(t, "", "diagnose", "--cloudtrail", dir, "--format", "json")
	var out struct {
		OK       bool `json:"ok"`
		Findings []struct {
			Principal, Role, Key, Fix string
			Actions                   []string
			Count                     int
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != exitGateSaysNo || out.OK || len(out.Findings) != 2 {
		t.Fatalf("json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	counts := map[string]int{}
	for _, f := range out.Findings {
		counts[f.Role+f.Principal] += f.Count
	}
	if counts[diagnoseASGRole+"arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAutoScaling/AutoScaling"] != asg || counts["arn:aws:iam::111122223333:root"] != 3 {
		t.Errorf("counts %v, want %d and 3", counts, asg)
	}

	quiet := t.TempDir()
	var plain bytes.Buffer
	trailtest.WriteLog(&plain, 50, 0, time.Now(), rand.New(rand.NewPCG(2, 2)))
	trailtest.WriteFile(t, filepath.Join(quiet, "a", "b.json.gz"), trailtest.Gzip(t, plain.Bytes()))
	if r := amigate(t, "", "diagnose", "--cloudtrail", quiet); r.code != exitOK || !strings.Contains(r.stdout, "no KMS denial on a launch path") {
		t.Errorf("no denial: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// A corrupt, cut short or foreign file among good ones: exit 2, naming it.
func TestDiagnoseBadFiles(t *testing.T) {
	var plain bytes.Buffer
	trailtest.WriteLog(&plain, 100, 10, time.Now(), rand.New(rand.NewPCG(3, 3)))
	zipped := trailtest.Gzip(t, plain.Bytes())
	for name, data := range map[string][]byte{
		"cut.json.gz":     zipped[:len(zipped)/3],
		"corrupt.json.gz": append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, bytes.Repeat([]byte{0xff}, 100)...),
		"cut.json":        plain.Bytes()[:plain.Len()-10],
		"notes.json":      []byte("see the wiki"),
	} {
		dir, _ := trailTree(t)
		bad := trailtest.WriteFile(t, filepath.Join(dir, "AWSLogs", "111122223333", "CloudTrail", "us-east-1", "2026", "11", "02", name), data)
		r := amigate(t, "", "diagnose", "--cloudtrail", dir)
		if r.code != exitBadInput || !strings.Contains(r.stderr, bad+": ") || r.stdout != "" {
			t.Errorf("%s: exit %d\n%s%s", name, r.code, r.stdout, r.stderr)
		}
	}
	// A folder without a log file is a wrong path, not a clean bill.
	empty := t.TempDir()
	trailtest.WriteFile(t, filepath.Join(empty, "README.txt"), []byte("logs are elsewhere"))
	if r := amigate(t, "", "diagnose", "--cloudtrail", empty); r.code != exitBadInput || !strings.Contains(r.stderr, "no CloudTrail log file") || !strings.Contains(r.stderr, empty) {
		t.Errorf("empty folder: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestDiagnoseUsage(t *testing.T) {
	dir, _ := trailTree(t)
	for _, args := range [][]string{
		{"diagnose"},
		{"diagnose", "--cloudtrail", dir, "--region", "us-east-1"},
		{"diagnose", "--cloudtrail", dir, "--since", "2h"},
		{"diagnose", "--cloudtrail", dir, "--role-arn", "arn:aws:iam::111122223333:role/x"},
		{"diagnose", "--cloudtrail", filepath.Join(dir, "nope")},
		{"diagnose", "--cloudtrail", dir, "--format", "xml"},
		{"diagnose", "--cloudtrail", dir, "--verbose"},
		{"diagnose", "--cloudtrail", dir, "extra"},
		{"diagnose", "--region", "mars"},
		{"diagnose", "--region", "us-east-1", "--since", "yesterday"},
		{"diagnose", "--region", "us-east-1", "--since", "-1h"},
		{"diagnose", "--region", "us-east-1", "--role-arn", "arn:aws:iam::111122223333:user/x"},
	} {
		if r := amigate(t, "", args...); r.code != exitBadInput || r.stderr == "" || r.stdout != "" {
			t.Errorf("%v: exit %d %q %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := amigate(t, "", "diagnose", "-h"); r.code != exitOK || !strings.Contains(r.stderr, "--cloudtrail FILE|DIR") {
		t.Errorf("-h: exit %d %q", r.code, r.stderr)
	}
	if r := amigate(t, "", "--help"); !strings.Contains(r.stdout, "diagnose  ") {
		t.Errorf("usage lacks diagnose: %s", r.stdout)
	}
}

// Online: after the first write-up's failed launch, the target's CloudTrail
// names the Auto Scaling role and diagnose gives the grant.
func TestDiagnoseOnline(t *testing.T) {
	_, ami := simEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "SIM111122223333")
	ctx := context.Background()
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(os.Getenv("AWS_ENDPOINT_URL")), Credentials: credentials.NewStaticCredentialsProvider("SIM111122223333", "x", "")}
	if r := amigate(t, "", "diagnose", "--region", "us-east-1", "--since", "1h"); r.code != exitOK || !strings.Contains(r.stdout, "no KMS denial") {
		t.Fatalf("before the launch: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := launchGroup(ctx, cfg, ami); err != nil {
		t.Fatal(err)
	}
	r := amigate(t, "", "diagnose", "--region", "us-east-1", "--since", "1h")
	if r.code != exitGateSaysNo || !strings.Contains(r.stdout, "✘ "+diagnoseASGRole+" on arn:aws:kms:us-east-1:444455556666:key/") ||
		!strings.Contains(r.stdout, "fix: aws kms create-grant --region us-east-1 --key-id arn:aws:kms:us-east-1:444455556666:key/") ||
		!strings.Contains(r.stdout, "--grantee-principal "+diagnoseASGRole) {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", "not-a-sim-key")
	if r := amigate(t, "", "diagnose", "--region", "us-east-1", "--since", "1h"); r.code != exitRuntime || !strings.Contains(r.stderr, "look up KMS events") {
		t.Errorf("an AWS error: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func launchGroup(ctx context.Context, cfg aws.Config, ami string) error {
	var out bytes.Buffer
	if err := demoLaunch(ctx, &out, cfg, ami, "diagnose"); err != nil {
		return err
	}
	acts, err := autoscaling.NewFromConfig(cfg).DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("demo-diagnose")})
	if err != nil {
		return err
	}
	if len(acts.Activities) == 0 || acts.Activities[0].StatusCode != astypes.ScalingActivityStatusCodeFailed {
		return fmt.Errorf("the launch should fail as in the write-up: %+v", acts.Activities)
	}
	return nil
}
