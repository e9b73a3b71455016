package preflight

import (
	"context"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/amigate/packer-plugin-amigate/internal/awsim"
	"github.com/amigate/packer-plugin-amigate/internal/awsim/simtest"
)

// startExampleWorld serves example/sim-world.json and points
// AWS_ENDPOINT_URL at it.
func startExampleWorld(t *testing.T) *awsim.Server {
	t.Helper()
	s := simtest.ExampleWorld(t)
	url := simtest.Serve(t, s)
	t.Setenv("AWS_ENDPOINT_URL", url)
	return s
}

func raw(key string) map[string]interface{} {
	return map[string]interface{}{
		"access_key": "SIM444455556666", "secret_key": "any", "region": "us-east-1",
		"kms_key_id": key,
		"target":     []map[string]interface{}{{"account_id": "111122223333"}},
	}
}

func said(ui *packersdk.MockUi) string {
	var b strings.Builder
	for _, m := range ui.SayMessages {
		b.WriteString(m.Message + "\n")
	}
	return b.String()
}

func TestProvisionGoodKey(t *testing.T) {
	s := startExampleWorld(t)
	var p Provisioner
	if err := p.Prepare(raw("alias/golden-ami")); err != nil {
		t.Fatal(err)
	}
	ui := &packersdk.MockUi{}
	if err := p.Provision(context.Background(), ui, nil, nil); err != nil {
		t.Fatalf("Provision: %v\n%s", err, said(ui))
	}
	for _, want := range []string{"(CUSTOMER, Enabled)", "will create a grant for arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling", "✔ amigate-preflight"} {
		if !strings.Contains(said(ui), want) {
			t.Errorf("UI lacks %q:\n%s", want, said(ui))
		}
	}
	for _, c := range s.Calls() {
		if c.Mutating {
			t.Fatalf("preflight changed something: %+v", c)
		}
	}
}

// A key that cannot be shared fails the build before the bake.
func TestProvisionBadKeys(t *testing.T) {
	startExampleWorld(t)
	var p Provisioner
	if err := p.Prepare(raw("alias/aws/ebs")); err != nil {
		t.Fatal(err)
	}
	err := p.Provision(context.Background(), &packersdk.MockUi{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "AWS_MANAGED_KEY") || !strings.Contains(err.Error(), "customer managed key") {
		t.Fatalf("aws/ebs: %v", err)
	}
	if err := p.Prepare(raw("alias/typo")); err != nil {
		t.Fatal(err)
	}
	if err := p.Provision(context.Background(), &packersdk.MockUi{}, nil, nil); err == nil || !strings.Contains(err.Error(), `kms_key_id "alias/typo"`) {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestPrepareValidation(t *testing.T) {
	r := raw("")
	r["target"] = []map[string]interface{}{{"account_id": "123", "paths": []string{"lambda"}, "service_linked_role_arns": []string{"arn:aws:iam::111122223333:role/x"}}}
	r["region"] = "moon-1"
	var p Provisioner
	err := p.Prepare(r)
	for _, want := range []string{"kms_key_id: is required", `target[0].account_id "123"`, `target[0].paths "lambda"`, `target[0].service_linked_role_arns "arn:aws:iam::111122223333:role/x"`, `region "moon-1"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
