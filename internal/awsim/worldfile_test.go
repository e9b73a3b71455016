package awsim

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func TestExampleWorld(t *testing.T) {
	s, url := startSim(t)
	f, err := os.Open("../../example/sim-world.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.LoadWorld(f); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k, err := kms.NewFromConfig(config(url, owner)).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/golden-ami")})
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := ec2.NewFromConfig(config(url, target)).DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{owner}})
	if err != nil || len(imgs.Images) != 1 || aws.ToString(imgs.Images[0].Name) != "golden" {
		t.Fatalf("target sees %v %+v", err, imgs)
	}
	groups, err := autoscaling.NewFromConfig(config(url, target)).DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
	if err != nil || len(groups.AutoScalingGroups) != 1 || !strings.HasSuffix(aws.ToString(groups.AutoScalingGroups[0].ServiceLinkedRoleARN), "/AWSServiceRoleForAutoScaling") {
		t.Fatalf("groups: %v %+v", err, groups)
	}
	// The owner can assume the gate's role in the target.
	if _, err := sts.NewFromConfig(config(url, owner)).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::" + target + ":role/amigate"), RoleSessionName: aws.String("gate")}); err != nil {
		t.Errorf("AssumeRole: %v", err)
	}
	_ = k
}

func TestBadWorldChangesNothing(t *testing.T) {
	s, _ := startSim(t)
	for doc, want := range map[string]string{
		`{"keys":[{"account":"12","region":"us-east-1"}]}`: `keys[0]: account "12"`,
		`{"keys":[{"account":"444455556666","region":"us-east-1"}],"images":[{"account":"444455556666","region":"us-east-1","name":"x","key":"alias/none"}]}`: `images[0].key "alias/none"`,
		`{"kees":[]}`: `unknown field "kees"`,
	} {
		err := s.LoadWorld(strings.NewReader(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", doc, err, want)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.world.keys) != 0 {
		t.Errorf("a failed load left %d keys", len(s.world.keys))
	}
}
