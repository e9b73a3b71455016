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
	needBoto3(t)
	s, url := startSim(t)
	s.SetRetryBackoff(0)
	out, err := exec.Command("python3", "testdata/boto3_story.py", url).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("boto3 story: %v\n%s", err, out)
	}
}

func needBoto3(t *testing.T) {
	t.Helper()
	if err := exec.Command("python3", "-c", "import boto3").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 with boto3 is needed: %v", err)
		}
		t.Skip("python3 with boto3 is not installed")
	}
}

// AWS Organizations' answers parse in boto3 too: DescribeOrganization from
// a member, ListAccounts paged by boto3's own paginator, and a member's
// AccessDeniedException.
func TestBoto3Organizations(t *testing.T) {
	needBoto3(t)
	_, url := startOrgSim(t)
	out, err := exec.Command("python3", "testdata/boto3_organizations.py", url, owner, target, orgID, "6").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("boto3 organizations: %v\n%s", err, out)
	}
}
