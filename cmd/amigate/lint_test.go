package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const exampleKey = "arn:aws:kms:us-east-1:444455556666:key/12ee9c11-3476-492c-b5cc-ed4a4d636337"

func example(name string) string { return filepath.Join("..", "..", "example", "lint", name) }

type result struct {
	code           int
	stdout, stderr string
}

func amigate(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func TestLintReferenceWriteup(t *testing.T) {
	base := []string{"lint", "--key-policy", example("key-policy.json"), "--key-arn", exampleKey, "--key-metadata", example("describe-key.json"), "--target", "111122223333"}

	r := amigate(t, "", append(base, "--grants", example("grants-none.json"))...)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"✘ 111122223333  asg       arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
		"✔ 111122223333  instance  arn:aws:iam::111122223333:role/*",
		"GRANT_MISSING",
		"fix: aws kms create-grant --region us-east-1 --key-id " + exampleKey,
		"1 of 2 paths fail",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.stderr != "" {
		t.Errorf("stderr: %s", r.stderr)
	}

	r = amigate(t, "", append(base, "--grants", example("grants-fixed.json"))...)
	if r.code != 0 || !strings.Contains(r.stdout, "every path passes (2)") {
		t.Fatalf("with the grant: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestLintJSON(t *testing.T) {
	r := amigate(t, "", "lint", "--key-policy", example("key-policy.json"), "--key-arn", exampleKey, "--target", "111122223333", "--format", "json")
	if r.code != 1 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var v struct {
		OK  bool `json:"ok"`
		Key struct {
			ARN, Manager, State string
		} `json:"key"`
		Findings []json.RawMessage `json:"findings"`
		Targets  []struct {
			Account string `json:"account"`
			OK      bool   `json:"ok"`
			Paths   []struct {
				Path, Principal string
				OK              bool `json:"ok"`
				Findings        []struct {
					Code, Severity, Statement, Message, Fix string
					Actions                                 []string
				} `json:"findings"`
			} `json:"paths"`
		} `json:"targets"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	if v.OK || v.Key.ARN != exampleKey || v.Key.Manager != "CUSTOMER" || v.Findings == nil || len(v.Targets) != 1 {
		t.Fatalf("verdict: %+v", v)
	}
	asg := v.Targets[0].Paths[0]
	if asg.Path != "asg" || asg.OK || len(asg.Findings) != 1 || asg.Findings[0].Code != "GRANT_MISSING" || asg.Findings[0].Severity != "error" || len(asg.Findings[0].Actions) != 5 {
		t.Errorf("asg path: %+v", asg)
	}
	if !strings.Contains(r.stdout, `"findings": []`) {
		t.Error("empty findings must be [] not null")
	}
}

func TestLintRawPolicyFromStdin(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "keypolicy", "testdata", "writeup3-fixed-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := amigate(t, string(raw), "lint", "--key-policy", "-", "--key-arn", exampleKey, "--target", "111122223333", "--paths", "instance")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestLintCustomASGRole(t *testing.T) {
	role := "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling_golden"
	r := amigate(t, "", "lint", "--key-policy", example("key-policy.json"), "--key-arn", exampleKey, "--target", "111122223333",
		"--asg-role", role, "--grants", example("grants-fixed.json"), "--paths", "asg")
	if r.code != 1 || !strings.Contains(r.stdout, "✘ 111122223333  asg  "+role) {
		t.Fatalf("the grant for the default role must not cover a custom-suffix role: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestLintAWSManagedKey(t *testing.T) {
	dir := t.TempDir()
	meta := filepath.Join(dir, "describe-key.json")
	data, _ := os.ReadFile(example("describe-key.json"))
	os.WriteFile(meta, bytes.Replace(data, []byte(`"CUSTOMER"`), []byte(`"AWS"`), 1), 0o600)
	r := amigate(t, "", "lint", "--key-policy", example("key-policy.json"), "--key-arn", exampleKey, "--key-metadata", meta, "--target", "111122223333", "--grants", example("grants-fixed.json"))
	if r.code != 1 || !strings.Contains(r.stdout, "AWS_MANAGED_KEY") {
		t.Fatalf("exit %d\n%s", r.code, r.stdout)
	}
}

func TestLintBadInput(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.json")
	os.WriteFile(broken, []byte("{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\"Effect\": \"Allow\",}\n  ]\n}\n"), 0o600)
	otherKey := filepath.Join(dir, "other-key.json")
	os.WriteFile(otherKey, []byte(`{"KeyMetadata":{"Arn":"arn:aws:kms:us-east-1:444455556666:key/other","KeyManager":"CUSTOMER","KeyState":"Enabled"}}`), 0o600)
	good := []string{"--key-policy", example("key-policy.json"), "--key-arn", exampleKey, "--target", "111122223333"}
	with := func(flag, value string) []string {
		args := []string{"lint"}
		for i := 0; i < len(good); i += 2 {
			if good[i] != flag {
				args = append(args, good[i], good[i+1])
			}
		}
		return append(args, flag, value)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unreadable file", with("--key-policy", filepath.Join(dir, "missing.json")), `--key-policy "` + filepath.Join(dir, "missing.json") + `": no such file or directory`},
		{"invalid JSON with position", with("--key-policy", broken), "line 4, column 24"},
		{"bad account id", with("--target", "12345"), `--target "12345": not a 12-digit AWS account id`},
		{"bad key region", with("--key-arn", "arn:aws:kms:us-east-99:444455556666:key/12ee9c11-3476-492c-b5cc-ed4a4d636337"), `"us-east-99" is not an AWS region`},
		{"letters in account id", with("--target", "11112222333x"), `--target "11112222333x"`},
		{"bad key ARN", with("--key-arn", "arn:aws:kms:us-east-1:444455556666:alias/golden"), `--key-arn "arn:aws:kms:us-east-1:444455556666:alias/golden": not a KMS key ARN`},
		{"not an ARN", with("--key-arn", "12ee9c11"), `--key-arn "12ee9c11"`},
		{"unknown path", with("--paths", "asg,lambda"), `--paths "asg,lambda": unknown path "lambda"`},
		{"unknown format", with("--format", "yaml"), `--format "yaml": must be text or json`},
		{"asg role not a role", with("--asg-role", "arn:aws:iam::111122223333:user/bob"), `--asg-role "arn:aws:iam::111122223333:user/bob": not an IAM role ARN`},
		{"asg role of another account", with("--asg-role", "arn:aws:iam::999999999999:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"), "account 999999999999 is not one of the --target accounts"},
		{"metadata of another key", with("--key-metadata", otherKey), "describes key arn:aws:kms:us-east-1:444455556666:key/other, not --key-arn"},
		{"org path without account", with("--org-path", "o-abcdefghij/r-ab12/"), `--org-path "o-abcdefghij/r-ab12/": want ACCOUNT=o-ORG/r-ROOT/ou-.../`},
		{"org path of a bad account", with("--org-path", "12345=o-abcdefghij/r-ab12/"), `--org-path "12345=o-abcdefghij/r-ab12/": "12345" is not a 12-digit AWS account id`},
		{"org path of another account", with("--org-path", "999999999999=o-abcdefghij/r-ab12/"), `--org-path "999999999999=o-abcdefghij/r-ab12/": account 999999999999 is not one of the --target accounts`},
		{"org path without root", with("--org-path", "111122223333=o-abcdefghij"), `--org-path "111122223333=o-abcdefghij": "o-abcdefghij" is not an organization path`},
		{"org path with a bad OU", with("--org-path", "111122223333=o-abcdefghij/r-ab12/ou-x/"), `"ou-x" is not an organizational unit id`},
		{"org path with a bad organization id", with("--org-path", "111122223333=o-ABC/r-ab12/"), `"o-ABC" is not an organization id`},
		{"principal without account", with("--principal", "arn:aws:iam::111122223333:role/ci"), `--principal "arn:aws:iam::111122223333:role/ci": want ACCOUNT=ARN`},
		{"principal of another account", with("--principal", "999999999999=arn:aws:iam::999999999999:role/ci"), "account 999999999999 is not one of the --target accounts"},
		{"principal in another account", with("--principal", "111122223333=arn:aws:iam::999999999999:role/ci"), "arn:aws:iam::999999999999:role/ci is not in account 111122223333"},
		{"principal not a role or user", with("--principal", "111122223333=arn:aws:iam::111122223333:root"), "not the ARN of an IAM role or user"},
		{"principal with a wildcard", with("--principal", "111122223333=arn:aws:iam::111122223333:role/app-*"), "names no single principal"},
		{"two principals for one account", append(with("--principal", "111122223333=arn:aws:iam::111122223333:role/a"), "--principal", "111122223333=arn:aws:iam::111122223333:role/b"), "account 111122223333 already has the principal arn:aws:iam::111122223333:role/a"},
		{"two org paths for one account", append(with("--org-path", "111122223333=o-abcdefghij/r-ab12/"), "--org-path", "111122223333=o-abcdefghij/r-ab12/ou-ab12-11111111/"), "account 111122223333 already has the organization path o-abcdefghij/r-ab12/"},
		{"grants file is not list-grants", with("--grants", example("describe-key.json")), `--grants "` + example("describe-key.json") + `": not list-grants output`},
		{"missing key policy", []string{"lint", "--key-arn", exampleKey, "--target", "111122223333"}, "--key-policy is required"},
		{"missing target", []string{"lint", "--key-policy", example("key-policy.json"), "--key-arn", exampleKey}, "--target is required"},
		{"unknown flag", with("--targets", "111122223333"), "flag provided but not defined: -targets"},
		{"stray argument", append(with("--format", "text"), "extra"), `unexpected argument "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := amigate(t, "", tc.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %s", r.stdout)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, r.stderr)
			}
			if strings.Contains(r.stderr, "goroutine") || strings.Contains(r.stderr, "panic") {
				t.Errorf("stack trace on stderr:\n%s", r.stderr)
			}
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	if r := amigate(t, "", "lnit"); r.code != 2 || !strings.Contains(r.stderr, `unknown command "lnit"`) {
		t.Fatalf("%+v", r)
	}
	if r := amigate(t, "", "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "amigate ") {
		t.Fatalf("%+v", r)
	}
	// Every command refuses what it does not take.
	for _, args := range [][]string{{"version", "--bogus"}, {"sim", "extra"}, {"demo", "extra"}} {
		if r := amigate(t, "", args...); r.code != exitBadInput || !strings.Contains(r.stderr, "unexpected argument") {
			t.Errorf("%v: %+v", args, r)
		}
	}
	for _, cmd := range []string{"sim", "demo"} {
		if r := amigate(t, "", cmd, "-h"); r.code != exitOK || !strings.Contains(r.stderr, "usage: amigate "+cmd) {
			t.Errorf("%s -h: %+v", cmd, r)
		}
	}
}

func TestSimRefusesNonLoopback(t *testing.T) {
	r := amigate(t, "", "sim", "--listen", "0.0.0.0:4566")
	if r.code != 2 || !strings.Contains(r.stderr, `--listen "0.0.0.0:4566"`) || !strings.Contains(r.stderr, "loopback only") {
		t.Fatalf("%+v", r)
	}
}

func TestSimServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result)
	go func() {
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"sim", "--listen", "127.0.0.1:0"}, strings.NewReader(""), &out, &errOut)
		done <- result{code, out.String(), errOut.String()}
	}()
	cancel()
	r := <-done
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
}

