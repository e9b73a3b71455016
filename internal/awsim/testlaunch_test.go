package awsim

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// What a test launch and its cleanup need: tags given at creation, filters
// by tag, idempotent launches, groups that launch a given template version
// and leave their instances in EC2, and deleting launch template versions.

// publicAMI is the region's public, unencrypted source image: launches of
// it succeed for any account.
func publicAMI(t *testing.T, ec *ec2.Client) string {
	t.Helper()
	out, err := ec.DescribeImages(context.Background(), &ec2.DescribeImagesInput{Owners: []string{"amazon"},
		Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{PublicImageName}}}})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("public image: %v %+v", err, out)
	}
	return aws.ToString(out.Images[0].ImageId)
}

// ownAMI registers an unencrypted image in the caller's account.
func ownAMI(t *testing.T, ec *ec2.Client, name string) string {
	t.Helper()
	ctx := context.Background()
	vol, err := ec.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(8)})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := ec.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	img, err := ec.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String(name), RootDeviceName: aws.String("/dev/xvda"),
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &ec2types.EbsBlockDevice{SnapshotId: snap.SnapshotId}}}})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(img.ImageId)
}

func tagMap[T any](tags []T, kv func(T) (string, string)) map[string]string {
	out := map[string]string{}
	for _, t := range tags {
		k, v := kv(t)
		out[k] = v
	}
	return out
}

func ec2Tags(tags []ec2types.Tag) map[string]string {
	return tagMap(tags, func(t ec2types.Tag) (string, string) { return aws.ToString(t.Key), aws.ToString(t.Value) })
}

func instancesOf(out *ec2.DescribeInstancesOutput) []ec2types.Instance {
	var all []ec2types.Instance
	for _, r := range out.Reservations {
		all = append(all, r.Instances...)
	}
	return all
}

func groupNames(out *autoscaling.DescribeAutoScalingGroupsOutput) []string {
	var names []string
	for _, g := range out.AutoScalingGroups {
		names = append(names, aws.ToString(g.AutoScalingGroupName))
	}
	sort.Strings(names)
	return names
}

func filter(name string, values ...string) ec2types.Filter {
	return ec2types.Filter{Name: aws.String(name), Values: values}
}

func asFilter(name string, values ...string) astypes.Filter {
	return astypes.Filter{Name: aws.String(name), Values: values}
}

