// Package reliability_test measures whether a green from amigate means "will
// launch" under the conditions a golden-AMI factory meets: many builds
// gating on one key at once, AWS throttling and failing, builds cancelled or
// killed, bad input, and secrets in the environment. It runs the real
// `amigate` binary against the simulated AWS (internal/awsim, in-process)
// and checks AWS's state afterwards, not amigate's word.
//
// `go test ./test/reliability` (part of `make test`) runs a short form;
// `make reliability` runs the full one (AMIGATE_RELIABILITY=full) and prints
// one summary line per figure:
//
//	go test ./test/reliability -count=1 -v -timeout 60m   # with AMIGATE_RELIABILITY=full
package reliability_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amigate/packer-plugin-amigate/internal/awsim"
	"github.com/amigate/packer-plugin-amigate/internal/keylock"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

const (
	source = "444455556666"
	region = "us-east-1"
)

// full is set by AMIGATE_RELIABILITY=full (make reliability).
var full = os.Getenv("AMIGATE_RELIABILITY") == "full"

// size picks the full or the short count of a figure.
func size(fullN, shortN int) int {
	if full {
		return fullN
	}
	return shortN
}

// binary is the amigate command under test, built once.
var binary string

// summary collects one line per figure, printed after the tests.
var summary struct {
	sync.Mutex
	lines []string
}

func report(format string, args ...any) {
	summary.Lock()
	defer summary.Unlock()
	summary.lines = append(summary.lines, fmt.Sprintf(format, args...))
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "amigate-reliability")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "amigate")
	build := exec.Command("go", "build", "-o", binary, "github.com/amigate/packer-plugin-amigate/cmd/amigate")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build amigate:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	mode := "short"
	if full {
		mode = "full"
	}
	fmt.Printf("reliability (%s):\n", mode)
	sort.Strings(summary.lines)
	for _, l := range summary.lines {
		fmt.Println("  " + l)
	}
	os.Exit(code)
}

// world is a simulated AWS holding one encrypted golden AMI in the source
// account and targets, each with a role amigate assumes, the default Auto
// Scaling service-linked role and a group "web" whose template launches the
// AMI.
type world struct {
	sim     *awsim.Server
	url     string
	ami     string
	keyARN  string
	targets []string
	// ownerStatement is the key policy's own statement, which no run may
	// alter.
	ownerStatement string
}

// keyPolicy is the golden key's policy before any run: the owner's
// statement, and, per denied account, a Deny no patch may lift.
func keyPolicy(denied []string) string {
	stmts := []string{`    {
      "Sid": "Enable IAM User Permissions",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::` + source + `:root"},
      "Action": "kms:*",
      "Resource": "*"
    }`}
	for _, acct := range denied {
		stmts = append(stmts, `    {"Sid": "NoUseBy`+acct+`", "Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::`+acct+`:root"}, "Action": "kms:Decrypt", "Resource": "*"}`)
	}
	return "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n" + strings.Join(stmts, ",\n") + "\n  ]\n}"
}

// targetAccount is the i-th target's account id.
func targetAccount(i int) string { return fmt.Sprintf("1111222233%02d", i) }

func roleARN(account string) string { return "arn:aws:iam::" + account + ":role/amigate" }

// newWorld starts the simulator with n targets; denied targets cannot be
// made to launch (an explicit Deny in the key policy).
func newWorld(t *testing.T, n int, denied ...string) *world {
	t.Helper()
	type obj = map[string]any
	var roles, slrs, templates, groups []obj
	w := &world{}
	for i := range n {
		acct := targetAccount(i)
		w.targets = append(w.targets, acct)
		roles = append(roles, obj{"account": acct, "name": "amigate",
			"trust_policy": json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + source + `:root"},"Action":"sts:AssumeRole"}]}`),
			"policies":     obj{"gate": json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)}})
		slrs = append(slrs, obj{"account": acct})
		templates = append(templates, obj{"account": acct, "region": region, "name": "web", "image": "golden", "image_owner": source, "instance_type": "t3.micro"})
		groups = append(groups, obj{"account": acct, "region": region, "name": "web", "launch_template": "web", "min": 0, "max": 2, "desired": 0})
	}
	doc, err := json.Marshal(obj{"roles": roles, "service_linked_roles": slrs, "launch_templates": templates, "autoscaling_groups": groups,
		"keys":   []obj{{"account": source, "region": region, "alias": "alias/golden-ami"}},
		"images": []obj{{"account": source, "region": region, "name": "golden", "key": "alias/golden-ami"}}})
	if err != nil {
		t.Fatal(err)
	}
	w.sim = awsim.New()
	w.sim.SetRetryBackoff(0)
	if err := w.sim.LoadWorld(bytes.NewReader(doc)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if w.url, err = w.sim.Start(ctx, "127.0.0.1:0"); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = w.sim.Close() })
	policy := keyPolicy(denied)
	w.ownerStatement = policy[strings.Index(policy, "    {") : strings.Index(policy, "    }")+len("    }")]
	kc := kms.NewFromConfig(w.config(source))
	out, err := kc.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String("alias/golden-ami"), PolicyName: aws.String("default"), Policy: aws.String(policy)})
	if err != nil || out == nil {
		t.Fatal(err)
	}
	key, err := kc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/golden-ami")})
	if err != nil {
		t.Fatal(err)
	}
	w.keyARN = aws.ToString(key.KeyMetadata.Arn)
	imgs, err := ec2.NewFromConfig(w.config(source)).DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"},
		Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{"golden"}}}})
	if err != nil || len(imgs.Images) != 1 {
		t.Fatalf("golden image: %v", err)
	}
	w.ami = aws.ToString(imgs.Images[0].ImageId)
	return w
}

