package awsim

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The same story through boto3: the simulator's responses must parse in
// the AWS SDK for Python too (DESIGN §3.2).
func TestBoto3Story(t *testing.T) {
	if err := exec.Command("python3", "-c", "import boto3").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 with boto3 is needed: %v", err)
		}
		t.Skip("python3 with boto3 is not installed")
	}
	s, url := startSim(t)
	s.SetRetryBackoff(0)
	out, err := exec.Command("python3", "testdata/boto3_story.py", url).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("boto3 story: %v\n%s", err, out)
	}
}