// A group's tags: given at creation, described with their resource,
// filtered on (AND across filters, OR within one), and copied to the
// instances it launches when they propagate at launch; the instances are
// EC2 instances in the group's subnets; ForceDelete terminates them.
func TestGroupTagsFiltersPropagationAndForceDelete(t *testing.T) {
	s, url := startSim(t)
	s.SetRetryBackoff(0)
	ctx := context.Background()
	ec := ec2.NewFromConfig(config(url, target))
	as := autoscaling.NewFromConfig(config(url, target))
	ami := publicAMI(t, ec)
	subnets, err := ec.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil {
		t.Fatal(err)
	}
	subnetA, subnetB := aws.ToString(subnets.Subnets[0].SubnetId), aws.ToString(subnets.Subnets[1].SubnetId)
	lt, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami), InstanceType: ec2types.InstanceTypeT3Micro,
			TagSpecifications: []ec2types.LaunchTemplateTagSpecificationRequest{{ResourceType: ec2types.ResourceTypeInstance,
				Tags: []ec2types.Tag{{Key: aws.String("team"), Value: aws.String("web")}, {Key: aws.String("run"), Value: aws.String("from-template")}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	tag := func(k, v string, propagate bool) astypes.Tag {
		return astypes.Tag{Key: aws.String(k), Value: aws.String(v), PropagateAtLaunch: aws.Bool(propagate),
			ResourceId: aws.String("amigate-test"), ResourceType: aws.String("auto-scaling-group")}
	}
	if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("amigate-test"),
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId, Version: aws.String("$Latest")},
		MinSize:        aws.Int32(0), MaxSize: aws.Int32(2), DesiredCapacity: aws.Int32(2), VPCZoneIdentifier: aws.String(subnetA + "," + subnetB),
		Tags: []astypes.Tag{tag("amigate:run-id", "r1", true), tag("run", "r1", true), tag("owner", "ops", false)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("other"),
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("web")}, MinSize: aws.Int32(0), MaxSize: aws.Int32(1),
		AvailabilityZones: []string{"us-east-1c"}, Tags: []astypes.Tag{{Key: aws.String("owner"), Value: aws.String("dev")}}}); err != nil {
		t.Fatal(err)
	}

	// The group's tags, with their resource.
	g, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"amigate-test"}})
	if err != nil || len(g.AutoScalingGroups) != 1 {
		t.Fatalf("DescribeAutoScalingGroups: %v %+v", err, g)
	}
	group := g.AutoScalingGroups[0]
	if len(group.Tags) != 3 {
		t.Fatalf("tags: %+v", group.Tags)
	}
	for _, td := range group.Tags {
		if aws.ToString(td.ResourceId) != "amigate-test" || aws.ToString(td.ResourceType) != "auto-scaling-group" ||
			aws.ToBool(td.PropagateAtLaunch) != (aws.ToString(td.Key) != "owner") {
			t.Errorf("tag %+v", td)
		}
	}
	if got := strings.Join(group.AvailabilityZones, ","); got != "us-east-1a,us-east-1b" {
		t.Errorf("zones of the group's subnets: %s", got)
	}

	// Filters: AND across filters, OR within one's values.
	for _, c := range []struct {
		filters []astypes.Filter
		names   []string
		want    string
	}{
		{[]astypes.Filter{asFilter("tag-key", "amigate:run-id")}, nil, "amigate-test"},
		{[]astypes.Filter{asFilter("tag-key", "owner")}, nil, "amigate-test,other"},
		{[]astypes.Filter{asFilter("tag-value", "dev", "nothing")}, nil, "other"},
		{[]astypes.Filter{asFilter("tag:owner", "ops", "dev")}, nil, "amigate-test,other"},
		{[]astypes.Filter{asFilter("tag:owner", "ops", "dev"), asFilter("tag-key", "run")}, nil, "amigate-test"},
		{[]astypes.Filter{asFilter("tag:amigate:run-id", "r2")}, nil, ""},
		{[]astypes.Filter{asFilter("tag-key", "owner")}, []string{"other"}, "other"},
	} {
		out, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{Filters: c.filters, AutoScalingGroupNames: c.names})
		if err != nil || strings.Join(groupNames(out), ",") != c.want {
			t.Errorf("filters %+v, names %v: %v %v, want %q", c.filters, c.names, err, groupNames(out), c.want)
		}
	}
	if _, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{Filters: []astypes.Filter{asFilter("name", "x")}}); apiCode(err) != "ValidationError" {
		t.Errorf("an unknown filter: %v", err)
	}

	// The group's instances are EC2 instances, in its subnets, with the
	// template's instance tags and the group's propagated ones (the group's
	// win), and aws:autoscaling:groupName.
	if len(group.Instances) != 2 {
		t.Fatalf("group instances: %+v", group.Instances)
	}
	runs, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{filter("tag:amigate:run-id", "r1")}})
	if err != nil || len(instancesOf(runs)) != 2 {
		t.Fatalf("DescribeInstances by tag: %v %+v", err, runs)
	}
	seen := map[string]bool{}
	for _, in := range instancesOf(runs) {
		tags := ec2Tags(in.Tags)
		if tags["run"] != "r1" || tags["team"] != "web" || tags["aws:autoscaling:groupName"] != "amigate-test" || tags["owner"] != "" {
			t.Errorf("instance tags %v", tags)
		}
		if in.State.Name != ec2types.InstanceStateNameRunning || aws.ToString(in.ImageId) != ami || in.InstanceType != ec2types.InstanceTypeT3Micro {
			t.Errorf("instance %s %s %s", in.State.Name, aws.ToString(in.ImageId), in.InstanceType)
		}
		seen[aws.ToString(in.SubnetId)+" "+aws.ToString(in.Placement.AvailabilityZone)] = true
	}
	if !seen[subnetA+" us-east-1a"] || !seen[subnetB+" us-east-1b"] {
		t.Errorf("instances not spread over the group's subnets: %v", seen)
	}
	for _, gi := range group.Instances {
		if gi.LaunchTemplate == nil || aws.ToString(gi.LaunchTemplate.Version) != "1" || aws.ToString(gi.LaunchTemplate.LaunchTemplateName) != "web" {
			t.Errorf("group instance launch template %+v", gi.LaunchTemplate)
		}
	}

	// An instance terminated in EC2 is replaced, as the EC2 health check does.
	gone := aws.ToString(group.Instances[0].InstanceId)
	if _, err := ec.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{gone}}); err != nil {
		t.Fatal(err)
	}
	g, err = as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"amigate-test"}})
	if err != nil || len(g.AutoScalingGroups[0].Instances) != 2 || aws.ToString(g.AutoScalingGroups[0].Instances[0].InstanceId) == gone {
		t.Fatalf("after a termination: %v %+v", err, g.AutoScalingGroups[0].Instances)
	}
	acts, err := as.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("amigate-test")})
	if err != nil || !strings.Contains(aws.ToString(acts.Activities[1].Description), "Terminating EC2 instance: "+gone) {
		t.Errorf("activities: %v %+v", err, acts)
	}

	// Deleting a group with instances needs ForceDelete, which terminates them.
	if _, err := as.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("amigate-test")}); apiCode(err) != "ResourceInUse" {
		t.Fatalf("delete without ForceDelete: %v", err)
	}
	if _, err := as.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("amigate-test"), ForceDelete: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	live, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{filter("tag:aws:autoscaling:groupName", "amigate-test"),
		filter("instance-state-name", "pending", "running", "stopping", "stopped")}})
	if err != nil || len(instancesOf(live)) != 0 {
		t.Fatalf("instances left running: %v %+v", err, live)
	}
	dead, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{filter("tag:aws:autoscaling:groupName", "amigate-test")}})
	if err != nil || len(instancesOf(dead)) != 3 {
		t.Fatalf("terminated instances still described: %v %+v", err, dead)
	}
	for _, in := range instancesOf(dead) {
		if in.State.Name != ec2types.InstanceStateNameTerminated || len(in.BlockDeviceMappings) != 0 {
			t.Errorf("instance %s after ForceDelete: %s, %d volumes", aws.ToString(in.InstanceId), in.State.Name, len(in.BlockDeviceMappings))
		}
	}
	if out, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"amigate-test"}}); err != nil || len(out.AutoScalingGroups) != 0 {
		t.Errorf("deleted group still described: %v", err)
	}
	if _, err := as.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("amigate-test"), ForceDelete: aws.Bool(true)}); apiCode(err) != "ValidationError" {
		t.Errorf("deleting a group that does not exist: %v", err)
	}
	if _, err := as.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("amigate-test"), MaxSize: aws.Int32(3)}); apiCode(err) != "ValidationError" {
		t.Errorf("updating a group that does not exist: %v", err)
	}
}

