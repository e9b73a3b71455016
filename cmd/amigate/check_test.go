package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amigate/packer-plugin-amigate/internal/awsim"
	"github.com/amigate/packer-plugin-amigate/internal/awsim/simtest"
	"github.com/amigate/packer-plugin-amigate/internal/gate"
	"github.com/amigate/packer-plugin-amigate/internal/keylock"
	"github.com/amigate/packer-plugin-amigate/internal/launch"
)

// simEnv serves example/sim-world.json and points the SDK's usual
// environment at it, as the source account. It returns the simulator and
// the golden AMI.
func simEnv(t *testing.T) (*awsim.Server, string) {
	t.Helper()
	s := simtest.ExampleWorld(t)
	return s, serveEnv(t, s)
}

// serveEnv serves s and points the SDK's usual environment at it, as the
// source account; it returns the source's golden AMI.
func serveEnv(t *testing.T, s *awsim.Server) string {
	t.Helper()
	url := simtest.Serve(t, s)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "SIM444455556666", "AWS_SECRET_ACCESS_KEY": "any", "AWS_REGION": "us-east-1",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_PROFILE": "", "AWS_SESSION_TOKEN": "", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: credentials.NewStaticCredentialsProvider("SIM444455556666", "x", "")}
	out, err := ec2.NewFromConfig(cfg).DescribeImages(context.Background(), &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("golden image: %v", err)
	}
	return aws.ToString(out.Images[0].ImageId)
}

func mutating(s *awsim.Server) int {
	n := 0
	for _, c := range s.Calls() {
		if c.Mutating {
			n++
		}
	}
	return n
}

func TestCheckFixesTheWriteup(t *testing.T) {
	s, ami := simEnv(t)
	reportFile := filepath.Join(t.TempDir(), "report.json")
	args := []string{"check", "--ami", ami, "--target", "111122223333", "--target-role", "111122223333=arn:aws:iam::111122223333:role/amigate", "--asg", "111122223333=web"}

	r := amigate(t, "", append(args, "--dry-run")...)
	if r.code != exitOK || mutating(s) != 0 || !strings.Contains(r.stderr, "would have created grant amigate-asg-111122223333") {
		t.Fatalf("dry run: exit %d, %d mutating calls\n%s%s", r.code, mutating(s), r.stdout, r.stderr)
	}

	r = amigate(t, "", append(args, "--report", reportFile)...)
	if r.code != exitOK || !strings.Contains(r.stdout, "every target can launch the image") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var rep gate.Report
	if data, err := os.ReadFile(reportFile); err != nil || json.Unmarshal(data, &rep) != nil || !rep.OK || len(rep.Changes.Grants) != 1 {
		t.Fatalf("report: %v %+v", err, rep.Changes)
	}

	before := mutating(s)
	r = amigate(t, "", append(args, "--format", "json")...)
	if err := json.Unmarshal([]byte(r.stdout), &rep); r.code != exitOK || err != nil || rep.Changes.Count() != 0 || mutating(s) != before {
		t.Fatalf("re-run: exit %d, %v, %d changes, %d new mutating calls", r.code, err, rep.Changes.Count(), mutating(s)-before)
	}
}

