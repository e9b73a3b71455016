package awsim

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestNetworkTagsAndTemplateVersions(t *testing.T) {
	s, url := startSim(t)
	s.SetRetryBackoff(0)
	ctx := context.Background()
	ec := ec2.NewFromConfig(config(url, target))
	regions, err := ec.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	if err != nil || len(regions.Regions) < 3 {
		t.Fatalf("DescribeRegions: %v", err)
	}
	zs, err := ec.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{})
	if err != nil || aws.ToString(zs.AvailabilityZones[0].ZoneName) != "us-east-1a" {
		t.Fatalf("DescribeAvailabilityZones: %v", err)
	}
	vpcs, err := ec.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
	if err != nil || len(vpcs.Vpcs) != 1 || !aws.ToBool(vpcs.Vpcs[0].IsDefault) {
		t.Fatalf("DescribeVpcs: %v", err)
	}
	subnets, err := ec.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil || len(subnets.Subnets) != 3 || aws.ToString(subnets.Subnets[0].VpcId) != aws.ToString(vpcs.Vpcs[0].VpcId) {
		t.Fatalf("DescribeSubnets: %v", err)
	}
	if _, err := ec.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-00000000000000000"}}); apiCode(err) != "InvalidSubnetID.NotFound" {
		t.Errorf("missing subnet: %v", err)
	}

	_, amiID := bakeImage(t, url)
	lt, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String("ami-0123456789abcdef0"), InstanceType: ec2types.InstanceTypeT3Micro}})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := ec.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId, SourceVersion: aws.String("1"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(amiID)}})
	if err != nil || aws.ToInt64(v2.LaunchTemplateVersion.VersionNumber) != 2 || v2.LaunchTemplateVersion.LaunchTemplateData.InstanceType != ec2types.InstanceTypeT3Micro {
		t.Fatalf("CreateLaunchTemplateVersion: %v %+v", err, v2)
	}
	vs, err := ec.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId, Versions: []string{"$Latest"}})
	if err != nil || len(vs.LaunchTemplateVersions) != 1 || aws.ToString(vs.LaunchTemplateVersions[0].LaunchTemplateData.ImageId) != amiID {
		t.Fatalf("DescribeLaunchTemplateVersions: %v %+v", err, vs)
	}
	if _, err := ec.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{aws.ToString(lt.LaunchTemplate.LaunchTemplateId)}, Tags: []ec2types.Tag{{Key: aws.String("amigate:run-id"), Value: aws.String("r1")}}}); err != nil {
		t.Fatal(err)
	}
	tags, err := ec.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []ec2types.Filter{{Name: aws.String("key"), Values: []string{"amigate:*"}}}})
	if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Value) != "r1" || tags.Tags[0].ResourceType != ec2types.ResourceTypeLaunchTemplate {
		t.Fatalf("DescribeTags: %v %+v", err, tags)
	}

	// A group on $Latest launches the shared AMI of version 2 (the world's
	// key policy does not allow the target, so it fails, as in AWS).
	as := autoscaling.NewFromConfig(config(url, target))
	if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("tmp"), MinSize: aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(1),
		VPCZoneIdentifier: subnets.Subnets[0].SubnetId, LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId, Version: aws.String("$Latest")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := as.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []astypes.Tag{{ResourceId: aws.String("tmp"), ResourceType: aws.String("auto-scaling-group"), Key: aws.String("amigate:run-id"), Value: aws.String("r1")}}}); err != nil {
		t.Fatal(err)
	}
	acts, err := as.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("tmp")})
	if err != nil || len(acts.Activities) == 0 || acts.Activities[0].StatusCode != astypes.ScalingActivityStatusCodeFailed {
		t.Fatalf("activities: %v %+v", err, acts)
	}
	inst, err := as.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{})
	if err != nil || len(inst.AutoScalingInstances) != 0 {
		t.Fatalf("DescribeAutoScalingInstances: %v %+v", err, inst)
	}
	if _, err := ec.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId}); err != nil {
		t.Fatal(err)
	}
	if _, err := ec.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{aws.ToString(lt.LaunchTemplate.LaunchTemplateId)}}); apiCode(err) != "InvalidLaunchTemplateId.NotFound" {
		t.Errorf("deleted template still described: %v", err)
	}
	// The group outlives its template, as in AWS.
	if g, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{}); err != nil || len(g.AutoScalingGroups) != 1 {
		t.Errorf("DescribeAutoScalingGroups after the template is gone: %v", err)
	}
}