// A group's launch that fails on the key leaves the instance in EC2,
// terminated with Client.InternalError as RunInstances' failures do, and
// tagged like the group's other instances.
func TestGroupFailedLaunchShowsInEC2(t *testing.T) {
	s, url := startSim(t)
	s.SetRetryBackoff(0)
	ctx := context.Background()
	_, amiID := bakeImage(t, url) // the default key policy: the target cannot use the key
	ec := ec2.NewFromConfig(config(url, target))
	as := autoscaling.NewFromConfig(config(url, target))
	lt, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("golden"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(amiID)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("tmp"),
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId}, MinSize: aws.Int32(0), MaxSize: aws.Int32(1),
		DesiredCapacity: aws.Int32(1), AvailabilityZones: []string{"us-east-1b"},
		Tags: []astypes.Tag{{Key: aws.String("amigate:run-id"), Value: aws.String("r9"), PropagateAtLaunch: aws.Bool(true)}}}); err != nil {
		t.Fatal(err)
	}
	out, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{filter("tag:amigate:run-id", "r9")}})
	if err != nil || len(instancesOf(out)) != 1 {
		t.Fatalf("DescribeInstances: %v %+v", err, out)
	}
	in := instancesOf(out)[0]
	if in.State.Name != ec2types.InstanceStateNameTerminated || in.StateReason == nil || aws.ToString(in.StateReason.Code) != "Client.InternalError" ||
		aws.ToString(in.StateReason.Message) != "Client.InternalError: Client error on launch" || aws.ToString(in.Placement.AvailabilityZone) != "us-east-1b" {
		t.Fatalf("failed group launch: %s %+v %s", in.State.Name, in.StateReason, aws.ToString(in.Placement.AvailabilityZone))
	}
	acts, err := as.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("tmp")})
	if err != nil || !strings.Contains(aws.ToString(acts.Activities[len(acts.Activities)-1].Description), aws.ToString(in.InstanceId)) {
		t.Errorf("the activity does not name the instance: %v %+v", err, acts)
	}
	// The failed instance is not the group's: it deletes without ForceDelete.
	if _, err := as.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("tmp")}); err != nil {
		t.Errorf("DeleteAutoScalingGroup: %v", err)
	}
}

