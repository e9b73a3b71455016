package report

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/gate"
	"github.com/amigate/packer-plugin-amigate/internal/launch"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

func failingReport() *gate.Report {
	grant := keypolicy.Finding{Code: keypolicy.CodeGrantMissing, Severity: keypolicy.SeverityError, Actions: []string{"kms:Decrypt"},
		Message: "the role has no grant", Fix: "aws kms create-grant --key-id K"}
	return &gate.Report{
		Images: []gate.ImageInfo{{Region: "us-east-1", ID: "ami-0123456789abcdef0", Snapshots: []gate.SnapshotInfo{{ID: "snap-1", Encrypted: true, Key: "arn:aws:kms:us-east-1:444455556666:key/k"}}}},
		Targets: []gate.TargetReport{{Account: "111122223333", Paths: []gate.PathReport{
			{PathVerdict: keypolicy.PathVerdict{Path: keypolicy.PathASG, Principal: "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling", Findings: []keypolicy.Finding{grant}}, Region: "us-east-1"},
			{PathVerdict: keypolicy.PathVerdict{Path: keypolicy.PathInstance, Principal: "arn:aws:iam::111122223333:root", OK: true, Findings: []keypolicy.Finding{}}, Region: "us-east-1"},
		}}},
		Changes:  gate.Changes{KeyPolicies: []gate.KeyPolicyChange{{Key: "K", Diff: "+ amigateUseKeyThroughEC2\n", Applied: true}}},
		Launches: []launch.Outcome{{Mode: "asg", Account: "111122223333", Region: "us-east-1", Group: "web", Reason: "Client.InternalError: Client error on launch | x", Took: time.Second}},
	}
}

// JUnit: one case per target, region and path, failing with the codes and
// the fix; one case per image for the key checks.
func TestWriteJUnit(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJUnit(&b, failingReport()); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
					Text    string `xml:",chardata"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if doc.Tests != 3 || doc.Failures != 1 || len(doc.Suites) != 2 {
		t.Fatalf("tests=%d failures=%d suites=%d\n%s", doc.Tests, doc.Failures, len(doc.Suites), b.String())
	}
	c := doc.Suites[1].Cases[0]
	if c.Name != "us-east-1/asg" || c.Failure == nil || c.Failure.Message != "GRANT_MISSING" || !strings.Contains(c.Failure.Text, "fix: aws kms create-grant") {
		t.Fatalf("case %+v", c)
	}
}

func TestWriteMarkdownAndSummary(t *testing.T) {
	var md bytes.Buffer
	WriteMarkdown(&md, failingReport())
	for _, want := range []string{"## amigate: ✘ the gate says no", "| ✘ | 111122223333 | us-east-1 | asg |", "```diff\n+ amigateUseKeyThroughEC2", "| ✘ | asg (group web) | 111122223333 | us-east-1 | Client.InternalError: Client error on launch \\| x |", "fix: `aws kms create-grant --key-id K`"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	var text bytes.Buffer
	WriteSummary(&text, failingReport())
	for _, want := range []string{"✘  111122223333  us-east-1  asg", "fix: aws kms create-grant --key-id K", "✘ test launch (asg) in 111122223333 us-east-1 (group web): Client.InternalError", "✘ 1 of 2 paths fail"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, text.String())
		}
	}
}

// A run that stopped on an error has no verdict, and no renderer says it
// passed.
func TestStoppedRunHasNoVerdict(t *testing.T) {
	rep := &gate.Report{Error: "inspect: describe image ami-1 in us-east-1: InternalError"}
	var text, md, junit bytes.Buffer
	WriteSummary(&text, rep)
	WriteMarkdown(&md, rep)
	if err := WriteJUnit(&junit, rep); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]string{"summary": text.String(), "markdown": md.String(), "junit": junit.String()} {
		if strings.Contains(got, "every target can launch") || !strings.Contains(got, rep.Error) {
			t.Errorf("%s:\n%s", name, got)
		}
	}
	if !strings.Contains(junit.String(), `failures="1"`) {
		t.Errorf("junit counts no failure:\n%s", junit.String())
	}
}

// A report that fails on its own findings (a dry run's unverified
// assumption) while every path passes says so, not "0 of N paths fail".
func TestSummaryOfAFailureOutsideThePaths(t *testing.T) {
	r := failingReport()
	for i := range r.Targets {
		r.Targets[i].OK = true
		for j := range r.Targets[i].Paths {
			r.Targets[i].Paths[j].OK, r.Targets[i].Paths[j].Findings = true, nil
		}
	}
	r.Findings = []keypolicy.Finding{{Code: keypolicy.CodeDryRunUnverified, Severity: keypolicy.SeverityError, Message: "a dry run makes no test launch"}}
	var text bytes.Buffer
	WriteSummary(&text, r)
	if !strings.Contains(text.String(), "✘ the gate says no: 1 finding(s) above (2 paths pass)") || !strings.Contains(text.String(), "DRY_RUN_UNVERIFIED") {
		t.Fatalf("summary:\n%s", text.String())
	}
}

// The summary and the Markdown name the organization's accounts left out,
// which the verdict table does not list.
func TestSummaryNamesTheAccountsLeftOut(t *testing.T) {
	rep := &gate.Report{OK: true, Organization: &gate.OrganizationInfo{ID: "o-exampleorg1", Accounts: 2, Excluded: []string{"777788889999"},
		Skipped: []gate.SkippedAccount{{Account: "333344445555", State: "SUSPENDED"}}}}
	want := "organization o-exampleorg1: 2 account(s) gated, excluded 777788889999, skipped 333344445555 (SUSPENDED)"
	var text, md strings.Builder
	WriteSummary(&text, rep)
	WriteMarkdown(&md, rep)
	if !strings.Contains(text.String(), want) || !strings.Contains(md.String(), want) {
		t.Fatalf("summary:\n%s\nmarkdown:\n%s", text.String(), md.String())
	}
}