func TestSimBadWorld(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "world.json")
	os.WriteFile(bad, []byte(`{"keys":[{"account":"12"}]}`), 0o600)
	for file, want := range map[string]string{
		bad:                             `keys[0]: account "12"`,
		filepath.Join(dir, "none.json"): "no such file or directory",
	} {
		r := amigate(t, "", "sim", "--listen", "127.0.0.1:0", "--world", file)
		if r.code != 2 || !strings.Contains(r.stderr, `--world "`+file+`"`) || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: %+v", file, r)
		}
	}
}

// Standard input can feed one flag only; a second "-" is named.
func TestLintStdinOnce(t *testing.T) {
	policy, err := os.ReadFile(example("key-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := amigate(t, string(policy), "lint", "--key-policy", "-", "--grants", "-", "--key-arn", exampleKey, "--target", "111122223333")
	if r.code != exitBadInput || !strings.Contains(r.stderr, `--grants "-": standard input is already read by --key-policy; give a file`) {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}

// describe-key output without KeySpec or KeyUsage keeps their defaults.
func TestLintSparseKeyMetadata(t *testing.T) {
	meta := filepath.Join(t.TempDir(), "describe-key.json")
	os.WriteFile(meta, []byte(`{"KeyMetadata": {"Arn": "`+exampleKey+`", "KeyState": "Enabled"}}`), 0o644)
	r := amigate(t, "", "lint", "--key-policy", example("key-policy.json"), "--key-arn", exampleKey, "--key-metadata", meta, "--target", "111122223333", "--grants", example("grants-fixed.json"))
	if r.code != exitOK || !strings.Contains(r.stdout, "(CUSTOMER, Enabled)") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