// A group launches the image of the template version it names: a number
// stays on that version, $Latest follows new versions, $Default (or no
// version) the default one. Unknown templates and versions are AWS's
// ValidationErrors.
func TestGroupLaunchesItsTemplateVersion(t *testing.T) {
	s, url := startSim(t)
	s.SetRetryBackoff(0)
	ctx := context.Background()
	ec := ec2.NewFromConfig(config(url, target))
	as := autoscaling.NewFromConfig(config(url, target))
	v1AMI, v2AMI, v3AMI := publicAMI(t, ec), ownAMI(t, ec, "v2"), ownAMI(t, ec, "v3")
	lt, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(v1AMI)}})
	if err != nil {
		t.Fatal(err)
	}
	ltID := lt.LaunchTemplate.LaunchTemplateId
	if _, err := ec.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateId: ltID, SourceVersion: aws.String("1"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(v2AMI)}}); err != nil {
		t.Fatal(err)
	}
	launched := func(name string) string {
		t.Helper()
		out, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{filter("tag:aws:autoscaling:groupName", name)}})
		if err != nil {
			t.Fatal(err)
		}
		var images []string
		for _, in := range instancesOf(out) {
			images = append(images, aws.ToString(in.ImageId))
		}
		return strings.Join(images, ",")
	}
	for i, c := range []struct {
		version *string
		want    string
	}{{aws.String("1"), v1AMI}, {aws.String("2"), v2AMI}, {aws.String("$Latest"), v2AMI}, {aws.String("$Default"), v1AMI}, {nil, v1AMI}} {
		name := "g" + string(rune('0'+i))
		if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String(name),
			LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: ltID, Version: c.version},
			MinSize:        aws.Int32(1), MaxSize: aws.Int32(2), AvailabilityZones: []string{"us-east-1a"}}); err != nil {
			t.Fatal(err)
		}
		if got := launched(name); got != c.want {
			t.Errorf("version %s launched %s, want %s", aws.ToString(c.version), got, c.want)
		}
	}
	// A MixedInstancesPolicy's launch template works the same way; the
	// first override's instance type is launched.
	if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("mixed"),
		MixedInstancesPolicy: &astypes.MixedInstancesPolicy{LaunchTemplate: &astypes.LaunchTemplate{
			LaunchTemplateSpecification: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("web"), Version: aws.String("2")},
			Overrides:                   []astypes.LaunchTemplateOverrides{{InstanceType: aws.String("c5.large")}, {InstanceType: aws.String("m5.large")}}}},
		MinSize: aws.Int32(1), MaxSize: aws.Int32(1), AvailabilityZones: []string{"us-east-1a"}}); err != nil {
		t.Fatal(err)
	}
	mixed, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"mixed"}})
	if err != nil || mixed.AutoScalingGroups[0].LaunchTemplate != nil || mixed.AutoScalingGroups[0].MixedInstancesPolicy == nil ||
		aws.ToString(mixed.AutoScalingGroups[0].MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification.LaunchTemplateId) != aws.ToString(ltID) {
		t.Errorf("a MixedInstancesPolicy group: %v %+v", err, mixed)
	}
	if got := launched("mixed"); got != v2AMI {
		t.Errorf("the MixedInstancesPolicy group launched %s", got)
	}
	if o := mixed.AutoScalingGroups[0].MixedInstancesPolicy.LaunchTemplate.Overrides; len(o) != 2 || aws.ToString(o[1].InstanceType) != "m5.large" {
		t.Errorf("overrides %+v", o)
	}
	if in := mixed.AutoScalingGroups[0].Instances; len(in) != 1 || aws.ToString(in[0].InstanceType) != "c5.large" {
		t.Errorf("the MixedInstancesPolicy group's instances %+v, want one c5.large", in)
	}
	// A new version: the group on 2 stays there, the one on $Latest follows.
	if _, err := ec.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateId: ltID, SourceVersion: aws.String("2"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(v3AMI)}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"g1", "g2"} {
		if _, err := as.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String(name), DesiredCapacity: aws.Int32(2)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := launched("g1"); got != v2AMI+","+v2AMI {
		t.Errorf("the group on version 2 launched %s", got)
	}
	if got := launched("g2"); got != v2AMI+","+v3AMI {
		t.Errorf("the group on $Latest launched %s", got)
	}

	for _, c := range []struct {
		spec astypes.LaunchTemplateSpecification
		want string
	}{
		{astypes.LaunchTemplateSpecification{LaunchTemplateId: ltID, Version: aws.String("7")}, "Could not find the specified version 7"},
		{astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String("lt-0123456789abcdef0")}, "The specified launch template, with template ID lt-0123456789abcdef0, does not exist."},
		{astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("nope")}, "with template name nope, does not exist."},
		{astypes.LaunchTemplateSpecification{Version: aws.String("1")}, "Valid requests must contain either launchTemplateId or LaunchTemplateName"},
	} {
		_, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("bad"), LaunchTemplate: &c.spec,
			MinSize: aws.Int32(0), MaxSize: aws.Int32(1), AvailabilityZones: []string{"us-east-1a"}})
		if apiCode(err) != "ValidationError" || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CreateAutoScalingGroup with %+v: %v, want a ValidationError saying %q", c.spec, err, c.want)
		}
	}
	if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("bad"),
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: ltID}, MinSize: aws.Int32(0), MaxSize: aws.Int32(1),
		VPCZoneIdentifier: aws.String("subnet-00000000000000000")}); apiCode(err) != "ValidationError" {
		t.Errorf("a subnet that does not exist: %v", err)
	}
	if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("bad"),
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: ltID}, MinSize: aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(2),
		AvailabilityZones: []string{"us-east-1a"}}); apiCode(err) != "ValidationError" {
		t.Errorf("desired above max: %v", err)
	}
}

