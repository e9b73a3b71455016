package main

import (
	"bytes"
	"compress/gzip"
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

func TestDiagnoseOffline(t *testing.T) {
	dir := t.TempDir()
	var plain bytes.Buffer
	if _, err := trailtest.WriteLog(&plain, 100, 10, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(plain.Bytes())
	zw.Close()
	os.MkdirAll(filepath.Join(dir, "us-east-1", "2026", "11", "01"), 0o755)
	os.WriteFile(filepath.Join(dir, "us-east-1", "2026", "11", "01", "a.json.gz"), z.Bytes(), 0o644)

	r := amigate(t, "", "diagnose", "--cloudtrail", dir)
	if r.code != exitGateSaysNo || !strings.Contains(r.stdout, "AWSServiceRoleForAutoScaling on "+trailtest.Key+": kms:CreateGrant (10)") ||
		!strings.Contains(r.stdout, "fix: aws kms create-grant") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = amigate(t, "", "diagnose", "--cloudtrail", dir, "--format", "json")
	var out struct {
		Findings []struct {
			Role  string `json:"role"`
			Count int    `json:"count"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.Findings) != 1 || out.Findings[0].Count != 10 {
		t.Fatalf("json: %v %s", err, r.stdout)
	}

	bad := filepath.Join(dir, "us-east-1", "broken.json.gz")
	os.WriteFile(bad, z.Bytes()[:z.Len()/3], 0o644)
	r = amigate(t, "", "diagnose", "--cloudtrail", dir)
	if r.code != exitBadInput || !strings.Contains(r.stderr, bad) || r.stdout != "" {
		t.Fatalf("corrupt file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{
		{"diagnose"},
		{"diagnose", "--cloudtrail", dir, "--region", "us-east-1"},
		{"diagnose", "--cloudtrail", filepath.Join(dir, "nope")},
		{"diagnose", "--region", "mars"},
		{"diagnose", "--region", "us-east-1", "--since", "yesterday"},
	} {
		if r := amigate(t, "", args...); r.code != exitBadInput || r.stderr == "" {
			t.Errorf("%v: exit %d %q", args, r.code, r.stderr)
		}
	}
}

// Online: after the first write-up's failed launch, the target's CloudTrail
// names the Auto Scaling role and diagnose gives the grant.
func TestDiagnoseOnline(t *testing.T) {
	_, ami := simEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "SIM111122223333")
	ctx := context.Background()
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(os.Getenv("AWS_ENDPOINT_URL")), Credentials: credentials.NewStaticCredentialsProvider("SIM111122223333", "x", "")}
	if err := launchGroup(ctx, cfg, ami); err != nil {
		t.Fatal(err)
	}
	r := amigate(t, "", "diagnose", "--region", "us-east-1", "--since", "10m")
	if r.code != exitGateSaysNo || !strings.Contains(r.stdout, "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling") ||
		!strings.Contains(r.stdout, "fix: aws kms create-grant") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
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
