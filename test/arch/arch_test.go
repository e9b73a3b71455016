// Package arch_test enforces the dependency rules of the design (DESIGN §2):
// keypolicy is pure, internal/ knows nothing of Packer, and the simulator
// models AWS without the verdict engine it is tested against.
package arch_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/amigate/packer-plugin-amigate"

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-test=false", module+"/"+pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestDependencyRules(t *testing.T) {
	for _, rule := range []struct {
		pkg       string
		forbidden []string
	}{
		{"keypolicy", []string{"github.com/aws/", "github.com/hashicorp/"}},
		{"internal/awsim", []string{module + "/keypolicy", "github.com/hashicorp/"}},
		{"internal/gate", []string{"github.com/hashicorp/"}},
		{"internal/awsjson", []string{"github.com/aws/", "github.com/hashicorp/"}},
		{"internal/report", []string{"github.com/hashicorp/"}},
		{"internal/awsapi", []string{module + "/internal/gate", module + "/keypolicy", "github.com/hashicorp/"}},
		{"internal/launch", []string{module + "/internal/gate", "github.com/hashicorp/"}},
		{"internal/trail", []string{"github.com/hashicorp/"}},
		{"internal/keylock", []string{module + "/internal/gate", module + "/keypolicy", "github.com/hashicorp/"}},
	} {
		for _, d := range deps(t, rule.pkg) {
			for _, f := range rule.forbidden {
				if strings.HasPrefix(d, f) {
					t.Errorf("%s depends on %s, which the design forbids", rule.pkg, d)
				}
			}
		}
	}
}