// RunInstances: tags for the instance and its volumes, a subnet, MaxCount
// instances in one reservation, and ClientToken's idempotency.
// DescribeInstances: tagSet and the filters cleanup uses.
func TestRunInstancesTagsSubnetClientTokenAndFilters(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	ec := ec2.NewFromConfig(config(url, target))
	ami := publicAMI(t, ec)
	subnets, err := ec.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: nil})
	if err != nil {
		t.Fatal(err)
	}
	subnet := subnets.Subnets[1] // us-east-1b
	tags := []ec2types.Tag{{Key: aws.String("amigate:run-id"), Value: aws.String("r1")}, {Key: aws.String("amigate:created-by"), Value: aws.String("amigate")}}
	in := &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(2), InstanceType: ec2types.InstanceTypeT3Micro,
		SubnetId: subnet.SubnetId, ClientToken: aws.String("amigate-r1-us-east-1-1"),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: tags}, {ResourceType: ec2types.ResourceTypeVolume, Tags: tags[:1]}}}
	first, err := ec.RunInstances(ctx, in)
	if err != nil || len(first.Instances) != 2 {
		t.Fatalf("RunInstances: %v %+v", err, first)
	}
	for _, i := range first.Instances {
		if aws.ToString(i.SubnetId) != aws.ToString(subnet.SubnetId) || aws.ToString(i.Placement.AvailabilityZone) != "us-east-1b" ||
			aws.ToString(i.VpcId) != aws.ToString(subnet.VpcId) || ec2Tags(i.Tags)["amigate:run-id"] != "r1" || aws.ToString(i.ClientToken) != "amigate-r1-us-east-1-1" {
			t.Errorf("launched instance %+v", i)
		}
	}
	// The same request again: the same reservation, nothing launched.
	again, err := ec.RunInstances(ctx, in)
	if err != nil || aws.ToString(again.ReservationId) != aws.ToString(first.ReservationId) || len(again.Instances) != 2 ||
		aws.ToString(again.Instances[0].InstanceId) != aws.ToString(first.Instances[0].InstanceId) {
		t.Fatalf("RunInstances again: %v %+v, first %+v", err, again, first)
	}
	all, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	if err != nil || len(all.Reservations) != 1 || len(all.Reservations[0].Instances) != 2 ||
		aws.ToString(all.Reservations[0].ReservationId) != aws.ToString(first.ReservationId) {
		t.Fatalf("DescribeInstances after the repeat: %v %+v", err, all)
	}
	// The token with another request.
	other := *in
	other.MaxCount = aws.Int32(1)
	if _, err := ec.RunInstances(ctx, &other); apiCode(err) != "IdempotentParameterMismatch" {
		t.Errorf("the token with other parameters: %v", err)
	}
	// The volumes have the volume tags.
	volID := aws.ToString(all.Reservations[0].Instances[0].BlockDeviceMappings[0].Ebs.VolumeId)
	vt, err := ec.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []ec2types.Filter{filter("resource-id", volID)}})
	if err != nil || len(vt.Tags) != 1 || aws.ToString(vt.Tags[0].Key) != "amigate:run-id" || vt.Tags[0].ResourceType != ec2types.ResourceTypeVolume {
		t.Errorf("volume tags: %v %+v", err, vt)
	}

	// Another instance, untagged, then stopped; one terminated.
	plain, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	plainID := aws.ToString(plain.Instances[0].InstanceId)
	if aws.ToString(plain.Instances[0].Placement.AvailabilityZone) != "us-east-1a" || aws.ToString(plain.Instances[0].SubnetId) != aws.ToString(subnets.Subnets[0].SubnetId) {
		t.Errorf("default placement: %+v", plain.Instances[0].Placement)
	}
	if _, err := ec.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{plainID}}); err != nil {
		t.Fatal(err)
	}
	doomed := aws.ToString(first.Instances[1].InstanceId)
	if _, err := ec.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{doomed}}); err != nil {
		t.Fatal(err)
	}
	ids := func(filters ...ec2types.Filter) string {
		t.Helper()
		out, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: filters})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, i := range instancesOf(out) {
			got = append(got, aws.ToString(i.InstanceId))
		}
		sort.Strings(got)
		return strings.Join(got, ",")
	}
	kept, tagged := aws.ToString(first.Instances[0].InstanceId), []string{aws.ToString(first.Instances[0].InstanceId), doomed}
	sort.Strings(tagged)
	for _, c := range []struct {
		filters []ec2types.Filter
		want    string
	}{
		{[]ec2types.Filter{filter("tag:amigate:run-id", "r1")}, strings.Join(tagged, ",")},
		{[]ec2types.Filter{filter("tag:amigate:run-id", "r2", "r*")}, strings.Join(tagged, ",")},
		{[]ec2types.Filter{filter("tag:amigate:run-id", "r2")}, ""},
		{[]ec2types.Filter{filter("tag-key", "amigate:created-by")}, strings.Join(tagged, ",")},
		{[]ec2types.Filter{filter("tag-key", "amigate:*")}, strings.Join(tagged, ",")},
		{[]ec2types.Filter{filter("tag:amigate:run-id", "r1"), filter("instance-state-name", "pending", "running", "stopping", "stopped")}, kept},
		{[]ec2types.Filter{filter("instance-state-name", "stopped")}, plainID},
		{[]ec2types.Filter{filter("image-id", ami), filter("instance-state-name", "terminated")}, doomed},
		{[]ec2types.Filter{filter("image-id", "ami-0123456789abcdef0")}, ""},
	} {
		if got := ids(c.filters...); got != c.want {
			t.Errorf("filters %v: %s, want %s", c.filters, got, c.want)
		}
	}
	// Filters narrow the instances named too.
	out, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{plainID, kept}, Filters: []ec2types.Filter{filter("tag-key", "amigate:run-id")}})
	if err != nil || len(instancesOf(out)) != 1 || aws.ToString(instancesOf(out)[0].InstanceId) != kept {
		t.Errorf("ids and a filter: %v %+v", err, out)
	}

	for _, c := range []struct {
		in   ec2.RunInstancesInput
		code string
	}{
		{ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: aws.String("subnet-00000000000000000")}, "InvalidSubnetID.NotFound"},
		{ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeImage, Tags: tags}}}, "InvalidParameterValue"},
		{ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(2), MaxCount: aws.Int32(1)}, "InvalidParameterValue"},
	} {
		if _, err := ec.RunInstances(ctx, &c.in); apiCode(err) != c.code {
			t.Errorf("RunInstances %+v: %v, want %s", c.in, err, c.code)
		}
	}
}

