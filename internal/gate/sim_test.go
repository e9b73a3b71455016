package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amigate/packer-plugin-amigate/internal/awsapi"
	"github.com/amigate/packer-plugin-amigate/internal/awsim"
	"github.com/amigate/packer-plugin-amigate/internal/awsim/simtest"
)

// The accounts of the tests: the first write-up's source and target, and a
// second target.
const (
	owner   = "444455556666"
	target  = "111122223333"
	target2 = "777788889999"
)

// defaultPolicy is the key policy KMS gives a new key: only the owner.
const defaultPolicy = `{
  "Version": "2012-10-17",
  "Id": "key-default-1",
  "Statement": [
    {
      "Sid": "Enable IAM User Permissions",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
      "Action": "kms:*",
      "Resource": "*"
    }
  ]
}`

// writeup1Policy is the first write-up's key policy: the target account may
// use the key and create grants for AWS resources, the AMI is shared, and
// its Auto Scaling group still cannot launch.
const writeup1Policy = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "Allow use of the key", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:root"]},
     "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"], "Resource": "*"},
    {"Sid": "Allow attachment of persistent resources", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:root"]},
     "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*",
     "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}
  ]
}`

// testWorld describes a simulated world: the source account's key and
// AMIs, and targets with a role amigate can assume and Auto Scaling groups.
type testWorld struct {
	policy   string   // the source key's policy; "" is KMS's default
	regions  []string // where the AMI exists; default us-east-1
	key      string   // the image's key alias; default alias/golden-ami
	targets  []string // accounts with an "amigate" role; default target
	shared   []string // accounts the AMI is already shared with
	groups   map[string]string
	suffixes map[string]string // account → custom suffix of its Auto Scaling service-linked role
	// noServiceLinkedRole leaves the targets without their default Auto
	// Scaling role, as accounts that never had a group are.
	noServiceLinkedRole bool
	// externalID, when set, is the sts:ExternalId the targets' roles
	// require.
	externalID string
	// rolePolicy is the targets' roles' own policy; "" allows everything.
	rolePolicy string
	// organizations are the world file's organizations (docs/sim.md).
	organizations json.RawMessage
}

type sim struct {
	*awsim.Server
	url string
	// setup is the number of calls made to set the world up.
	setup int
}

// startWorld starts the simulator with the world loaded.
func startWorld(t testing.TB, w testWorld) *sim {
	t.Helper()
	if len(w.regions) == 0 {
		w.regions = []string{"us-east-1"}
	}
	if w.key == "" {
		w.key = "alias/golden-ami"
	}
	if w.targets == nil {
		w.targets = []string{target}
	}
	var doc struct {
		Organizations      json.RawMessage  `json:"organizations,omitempty"`
		Roles              []map[string]any `json:"roles"`
		ServiceLinkedRoles []map[string]any `json:"service_linked_roles"`
		Keys               []map[string]any `json:"keys"`
		Images             []map[string]any `json:"images"`
		LaunchTemplates    []map[string]any `json:"launch_templates"`
		AutoScalingGroups  []map[string]any `json:"autoscaling_groups"`
	}
	doc.Organizations = w.organizations
	condition := ""
	if w.externalID != "" {
		condition = `,"Condition":{"StringEquals":{"sts:ExternalId":"` + w.externalID + `"}}`
	}
	rolePolicy := w.rolePolicy
	if rolePolicy == "" {
		rolePolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`
	}
	for _, acct := range w.targets {
		doc.Roles = append(doc.Roles, map[string]any{"account": acct, "name": "amigate",
			"trust_policy": json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + owner + `:root"},"Action":"sts:AssumeRole"` + condition + `}]}`),
			"policies":     map[string]any{"gate": json.RawMessage(rolePolicy)}})
	}
	if !w.noServiceLinkedRole {
		for _, acct := range w.targets {
			doc.ServiceLinkedRoles = append(doc.ServiceLinkedRoles, map[string]any{"account": acct})
		}
	}
	for acct, suffix := range w.suffixes {
		doc.ServiceLinkedRoles = append(doc.ServiceLinkedRoles, map[string]any{"account": acct, "custom_suffix": suffix})
	}
	for _, region := range w.regions {
		doc.Keys = append(doc.Keys, map[string]any{"account": owner, "region": region, "alias": "alias/golden-ami"})
		img := map[string]any{"account": owner, "region": region, "name": "golden", "launch_permissions": append([]string{}, w.shared...)}
		if w.key != "none" {
			img["key"] = w.key
		}
		doc.Images = append(doc.Images, img)
		for acct, group := range w.groups {
			doc.LaunchTemplates = append(doc.LaunchTemplates, map[string]any{"account": acct, "region": region, "name": group, "image": "golden", "image_owner": owner, "instance_type": "t3.micro"})
			g := map[string]any{"account": acct, "region": region, "name": group, "launch_template": group, "min": 0, "max": 2, "desired": 0}
			if suffix := w.suffixes[acct]; suffix != "" {
				g["service_linked_role_arn"] = "arn:aws:iam::" + acct + ":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling_" + suffix
			}
			doc.AutoScalingGroups = append(doc.AutoScalingGroups, g)
		}
	}
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	s := awsim.New()
	s.SetRetryBackoff(0)
	if err := s.LoadWorld(bytes.NewReader(data)); err != nil {
		t.Fatalf("load world: %v\n%s", err, data)
	}
	sm := &sim{Server: s, url: simtest.Serve(t, s)}
	// The policy is put through KMS so that its bytes stay as written (the
	// world file would re-encode it).
	policy := w.policy
	if policy == "" {
		policy = defaultPolicy
	}
	for _, region := range w.regions {
		if _, err := kms.NewFromConfig(sm.config(owner, region)).PutKeyPolicy(context.Background(), &kms.PutKeyPolicyInput{
			KeyId: aws.String("alias/golden-ami"), PolicyName: aws.String("default"), Policy: aws.String(policy)}); err != nil {
			t.Fatalf("put key policy: %v", err)
		}
	}
	sm.setup = len(s.Calls())
	return sm
}

