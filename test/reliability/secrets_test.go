package reliability_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Secret values in the environment and in a shared credentials file never
// appear in what amigate prints or writes: stdout, stderr (its log) and
// every report, on green, red, error and interrupted runs alike.
func TestSecretsNeverLeak(t *testing.T) {
	const (
		envSecret  = "CANARYenvSecret0a1b2c3d4e5f"
		envToken   = "CANARYenvToken9z8y7x6w5v"
		fileSecret = "CANARYfileSecret1q2w3e4r5t"
		fileToken  = "CANARYfileToken6y7u8i9o0p"
	)
	canaries := []string{envSecret, envToken, fileSecret, fileToken}
	w := newWorld(t, 2, targetAccount(1)) // the second target is denied: a red run
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, []byte("[canary]\naws_access_key_id = SIM"+source+"\naws_secret_access_key = "+fileSecret+"\naws_session_token = "+fileToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withEnv := w.env(t, "AWS_SECRET_ACCESS_KEY="+envSecret, "AWS_SESSION_TOKEN="+envToken)
	withFile := append(w.env(t), "AWS_SHARED_CREDENTIALS_FILE="+creds, "AWS_PROFILE=canary", "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=")
	green, red := w.targets[0], w.targets[1]
	reports := func(name string) []string {
		return []string{"--report", filepath.Join(dir, name+".json"), "--junit", filepath.Join(dir, name+".xml"), "--markdown", filepath.Join(dir, name+".md")}
	}
	runs := []struct {
		name string
		env  []string
		args []string
		code int
	}{
		{"dry run", withFile, w.checkArgs(green, append(reports("dry"), "--dry-run")...), 0},
		{"green, env", withEnv, w.checkArgs(green, append(reports("green-env"), "--format", "json")...), 0},
		{"green, file", withFile, w.checkArgs(green, reports("green-file")...), 0},
		{"red", withEnv, w.checkArgs(red, reports("red")...), 1},
		{"error (role not assumable)", withEnv, []string{"check", "--ami", w.ami, "--target", green, "--target-role", green + "=arn:aws:iam::" + green + ":role/nope", "--report", filepath.Join(dir, "error.json")}, 3},
		{"test launch", withFile, w.checkArgs(green, append(reports("launch"), "--test-launch", "asg", "--grant-wait", "0s")...), 0},
		{"cleanup", withEnv, []string{"cleanup", "--older-than", "1h", "--region", region, "--format", "json"}, 0},
		{"diagnose online", withFile, []string{"diagnose", "--region", region, "--role-arn", roleARN(green)}, 0},
		{"bad input", withEnv, []string{"check", "--ami", w.ami, "--target", "12345"}, 2},
	}
	scanned, leaks := 0, 0
	scan := func(what, text string) {
		scanned++
		for _, c := range canaries {
			if strings.Contains(text, c) {
				leaks++
				t.Errorf("%s shows the secret %s", what, c)
			}
		}
	}
	for _, run := range runs {
		r := w.amigate(t, run.env, run.args...)
		if r.code != run.code { // the run must be the case it stands for
			t.Errorf("%s: exit %d, want %d: %s", run.name, r.code, run.code, lastLines(r.stderr))
		}
		scan(run.name+": stdout", r.stdout)
		scan(run.name+": stderr", r.stderr)
	}
	// A run interrupted mid-way.
	p := w.start(t, withEnv, w.checkArgs(green, "--test-launch", "asg", "--report", filepath.Join(dir, "interrupted.json"))...)
	time.Sleep(150 * time.Millisecond)
	_ = p.cmd.Process.Signal(os.Interrupt)
	p.wait(time.Minute)
	scan("interrupted: stdout", p.stdout.String())
	scan("interrupted: stderr", p.stderr.String())
	files, _ := filepath.Glob(filepath.Join(dir, "*.*"))
	for _, f := range files {
		if f == creds {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		scan(filepath.Base(f), string(data))
	}
	report("secrets (env and credentials file): %d outputs and reports scanned over %d runs: %d leaks", scanned, len(runs)+1, leaks)
}