// Launch templates: tags at creation and filters by tag and name; versions
// from a source version keep what they do not override, with their
// description; the versions resolve $Latest, $Default and numbers; versions
// are deleted one by one, the default one refused for itself only.
func TestLaunchTemplateTagsVersionsAndDeletion(t *testing.T) {
	s, url := startSim(t)
	ctx := context.Background()
	ec := ec2.NewFromConfig(config(url, target))
	ami, ami2 := publicAMI(t, ec), ownAMI(t, ec, "new")
	data := &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami), InstanceType: ec2types.InstanceTypeT3Micro, KeyName: aws.String("ops"),
		SecurityGroupIds: []string{"sg-0123456789abcdef0", "sg-0123456789abcdef1"}, UserData: aws.String("IyEvYmluL3NoCg=="),
		IamInstanceProfile: &ec2types.LaunchTemplateIamInstanceProfileSpecificationRequest{Name: aws.String("web")},
		BlockDeviceMappings: []ec2types.LaunchTemplateBlockDeviceMappingRequest{{DeviceName: aws.String("/dev/xvda"),
			Ebs: &ec2types.LaunchTemplateEbsBlockDeviceRequest{VolumeSize: aws.Int32(20), Encrypted: aws.Bool(true)}}},
		TagSpecifications: []ec2types.LaunchTemplateTagSpecificationRequest{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{{Key: aws.String("team"), Value: aws.String("web")}}}}}
	lt, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"), VersionDescription: aws.String("first"), LaunchTemplateData: data,
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeLaunchTemplate, Tags: []ec2types.Tag{{Key: aws.String("amigate:run-id"), Value: aws.String("r1")}}}}})
	if err != nil || ec2Tags(lt.LaunchTemplate.Tags)["amigate:run-id"] != "r1" {
		t.Fatalf("CreateLaunchTemplate: %v %+v", err, lt)
	}
	ltID := lt.LaunchTemplate.LaunchTemplateId
	if _, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("dbs"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami)},
		TagSpecifications:  []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeLaunchTemplate, Tags: []ec2types.Tag{{Key: aws.String("owner"), Value: aws.String("dba")}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("bad"), LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami)},
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}}}); apiCode(err) != "InvalidParameterValue" {
		t.Errorf("CreateLaunchTemplate tagging an instance: %v", err)
	}

	templates := func(in *ec2.DescribeLaunchTemplatesInput) (string, error) {
		out, err := ec.DescribeLaunchTemplates(ctx, in)
		if err != nil {
			return "", err
		}
		var names []string
		for _, t := range out.LaunchTemplates {
			names = append(names, aws.ToString(t.LaunchTemplateName))
		}
		return strings.Join(names, ","), nil
	}
	for _, c := range []struct {
		filters []ec2types.Filter
		want    string
	}{
		{nil, "dbs,web"},
		{[]ec2types.Filter{filter("tag:amigate:run-id", "r1")}, "web"},
		{[]ec2types.Filter{filter("tag-key", "owner", "amigate:run-id")}, "dbs,web"},
		{[]ec2types.Filter{filter("tag-key", "owner"), filter("launch-template-name", "w*")}, ""},
		{[]ec2types.Filter{filter("launch-template-name", "dbs")}, "dbs"},
	} {
		if got, err := templates(&ec2.DescribeLaunchTemplatesInput{Filters: c.filters}); err != nil || got != c.want {
			t.Errorf("DescribeLaunchTemplates %v: %v %q, want %q", c.filters, err, got, c.want)
		}
	}
	d, err := ec.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{aws.ToString(ltID)}})
	if err != nil || len(d.LaunchTemplates) != 1 || ec2Tags(d.LaunchTemplates[0].Tags)["amigate:run-id"] != "r1" {
		t.Errorf("DescribeLaunchTemplates tags: %v %+v", err, d)
	}
	if _, err := templates(&ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{aws.ToString(ltID), "lt-0123456789abcdef0"}}); apiCode(err) != "InvalidLaunchTemplateId.NotFound" {
		t.Errorf("an id that does not exist: %v", err)
	}
	if _, err := templates(&ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"nope"}}); apiCode(err) != "InvalidLaunchTemplateName.NotFoundException" {
		t.Errorf("a name that does not exist: %v", err)
	}

	// Version 2 from version 1: a new image, everything else kept.
	v2, err := ec.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateId: ltID, SourceVersion: aws.String("1"),
		VersionDescription: aws.String("amigate test launch r1"), LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami2)}})
	if err != nil {
		t.Fatal(err)
	}
	got := v2.LaunchTemplateVersion
	gd := got.LaunchTemplateData
	if aws.ToInt64(got.VersionNumber) != 2 || aws.ToString(got.VersionDescription) != "amigate test launch r1" || aws.ToBool(got.DefaultVersion) ||
		aws.ToString(gd.ImageId) != ami2 || gd.InstanceType != ec2types.InstanceTypeT3Micro || aws.ToString(gd.KeyName) != "ops" ||
		strings.Join(gd.SecurityGroupIds, ",") != "sg-0123456789abcdef0,sg-0123456789abcdef1" || aws.ToString(gd.UserData) != "IyEvYmluL3NoCg==" ||
		gd.IamInstanceProfile == nil || aws.ToString(gd.IamInstanceProfile.Name) != "web" ||
		len(gd.BlockDeviceMappings) != 1 || aws.ToInt32(gd.BlockDeviceMappings[0].Ebs.VolumeSize) != 20 || !aws.ToBool(gd.BlockDeviceMappings[0].Ebs.Encrypted) ||
		len(gd.TagSpecifications) != 1 || gd.TagSpecifications[0].ResourceType != ec2types.ResourceTypeInstance || ec2Tags(gd.TagSpecifications[0].Tags)["team"] != "web" {
		t.Fatalf("version 2 does not keep version 1's data: %+v %+v", got, gd)
	}
	// Version 3 without a source: only what it names.
	v3, err := ec.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami2), SecurityGroupIds: []string{"sg-0123456789abcdef2"}}})
	if err != nil || aws.ToInt64(v3.LaunchTemplateVersion.VersionNumber) != 3 || v3.LaunchTemplateVersion.LaunchTemplateData.InstanceType != "" ||
		aws.ToString(v3.LaunchTemplateVersion.LaunchTemplateData.KeyName) != "" || len(v3.LaunchTemplateVersion.LaunchTemplateData.SecurityGroupIds) != 1 {
		t.Fatalf("version 3 without a source version: %v %+v", err, v3)
	}
	// SourceVersion is a version number.
	for _, src := range []string{"$Latest", "$Default", "9"} {
		if _, err := ec.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateId: ltID, SourceVersion: aws.String(src),
			LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami)}}); apiCode(err) != "InvalidLaunchTemplateId.VersionNotFound" {
			t.Errorf("SourceVersion %s: %v", src, err)
		}
	}
	if _, err := ec.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateId: aws.String("lt-0123456789abcdef0"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami)}}); apiCode(err) != "InvalidLaunchTemplateId.NotFound" {
		t.Errorf("a version of a template that does not exist: %v", err)
	}

	versions := func(id *string, wanted ...string) (string, error) {
		out, err := ec.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: id, Versions: wanted})
		if err != nil {
			return "", err
		}
		var nums []string
		for _, v := range out.LaunchTemplateVersions {
			nums = append(nums, strconv.FormatInt(aws.ToInt64(v.VersionNumber), 10)+":"+aws.ToString(v.VersionDescription))
		}
		return strings.Join(nums, ","), nil
	}
	for _, c := range []struct {
		wanted []string
		want   string
	}{
		{nil, "3:,2:amigate test launch r1,1:first"},
		{[]string{"$Latest"}, "3:"},
		{[]string{"$Default"}, "1:first"},
		{[]string{"2"}, "2:amigate test launch r1"},
		{[]string{"$Latest", "$Default", "3"}, "3:,1:first"},
	} {
		if got, err := versions(ltID, c.wanted...); err != nil || got != c.want {
			t.Errorf("DescribeLaunchTemplateVersions %v: %v %q, want %q", c.wanted, err, got, c.want)
		}
	}
	if _, err := versions(ltID, "9"); apiCode(err) != "InvalidLaunchTemplateId.VersionNotFound" {
		t.Errorf("a version that does not exist: %v", err)
	}
	if _, err := versions(aws.String("lt-0123456789abcdef0")); apiCode(err) != "InvalidLaunchTemplateId.NotFound" {
		t.Errorf("versions of a template that does not exist: %v", err)
	}

	// Deleting versions: the default one is refused for itself only.
	del, err := ec.DeleteLaunchTemplateVersions(ctx, &ec2.DeleteLaunchTemplateVersionsInput{LaunchTemplateId: ltID, Versions: []string{"1", "3", "9"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(del.SuccessfullyDeletedLaunchTemplateVersions) != 1 || aws.ToInt64(del.SuccessfullyDeletedLaunchTemplateVersions[0].VersionNumber) != 3 ||
		aws.ToString(del.SuccessfullyDeletedLaunchTemplateVersions[0].LaunchTemplateName) != "web" {
		t.Errorf("deleted: %+v", del.SuccessfullyDeletedLaunchTemplateVersions)
	}
	failed := map[int64]string{}
	for _, u := range del.UnsuccessfullyDeletedLaunchTemplateVersions {
		failed[aws.ToInt64(u.VersionNumber)] = string(u.ResponseError.Code)
	}
	if len(failed) != 2 || failed[1] != "launchTemplateVersionIsDefault" || failed[9] != string(ec2types.LaunchTemplateErrorCodeLaunchTemplateVersionDoesNotExist) {
		t.Errorf("not deleted: %v", failed)
	}
	if got, err := versions(ltID); err != nil || got != "2:amigate test launch r1,1:first" {
		t.Errorf("versions after the deletion: %v %q", err, got)
	}
	if got, err := versions(ltID, "$Latest"); err != nil || got != "2:amigate test launch r1" {
		t.Errorf("$Latest after deleting the latest: %v %q", err, got)
	}
	if _, err := versions(ltID, "3"); apiCode(err) != "InvalidLaunchTemplateId.VersionNotFound" {
		t.Errorf("a deleted version: %v", err)
	}
	if d, err := ec.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"web"}}); err != nil ||
		aws.ToInt64(d.LaunchTemplates[0].LatestVersionNumber) != 2 || aws.ToInt64(d.LaunchTemplates[0].DefaultVersionNumber) != 1 {
		t.Errorf("latest and default after the deletion: %v %+v", err, d)
	}
	// Version numbers are not reused.
	v4, err := ec.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateId: ltID, LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami)}})
	if err != nil || aws.ToInt64(v4.LaunchTemplateVersion.VersionNumber) != 4 {
		t.Errorf("the version after a deleted one: %v %+v", err, v4)
	}
	// A template that does not exist: each version reports it.
	gone, err := ec.DeleteLaunchTemplateVersions(ctx, &ec2.DeleteLaunchTemplateVersionsInput{LaunchTemplateId: aws.String("lt-0123456789abcdef0"), Versions: []string{"2"}})
	if err != nil || len(gone.UnsuccessfullyDeletedLaunchTemplateVersions) != 1 ||
		gone.UnsuccessfullyDeletedLaunchTemplateVersions[0].ResponseError.Code != ec2types.LaunchTemplateErrorCodeLaunchTemplateIdDoesNotExist {
		t.Errorf("versions of a template that does not exist: %v %+v", err, gone)
	}
	mutating := false
	for _, call := range s.Calls() {
		if call.Action == "DeleteLaunchTemplateVersions" {
			mutating = call.Mutating
		}
	}
	if !mutating {
		t.Error("DeleteLaunchTemplateVersions is not logged as mutating")
	}

	// Deleting the template takes its versions and tags with it.
	if _, err := ec.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: ltID}); err != nil {
		t.Fatal(err)
	}
	if _, err := versions(ltID); apiCode(err) != "InvalidLaunchTemplateId.NotFound" {
		t.Errorf("versions of a deleted template: %v", err)
	}
	if tags, err := ec.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []ec2types.Filter{filter("resource-id", aws.ToString(ltID))}}); err != nil || len(tags.Tags) != 0 {
		t.Errorf("a deleted template's tags: %v %+v", err, tags)
	}
}
