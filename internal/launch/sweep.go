package launch

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// SweepEC2API is what a sweep calls on EC2.
type SweepEC2API interface {
	EC2API
	DescribeLaunchTemplates(context.Context, *ec2.DescribeLaunchTemplatesInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
}

// Leftover is a test-launch resource a run killed hard left behind.
type Leftover struct {
	Kind    string    `json:"kind"` // "autoscaling-group", "instance", "launch-template-version"
	ID      string    `json:"id"`
	RunID   string    `json:"run_id,omitempty"`
	Created time.Time `json:"created"`
	Deleted bool      `json:"deleted"`
}

// Sweep finds the test-launch resources of one account and region created
// before cutoff, by their amigate tags (and, for launch template
// versions, their description), and deletes them unless dryRun.
func Sweep(ctx context.Context, c SweepEC2API, as AutoScalingAPI, cutoff time.Time, dryRun bool) ([]Leftover, error) {
	var out []Leftover
	groups, err := sweepGroups(ctx, as, cutoff)
	if err != nil {
		return nil, err
	}
	instances, err := sweepInstances(ctx, c, cutoff)
	if err != nil {
		return nil, err
	}
	versions, err := sweepVersions(ctx, c, cutoff)
	if err != nil {
		return nil, err
	}
	out = append(append(append(out, groups...), instances...), versions...)
	if dryRun {
		return out, nil
	}
	for i := range out {
		l := &out[i]
		switch l.Kind {
		case "autoscaling-group":
			err = DeleteGroup(ctx, as, l.ID)
		case "instance":
			_, err = c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{l.ID}})
		case "launch-template-version":
			template, version, _ := strings.Cut(l.ID, ":")
			err = DeleteTemplateVersions(ctx, c, template, func(v ec2types.LaunchTemplateVersion) bool {
				return fmt.Sprint(aws.ToInt64(v.VersionNumber)) == version
			})
		}
		if err != nil {
			return out, fmt.Errorf("delete %s %s: %w", l.Kind, l.ID, err)
		}
		l.Deleted = true
	}
	return out, nil
}

func sweepGroups(ctx context.Context, as AutoScalingAPI, cutoff time.Time) ([]Leftover, error) {
	var out []Leftover
	pages := autoscaling.NewDescribeAutoScalingGroupsPaginator(as, &autoscaling.DescribeAutoScalingGroupsInput{
		Filters: []astypes.Filter{{Name: aws.String("tag-key"), Values: []string{TagRunID}}}})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("find test groups: %w", err)
		}
		for _, g := range page.AutoScalingGroups {
			tags := map[string]string{}
			for _, t := range g.Tags {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			if tags[TagCreatedBy] != CreatedBy {
				continue
			}
			created := createdAt(tags[TagCreatedAt], aws.ToTime(g.CreatedTime))
			if created.Before(cutoff) {
				out = append(out, Leftover{Kind: "autoscaling-group", ID: aws.ToString(g.AutoScalingGroupName), RunID: tags[TagRunID], Created: created})
			}
		}
	}
	return out, nil
}

func sweepInstances(ctx context.Context, c SweepEC2API, cutoff time.Time) ([]Leftover, error) {
	var out []Leftover
	pages := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + TagCreatedBy), Values: []string{CreatedBy}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}},
	}})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("find test instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				tags := map[string]string{}
				for _, t := range in.Tags {
					tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
				}
				created := createdAt(tags[TagCreatedAt], aws.ToTime(in.LaunchTime))
				if created.Before(cutoff) {
					out = append(out, Leftover{Kind: "instance", ID: aws.ToString(in.InstanceId), RunID: tags[TagRunID], Created: created})
				}
			}
		}
	}
	return out, nil
}

func sweepVersions(ctx context.Context, c SweepEC2API, cutoff time.Time) ([]Leftover, error) {
	var out []Leftover
	templates := ec2.NewDescribeLaunchTemplatesPaginator(c, &ec2.DescribeLaunchTemplatesInput{})
	for templates.HasMorePages() {
		page, err := templates.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list launch templates: %w", err)
		}
		for _, t := range page.LaunchTemplates {
			if aws.ToInt64(t.LatestVersionNumber) <= 1 {
				continue // a test version is never the first
			}
			id := aws.ToString(t.LaunchTemplateId)
			versions := ec2.NewDescribeLaunchTemplateVersionsPaginator(c, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(id)})
			for versions.HasMorePages() {
				vp, err := versions.NextPage(ctx)
				if err != nil {
					return nil, fmt.Errorf("list versions of launch template %s: %w", id, err)
				}
				for _, v := range vp.LaunchTemplateVersions {
					runID, ok := strings.CutPrefix(aws.ToString(v.VersionDescription), versionDescription(""))
					if !ok || aws.ToBool(v.DefaultVersion) || !aws.ToTime(v.CreateTime).Before(cutoff) {
						continue
					}
					out = append(out, Leftover{Kind: "launch-template-version", ID: fmt.Sprintf("%s:%d", id, aws.ToInt64(v.VersionNumber)), RunID: runID, Created: aws.ToTime(v.CreateTime)})
				}
			}
		}
	}
	return out, nil
}

// createdAt reads the amigate:created-at tag, else the creation time AWS
// gives.
func createdAt(tag string, fallback time.Time) time.Time {
	if t, err := time.Parse(time.RFC3339, tag); err == nil {
		return t
	}
	return fallback
}
