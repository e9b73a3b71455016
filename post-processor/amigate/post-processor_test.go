package amigate

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/amigate/packer-plugin-amigate/internal/awsim"
	"github.com/amigate/packer-plugin-amigate/internal/awsim/simtest"
	"github.com/amigate/packer-plugin-amigate/internal/gate"
)

// startExampleWorld serves example/sim-world.json, the first write-up's two
// accounts, sets AWS_ENDPOINT_URL to it as a user would, and returns the
// golden AMI's id.
func startExampleWorld(t *testing.T) (*awsim.Server, string) {
	t.Helper()
	s := simtest.ExampleWorld(t)
	url := simtest.Serve(t, s)
	t.Setenv("AWS_ENDPOINT_URL", url)
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: credentials.NewStaticCredentialsProvider("SIM444455556666", "x", "")}
	out, err := ec2.NewFromConfig(cfg).DescribeImages(context.Background(), &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("golden image: %v", err)
	}
	return s, aws.ToString(out.Images[0].ImageId)
}

func simRaw(dir string) map[string]interface{} {
	return map[string]interface{}{
		"access_key": "SIM444455556666",
		"secret_key": "any",
		"target": []map[string]interface{}{
			{"account_id": "111122223333", "role_arn": "arn:aws:iam::111122223333:role/amigate", "autoscaling_groups": []string{"web"}},
		},
		"report_file":   filepath.Join(dir, "report.json"),
		"junit_file":    filepath.Join(dir, "junit.xml"),
		"markdown_file": filepath.Join(dir, "summary.md"),
	}
}

func said(ui *packersdk.MockUi) string {
	var b strings.Builder
	for _, m := range ui.SayMessages {
		b.WriteString(m.Message + "\n")
	}
	return b.String()
}

// The post-processor reads the AMIs from an amazon-ebs artifact, fixes the
// first write-up's failure (the Auto Scaling role's grant), writes the three
// reports, and keeps the artifact.
func TestPostProcessFixesTheWriteup(t *testing.T) {
	_, ami := startExampleWorld(t)
	dir := t.TempDir()
	var p PostProcessor
	if err := p.Configure(simRaw(dir)); err != nil {
		t.Fatal(err)
	}
	ui := &packersdk.MockUi{}
	in := &packersdk.MockArtifact{BuilderIdValue: "mitchellh.amazonebs", IdValue: "us-east-1:" + ami}
	out, keep, force, err := p.PostProcess(context.Background(), ui, in)
	if err != nil {
		t.Fatalf("PostProcess: %v\n%s", err, said(ui))
	}
	if out != in || !keep || !force {
		t.Fatalf("artifact %v keep=%v force=%v: the input artifact must be returned and kept", out, keep, force)
	}
	for _, want := range []string{"created grant amigate-asg-111122223333", "✔ 111122223333 us-east-1 asg", "every target can launch the image"} {
		if !strings.Contains(said(ui), want) {
			t.Errorf("UI lacks %q:\n%s", want, said(ui))
		}
	}

	var rep gate.Report
	data, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil || json.Unmarshal(data, &rep) != nil {
		t.Fatalf("report.json: %v", err)
	}
	if !rep.OK || len(rep.Changes.Grants) != 1 || rep.Changes.Grants[0].GrantID == "" || rep.APICalls["kms:CreateGrant"] != 1 {
		t.Fatalf("report: ok=%v grants=%+v calls=%v", rep.OK, rep.Changes.Grants, rep.APICalls)
	}
	var junit struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	data, err = os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err != nil || xml.Unmarshal(data, &junit) != nil || junit.Tests != 3 || junit.Failures != 0 {
		t.Fatalf("junit.xml (%v): %+v\n%s", err, junit, data)
	}
	if md, _ := os.ReadFile(filepath.Join(dir, "summary.md")); !strings.Contains(string(md), "every target can launch the image") || !strings.Contains(string(md), "grant `amigate-asg-") {
		t.Fatalf("summary.md:\n%s", md)
	}
}

// With key_policy = "check" the gate may not fix the key policy, so the
// build fails naming the target, the path and the exact fix.
func TestPostProcessFailsTheBuildWithTheFix(t *testing.T) {
	_, ami := startExampleWorld(t)
	raw := simRaw(t.TempDir())
	raw["key_policy"] = "check"
	raw["create_grants"] = false
	var p PostProcessor
	if err := p.Configure(raw); err != nil {
		t.Fatal(err)
	}
	in := &packersdk.MockArtifact{BuilderIdValue: "mitchellh.amazonebs", IdValue: "us-east-1:" + ami}
	out, keep, _, err := p.PostProcess(context.Background(), &packersdk.MockUi{}, in)
	if err == nil || out != in || !keep {
		t.Fatalf("PostProcess: err=%v keep=%v", err, keep)
	}
	for _, want := range []string{"111122223333 us-east-1 asg: GRANT_MISSING", "aws kms create-grant", "AWSServiceRoleForAutoScaling"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// An artifact that is not an AMI is a clear error unless ami_ids is set.
func TestPostProcessOtherArtifacts(t *testing.T) {
	s, ami := startExampleWorld(t)
	raw := simRaw(t.TempDir())
	var p PostProcessor
	if err := p.Configure(raw); err != nil {
		t.Fatal(err)
	}
	in := &packersdk.MockArtifact{BuilderIdValue: "packer.file", IdValue: "out.txt"}
	before := len(s.Calls())
	if _, keep, _, err := p.PostProcess(context.Background(), &packersdk.MockUi{}, in); err == nil || !keep || !strings.Contains(err.Error(), "ami_ids") {
		t.Fatalf("err = %v", err)
	}
	if n := len(s.Calls()) - before; n != 0 {
		t.Fatalf("%d AWS calls for an artifact amigate cannot read", n)
	}
	raw["ami_ids"] = map[string]string{"us-east-1": ami}
	if err := p.Configure(raw); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := p.PostProcess(context.Background(), &packersdk.MockUi{}, in); err != nil {
		t.Fatalf("with ami_ids: %v", err)
	}
}

// A report file that cannot be written stops the post-processor before it
// changes anything, naming the option.
func TestPostProcessBadReportPathChangesNothing(t *testing.T) {
	s, ami := startExampleWorld(t)
	raw := simRaw(t.TempDir())
	raw["junit_file"] = filepath.Join(t.TempDir(), "missing", "junit.xml")
	var p PostProcessor
	if err := p.Configure(raw); err != nil {
		t.Fatal(err)
	}
	before := len(s.Calls())
	in := &packersdk.MockArtifact{BuilderIdValue: "mitchellh.amazonebs", IdValue: "us-east-1:" + ami}
	if _, keep, _, err := p.PostProcess(context.Background(), &packersdk.MockUi{}, in); err == nil || !keep || !strings.Contains(err.Error(), "junit_file") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err=%v keep=%v", err, keep)
	}
	if n := len(s.Calls()) - before; n != 0 {
		t.Fatalf("%d AWS calls before the report path was checked", n)
	}
}