func TestCheckSaysNo(t *testing.T) {
	_, ami := simEnv(t)
	r := amigate(t, "", "check", "--ami", "us-east-1="+ami, "--target", "111122223333", "--key-policy", "check", "--no-grants", "--paths", "asg")
	if r.code != exitGateSaysNo || !strings.Contains(r.stdout, "GRANT_MISSING") || !strings.Contains(r.stdout, "fix: aws kms create-grant") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// Bad input exits 2 naming the flag and the value, and calls no AWS API
// that changes anything.
func TestCheckBadInput(t *testing.T) {
	s, ami := simEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ami", ami, "--target", "12345"}, `--target "12345": not a 12-digit AWS account id`},
		{[]string{"--ami", "ami-nope", "--target", "111122223333"}, `--ami "ami-nope": not an AMI id`},
		{[]string{"--ami", ami, "--target", "111122223333", "--key-policy", "rewrite"}, `--key-policy "rewrite": must be one of patch, check, ignore`},
		{[]string{"--ami", ami, "--target", "111122223333", "--target-role", "111122223333=arn:aws:iam::999999999999:role/x"}, `--target-role "arn:aws:iam::999999999999:role/x": is in account 999999999999`},
		{[]string{"--ami", ami, "--target", "111122223333", "--asg", "222222222222=web"}, `--asg "222222222222=web": account 222222222222 is not one of the --target accounts`},
		{[]string{"--ami", ami, "--target", "111122223333", "--paths", "lambda"}, `--paths "lambda": unknown path`},
		{[]string{"--ami", ami, "--target", "111122223333", "--launch-timeout", "soon"}, `--launch-timeout "soon": not a positive duration`},
		{[]string{"--ami", ami, "--target", "111122223333", "--launch-timeout", "-5m"}, `--launch-timeout "-5m": not a positive duration`},
		{[]string{"--ami", ami, "--target", "111122223333", "--grant-wait", "-1s"}, `--grant-wait "-1s": not a duration of zero or more`},
		{[]string{"--ami", ami, "--target", "111122223333", "--lock-timeout", "0"}, `--lock-timeout "0": not a positive duration`},
		{[]string{"--ami", "ami-0123456789abcdef0", "--target", "111122223333"}, `--ami "ami-0123456789abcdef0": no such AMI in us-east-1`},
		{[]string{"--ami", ami, "--target", "111122223333", "--target-role", "111122223333=arn:aws:iam::111122223333:role/amigate", "--asg", "111122223333=nope"}, `--asg "nope": no such Auto Scaling group`},
		{[]string{"--ami", ami, "--target", "111122223333", "--region", "us-east-99"}, `--region "us-east-99": not an AWS region`},
		{[]string{"--ami", ami, "--target", "111122223333", "--report", "/nonexistent/dir/r.json"}, `--report "/nonexistent/dir/r.json": folder /nonexistent/dir does not exist`},
		{[]string{"--ami", ami, "--target", "111122223333", "--junit", os.TempDir()}, `--junit "` + os.TempDir() + `": is a folder`},
		{[]string{"--ami", ami, "--target", "111122223333", "--test-launch", "asg"}, `--asg: --test-launch asg needs --asg and --target-role in every target`},
		{[]string{"--ami", ami, "--target", "111122223333", "--asg", "111122223333=web"}, `reading the groups needs --target-role`},
	} {
		r := amigate(t, "", append([]string{"check"}, tc.args...)...)
		if r.code != exitBadInput || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	if n := mutating(s); n != 0 {
		t.Fatalf("%d mutating calls on bad input", n)
	}
}

// The demo shows the write-up's launch failing, the gate's verdict and fix,
// and the launch then working.
func TestDemo(t *testing.T) {
	r := amigate(t, "", "demo")
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	before := strings.Index(r.stdout, "✘ Failed")
	verdict := strings.Index(r.stdout, "GRANT_MISSING")
	grant := strings.Index(r.stdout, "✔ created grant amigate-asg-111122223333-AWSServiceRoleForAutoScaling")
	after := strings.Index(r.stdout, "✔ Successful")
	if before < 0 || verdict < before || grant < verdict || after < grant || !strings.Contains(r.stdout, "Client.InternalError: Client error on launch") {
		t.Fatalf("demo output out of order or incomplete:\n%s", r.stdout)
	}
}

// check --test-launch asg clones the target's group with the new AMI
// (after the gate's grant) and reports the launch.
func TestCheckTestLaunch(t *testing.T) {
	s, ami := simEnv(t)
	r := amigate(t, "", "check", "--ami", ami, "--target", "111122223333", "--target-role", "111122223333=arn:aws:iam::111122223333:role/amigate",
		"--asg", "111122223333=web", "--test-launch", "asg", "--format", "json")
	var rep gate.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); r.code != exitOK || err != nil || len(rep.Launches) != 1 || !rep.Launches[0].OK {
		t.Fatalf("exit %d %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	for _, c := range s.Calls() {
		if c.Action == "CreateAutoScalingGroup" && c.Status != 200 {
			t.Fatalf("test group creation failed: %+v", c)
		}
	}
}

// amigate cleanup deletes what a run killed hard left, found by tag, and
// the key policy lock it held once that is past its lease.
func TestCleanupCommand(t *testing.T) {
	s, ami := simEnv(t)
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(os.Getenv("AWS_ENDPOINT_URL")), Credentials: credentials.NewStaticCredentialsProvider("SIM111122223333", "x", "")}
	l := &launch.Launcher{EC2: ec2.NewFromConfig(cfg), AutoScaling: autoscaling.NewFromConfig(cfg)}
	// A run killed hard: its cleanup never runs.
	if _, err := l.Run(context.Background(), launch.Request{Mode: launch.ModeASG, RunID: "killed", Account: "111122223333", Region: "us-east-1", AMI: ami,
		Group: "web", Timeout: time.Second, PollMin: time.Millisecond, PollMax: time.Millisecond}, &launch.Cleanup{}); err != nil {
		t.Fatal(err)
	}
	// ... and the key policy lock it held, in the source account.
	src := cfg.Copy()
	src.Credentials = credentials.NewStaticCredentialsProvider("SIM444455556666", "x", "")
	kc := kms.NewFromConfig(src)
	key, err := kc.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String("alias/golden-ami")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&keylock.Locker{KMS: kc, KeyARN: aws.ToString(key.KeyMetadata.Arn), RunID: "killed"}).Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	lockAlias := keylock.Name(aws.ToString(key.KeyMetadata.Arn))
	for owned := false; !owned; { // the owner alias follows the lock at once
		out, err := kc.ListAliases(context.Background(), &kms.ListAliasesInput{KeyId: key.KeyMetadata.Arn})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range out.Aliases {
			owned = owned || aws.ToString(a.AliasName) == lockAlias+"/owner/killed"
		}
	}
	args := []string{"cleanup", "--older-than", "1ms", "--region", "us-east-1", "--target", "111122223333", "--target-role", "111122223333=arn:aws:iam::111122223333:role/amigate"}
	s.Advance(keylock.Lease + time.Minute)
	r := amigate(t, "", append(args, "--dry-run")...)
	if r.code != exitOK || !strings.Contains(r.stderr, "would delete autoscaling-group amigate-killed-web") || !strings.Contains(r.stderr, "would delete launch-template-version") ||
		!strings.Contains(r.stderr, "would delete kms-alias "+lockAlias+" (run unknown") || !strings.Contains(r.stderr, "would delete kms-alias "+lockAlias+"/owner/killed (run killed") {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = amigate(t, "", args...)
	if r.code != exitOK || !strings.Contains(r.stderr, "deleted autoscaling-group amigate-killed-web") || !strings.Contains(r.stderr, "deleted kms-alias "+lockAlias+" ") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := (&keylock.Locker{KMS: kc, KeyARN: aws.ToString(key.KeyMetadata.Arn), RunID: "next", Wait: time.Millisecond}).Acquire(context.Background()); err != nil {
		t.Fatalf("the lock after cleanup: %v", err)
	}
	r = amigate(t, "", append(args, "--format", "json")...)
	if r.code != exitOK || strings.Contains(r.stdout, "amigate-killed") {
		t.Fatalf("second sweep: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--region", "us-east-1"}, "--older-than is required"},
		{[]string{"--older-than", "0", "--region", "us-east-1"}, `--older-than "0": not a positive duration`},
		{[]string{"--older-than", "2h", "--region", "us-east-1", "--target-role", "111122223333=arn:aws:iam::111122223333:role/amigate"}, "account 111122223333 is not one of the --target accounts"},
	} {
		if r := amigate(t, "", append([]string{"cleanup"}, tc.args...)...); r.code != exitBadInput || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d %s, want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	// Without --target, the current account is swept, and named.
	r = amigate(t, "", "cleanup", "--older-than", "2h", "--region", "us-east-1", "--format", "json")
	if r.code != exitOK || !strings.Contains(r.stdout, `"account": "444455556666"`) || !strings.Contains(r.stdout, `"leftovers": []`) {
		t.Fatalf("current account: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