// config acts as an account's root in the simulator.
func (w *world) config(account string) aws.Config {
	return aws.Config{Region: region, BaseEndpoint: aws.String(w.url), Credentials: credentials.NewStaticCredentialsProvider("SIM"+account, "x", "")}
}

// env is the environment of an amigate process acting as the source
// account against the simulator, isolated from the machine's AWS files.
func (w *world) env(t *testing.T, extra ...string) []string {
	dir := t.TempDir()
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"AWS_ENDPOINT_URL=" + w.url, "AWS_REGION=" + region, "AWS_ACCESS_KEY_ID=SIM" + source, "AWS_SECRET_ACCESS_KEY=x",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true"}
	return append(base, extra...)
}

// result is one amigate process's outcome.
type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// amigate runs the binary to completion.
func (w *world) amigate(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	if exit, ok := err.(*exec.ExitError); ok {
		r.code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("run amigate %v: %v", args, err)
	}
	return r
}

// checkArgs are a gate run for one target, with its role and group.
func (w *world) checkArgs(account string, extra ...string) []string {
	args := []string{"check", "--ami", w.ami, "--target", account, "--target-role", account + "=" + roleARN(account), "--asg", account + "=web"}
	return append(args, extra...)
}

// mutations counts the simulator's successful mutating calls.
func (w *world) mutations() int {
	n := 0
	for _, c := range w.sim.Calls() {
		if c.Mutating && c.Status == 200 {
			n++
		}
	}
	return n
}

// percentile of durations, p in [0, 1].
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// launchable checks, from AWS's state, what a green promises a target: the
// AMI shared with it, and the key's policy and grants letting its Auto
// Scaling role and its principals launch it.
func (w *world) launchable(account string) error {
	ctx := context.Background()
	attr, err := ec2.NewFromConfig(w.config(source)).DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{
		ImageId: aws.String(w.ami), Attribute: ec2types.ImageAttributeNameLaunchPermission})
	if err != nil {
		return err
	}
	shared := false
	for _, p := range attr.LaunchPermissions {
		shared = shared || aws.ToString(p.UserId) == account
	}
	if !shared {
		return fmt.Errorf("%s: the AMI is not shared with it", account)
	}
	key, err := w.key()
	if err != nil {
		return err
	}
	v := keypolicy.Check(key, []keypolicy.Target{{Account: account}})
	if !v.OK {
		var codes []string
		for _, p := range v.Targets[0].Paths {
			for _, f := range p.Findings {
				codes = append(codes, string(p.Path)+":"+f.Code)
			}
		}
		return fmt.Errorf("%s: the key does not let it launch (%s)", account, strings.Join(codes, ", "))
	}
	return nil
}

// key reads the golden key's policy and grants from KMS.
func (w *world) key() (keypolicy.Key, error) {
	ctx := context.Background()
	kc := kms.NewFromConfig(w.config(source))
	pol, err := kc.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(w.keyARN), PolicyName: aws.String("default")})
	if err != nil {
		return keypolicy.Key{}, err
	}
	p, err := keypolicy.Parse([]byte(aws.ToString(pol.Policy)))
	if err != nil {
		return keypolicy.Key{}, err
	}
	key := keypolicy.Key{ARN: w.keyARN, Manager: "CUSTOMER", State: "Enabled", Policy: p}
	grants, err := kc.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(w.keyARN)})
	if err != nil {
		return keypolicy.Key{}, err
	}
	for _, g := range grants.Grants {
		kg := keypolicy.Grant{ID: aws.ToString(g.GrantId), Name: aws.ToString(g.Name), GranteePrincipal: aws.ToString(g.GranteePrincipal)}
		for _, op := range g.Operations {
			kg.Operations = append(kg.Operations, string(op))
		}
		key.Grants = append(key.Grants, kg)
	}
	return key, nil
}

// policyText is the golden key's policy as KMS holds it.
func (w *world) policyText(t *testing.T) string {
	t.Helper()
	out, err := kms.NewFromConfig(w.config(source)).GetKeyPolicy(context.Background(), &kms.GetKeyPolicyInput{KeyId: aws.String(w.keyARN), PolicyName: aws.String("default")})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Policy)
}

// leftovers lists what runs left behind: lock aliases, test-launch groups,
// instances still running, launch template versions beyond the first.
func (w *world) leftovers(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	aliases, err := kms.NewFromConfig(w.config(source)).ListAliases(ctx, &kms.ListAliasesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range aliases.Aliases {
		// A takeover's tombstone is the lock protocol's own record, kept
		// for three leases (keylock's tests check that it is collected).
		if name := aws.ToString(a.AliasName); strings.HasPrefix(name, keylock.Prefix) && !strings.Contains(name, "/takeover/") {
			out = append(out, "alias "+name)
		}
	}
	for _, acct := range w.targets {
		cfg := w.config(acct)
		groups, err := autoscaling.NewFromConfig(cfg).DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range groups.AutoScalingGroups {
			if name := aws.ToString(g.AutoScalingGroupName); name != "web" {
				out = append(out, acct+" group "+name)
			}
		}
		ec := ec2.NewFromConfig(cfg)
		insts, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
			{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range insts.Reservations {
			for _, in := range r.Instances {
				out = append(out, acct+" instance "+aws.ToString(in.InstanceId))
			}
		}
		versions, err := ec.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateName: aws.String("web")})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range versions.LaunchTemplateVersions {
			if aws.ToInt64(v.VersionNumber) != 1 {
				out = append(out, fmt.Sprintf("%s launch template version %d", acct, aws.ToInt64(v.VersionNumber)))
			}
		}
	}
	return out
}