// sessions returns the source account's sessions against the simulator.
func (s *sim) sessions(t testing.TB) *awsapi.Session {
	t.Helper()
	sess, err := awsapi.New(context.Background(), awsapi.Settings{Region: "us-east-1", AccessKey: "SIM" + owner, SecretKey: "x", Endpoint: s.url, RetryMaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

// config is an aws.Config acting as an account's root, for checks made
// outside the gate.
func (s *sim) config(account, region string) aws.Config {
	return aws.Config{Region: region, BaseEndpoint: aws.String(s.url),
		Credentials: credentials.NewStaticCredentialsProvider("SIM"+account, "x", "")}
}

// mutations returns the mutating calls the simulator has seen since start.
func (s *sim) mutations() []string {
	var out []string
	for _, c := range s.Calls()[s.setup:] {
		if c.Mutating {
			out = append(out, c.Service+":"+c.Action)
		}
	}
	return out
}

// callsOf lists the actions of one service the simulator has seen since
// start.
func (s *sim) callsOf(service string) []string {
	var out []string
	for _, c := range s.Calls()[s.setup:] {
		if c.Service == service {
			out = append(out, c.Action)
		}
	}
	return out
}

// imageIDs reads the AMIs of the world, by region.
func (s *sim) imageIDs(t testing.TB, regions ...string) map[string]string {
	t.Helper()
	if len(regions) == 0 {
		regions = []string{"us-east-1"}
	}
	out := map[string]string{}
	for _, r := range regions {
		out[r] = s.describeGolden(t, r)
	}
	return out
}

// baseOptions are the post-processor's defaults for one target with a role.
func baseOptions(amis map[string]string, targets ...Target) Options {
	if len(targets) == 0 {
		targets = []Target{{AccountID: target, RoleARN: "arn:aws:iam::" + target + ":role/amigate"}}
	}
	return Options{AMIs: amis, Targets: targets, ShareImage: true, KeyPolicy: KeyPolicyPatch, CreateGrants: true,
		TestLaunch: TestLaunchNone, TestLaunchTimeout: 10 * time.Minute}
}

// run runs the gate and fails the test on error; the progress lines are
// logged.
func run(t *testing.T, s *sim, opts Options) *Report {
	t.Helper()
	rep, err := Run(context.Background(), opts, s.sessions(t), func(line string) { t.Log(line) })
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return rep
}

func codesOf(rep *Report) string {
	var codes []string
	for _, f := range rep.Findings {
		codes = append(codes, f.Code)
	}
	for _, tr := range rep.Targets {
		for _, p := range tr.Paths {
			for _, f := range p.Findings {
				codes = append(codes, tr.Account+"/"+string(p.Path)+":"+f.Code)
			}
		}
	}
	return strings.Join(codes, ",")
}

func (s *sim) describeGolden(t testing.TB, region string) string {
	t.Helper()
	out, err := ec2.NewFromConfig(s.config(owner, region)).DescribeImages(context.Background(), &ec2.DescribeImagesInput{
		Owners: []string{"self"}, Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{"golden"}}}})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("golden image in %s: %v", region, err)
	}
	return aws.ToString(out.Images[0].ImageId)
}
