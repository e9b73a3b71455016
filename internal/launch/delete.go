package launch

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// DeleteGroup force-deletes a group (terminating its instances); a group
// that does not exist is already deleted.
func DeleteGroup(ctx context.Context, as AutoScalingAPI, name string) error {
	_, err := as.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String(name), ForceDelete: aws.Bool(true)})
	if err != nil && !isCode(err, "ValidationError") { // "AutoScalingGroup name not found"
		return fmt.Errorf("delete group %s: %w", name, err)
	}
	return nil
}

// DeleteTemplateVersions deletes the versions of a launch template that
// match; the template's default version is never deleted.
func DeleteTemplateVersions(ctx context.Context, c EC2API, templateID string, match func(ec2types.LaunchTemplateVersion) bool) error {
	var doomed []string
	pages := ec2.NewDescribeLaunchTemplateVersionsPaginator(c, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(templateID)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if isCode(err, "InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateId.Malformed") {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list versions of launch template %s: %w", templateID, err)
		}
		for _, v := range page.LaunchTemplateVersions {
			if match(v) && !aws.ToBool(v.DefaultVersion) {
				doomed = append(doomed, strconv.FormatInt(aws.ToInt64(v.VersionNumber), 10))
			}
		}
	}
	if len(doomed) == 0 {
		return nil
	}
	out, err := c.DeleteLaunchTemplateVersions(ctx, &ec2.DeleteLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(templateID), Versions: doomed})
	if err != nil {
		return fmt.Errorf("delete versions %v of launch template %s: %w", doomed, templateID, err)
	}
	for _, u := range out.UnsuccessfullyDeletedLaunchTemplateVersions {
		if u.ResponseError != nil && u.ResponseError.Code != ec2types.LaunchTemplateErrorCodeLaunchTemplateVersionDoesNotExist {
			return fmt.Errorf("delete version %d of launch template %s: %s", aws.ToInt64(u.VersionNumber), templateID, aws.ToString(u.ResponseError.Message))
		}
	}
	return nil
}

// TerminateTagged terminates the instances carrying a tag that are not
// terminated yet.
func TerminateTagged(ctx context.Context, c EC2API, key, value string) error {
	var ids []string
	pages := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + key), Values: []string{value}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}},
	}})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("find instances tagged %s=%s: %w", key, value, err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				ids = append(ids, aws.ToString(in.InstanceId))
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		return fmt.Errorf("terminate %v: %w", ids, err)
	}
	return nil
}
