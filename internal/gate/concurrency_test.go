package gate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amigate/packer-plugin-amigate/internal/awsim"
	"github.com/amigate/packer-plugin-amigate/internal/keylock"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// launchable checks, from AWS's state after the runs, what a green verdict
// promises an account: the AMI shared with it, and the key's policy and
// grants letting it launch on every default path.
func (s *sim) launchable(t *testing.T, region, ami, account string) error {
	t.Helper()
	ctx := context.Background()
	attr, err := ec2.NewFromConfig(s.config(owner, region)).DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{
		ImageId: aws.String(ami), Attribute: ec2types.ImageAttributeNameLaunchPermission})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(attr.LaunchPermissions, func(p ec2types.LaunchPermission) bool { return aws.ToString(p.UserId) == account }) {
		return fmt.Errorf("%s: the AMI is not shared with it", account)
	}
	key := s.readKey(t, region)
	v := keypolicy.Check(key, []keypolicy.Target{{Account: account}})
	if !v.OK {
		var codes []string
		for _, p := range v.Targets[0].Paths {
			for _, f := range p.Findings {
				codes = append(codes, string(p.Path)+":"+f.Code)
			}
		}
		return fmt.Errorf("%s: the key no longer lets it launch (%s)", account, strings.Join(codes, ", "))
	}
	return nil
}

// readKey reads the golden key's policy and grants as KMS has them.
func (s *sim) readKey(t *testing.T, region string) keypolicy.Key {
	t.Helper()
	ctx := context.Background()
	kc := kms.NewFromConfig(s.config(owner, region))
	d, err := kc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/golden-ami")})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(d.KeyMetadata.Arn)
	text, err := getKeyPolicy(ctx, kc, arn)
	if err != nil {
		t.Fatal(err)
	}
	p, err := keypolicy.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	grants, err := listGrants(ctx, kc, arn)
	if err != nil {
		t.Fatal(err)
	}
	return keypolicy.Key{ARN: arn, Manager: "CUSTOMER", State: "Enabled", Policy: p, Grants: grants}
}

// Eight runs gating one AMI on one key at once, each for its own target:
// every run is green and every target can launch afterwards, with the
// key policy's other statement byte for byte as it was (issue 11).
func TestEightGatesOnOneKeyLoseNothing(t *testing.T) {
	for _, latency := range []int{0, 50} {
		t.Run(fmt.Sprintf("kms latency %d ms", latency), func(t *testing.T) {
			var targets []string
			groups := map[string]string{}
			for i := range 8 {
				acct := fmt.Sprintf("1111222233%02d", i)
				targets = append(targets, acct)
				groups[acct] = "web"
			}
			s := startWorld(t, testWorld{targets: targets, groups: groups})
			s.SetFaults(awsim.Faults{Service: "kms", LatencyMS: latency})
			amis := s.imageIDs(t)
			reports := make([]*Report, len(targets))
			errs := make([]error, len(targets))
			var wg sync.WaitGroup
			for i, acct := range targets {
				wg.Add(1)
				go func() {
					defer wg.Done()
					opts := baseOptions(amis, Target{AccountID: acct, RoleARN: roleARN(acct), AutoScalingGroups: []string{"web"}})
					reports[i], errs[i] = Run(context.Background(), opts, s.sessions(t), nil)
				}()
			}
			wg.Wait()
			waited := false
			for i, acct := range targets {
				if errs[i] != nil || !reports[i].OK {
					t.Fatalf("run for %s: error %v, verdict %s", acct, errs[i], codesOf(reports[i]))
				}
				for _, kp := range reports[i].Changes.KeyPolicies {
					waited = waited || kp.LockWaitMS > 0
				}
			}
			for _, acct := range targets {
				if err := s.launchable(t, "us-east-1", amis["us-east-1"], acct); err != nil {
					t.Errorf("after 8 green runs: %v", err)
				}
			}
			owners := defaultPolicy[strings.Index(defaultPolicy, "    {") : strings.Index(defaultPolicy, "    }")+len("    }")]
			if policy := s.keyPolicy(t, "us-east-1"); !strings.Contains(policy, owners) {
				t.Errorf("the owner's statement was rewritten:\n%s", policy)
			}
			if !waited {
				t.Error("no run waited for the lock: the runs did not overlap, so this proves nothing")
			}
			out, err := kms.NewFromConfig(s.config(owner, "us-east-1")).ListAliases(context.Background(), &kms.ListAliasesInput{})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range out.Aliases {
				if strings.HasPrefix(aws.ToString(a.AliasName), keylock.Prefix) {
					t.Errorf("lock alias left behind: %s", aws.ToString(a.AliasName))
				}
			}
		})
	}
}
