package launch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// Modes of a test launch.
const (
	ModeASG      = "asg"
	ModeInstance = "instance"
)

// EC2API is what a test launch calls on EC2, in the target.
type EC2API interface {
	RunInstances(context.Context, *ec2.RunInstancesInput, ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	DescribeLaunchTemplateVersions(context.Context, *ec2.DescribeLaunchTemplateVersionsInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
	CreateLaunchTemplateVersion(context.Context, *ec2.CreateLaunchTemplateVersionInput, ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateVersionOutput, error)
	DeleteLaunchTemplateVersions(context.Context, *ec2.DeleteLaunchTemplateVersionsInput, ...func(*ec2.Options)) (*ec2.DeleteLaunchTemplateVersionsOutput, error)
}

// AutoScalingAPI is what a test launch calls on Auto Scaling, in the target.
type AutoScalingAPI interface {
	DescribeAutoScalingGroups(context.Context, *autoscaling.DescribeAutoScalingGroupsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	CreateAutoScalingGroup(context.Context, *autoscaling.CreateAutoScalingGroupInput, ...func(*autoscaling.Options)) (*autoscaling.CreateAutoScalingGroupOutput, error)
	DeleteAutoScalingGroup(context.Context, *autoscaling.DeleteAutoScalingGroupInput, ...func(*autoscaling.Options)) (*autoscaling.DeleteAutoScalingGroupOutput, error)
	DescribeScalingActivities(context.Context, *autoscaling.DescribeScalingActivitiesInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeScalingActivitiesOutput, error)
}

// Request is one test launch.
type Request struct {
	Mode    string
	RunID   string
	Account string
	Region  string
	AMI     string
	// Group is the target's Auto Scaling group to clone (asg mode).
	Group string
	// InstanceType overrides the template's (asg) or is the instance's
	// (instance; default t3.micro).
	InstanceType string
	SubnetID     string
	Timeout      time.Duration
	// RetryKMSUntil: a launch failing on the key before this time is
	// waited on, not called red, since a grant this run created may not
	// have reached every KMS host yet.
	RetryKMSUntil time.Time
	// PollMin and PollMax bound the polling back-off (defaults 1 s, 10 s).
	PollMin, PollMax time.Duration
}

// Outcome is what a test launch saw.
type Outcome struct {
	Mode       string        `json:"mode"`
	Account    string        `json:"account"`
	Region     string        `json:"region"`
	Group      string        `json:"group,omitempty"`
	OK         bool          `json:"ok"`
	InstanceID string        `json:"instance_id,omitempty"`
	Started    time.Time     `json:"started"`
	Took       time.Duration `json:"took_ns"`
	// Reason is AWS's own words for a failure: the scaling activity's
	// status message or the instance's state reason.
	Reason string `json:"reason,omitempty"`
	// KMS tells whether the failure is one a key causes.
	KMS bool `json:"kms"`
	// WaitedForGrants is true when a KMS failure was retried because a
	// new grant may not have propagated yet.
	WaitedForGrants bool `json:"waited_for_grants"`
	// ServiceLinkedRole is the group's Auto Scaling role (asg mode).
	ServiceLinkedRole string `json:"service_linked_role,omitempty"`
}

// kmsReasons are the messages AWS gives when a launch fails on the key.
var kmsReasons = []string{
	"Client.InternalError",
	"inaccessible AWS KMS key",
	"Client.InvalidKMSKey.InvalidState",
	"KMS",
}

// IsKMSFailure tells whether AWS's message for a failed launch points at
// the key.
func IsKMSFailure(reason string) bool {
	for _, r := range kmsReasons {
		if strings.Contains(reason, r) {
			return true
		}
	}
	return false
}

// Launcher runs test launches in one target account and region.
type Launcher struct {
	EC2         EC2API
	AutoScaling AutoScalingAPI
	Say         func(string)
	// Now is the clock (tests).
	Now func() time.Time
}

func (l *Launcher) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Launcher) say(s string) {
	if l.Say != nil {
		l.Say(s)
	}
}

// Run launches req and waits for the outcome; cleanup receives every
// deletion the launch owes before the resource exists. The caller runs
// cleanup, also when Run fails.
func (l *Launcher) Run(ctx context.Context, req Request, cleanup *Cleanup) (Outcome, error) {
	if req.PollMin <= 0 {
		req.PollMin = time.Second
	}
	if req.PollMax < req.PollMin {
		req.PollMax = max(10*time.Second, req.PollMin)
	}
	out := Outcome{Mode: req.Mode, Account: req.Account, Region: req.Region, Group: req.Group, Started: l.now()}
	ctx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	var err error
	switch req.Mode {
	case ModeASG:
		err = l.runGroup(ctx, req, cleanup, &out)
	case ModeInstance:
		err = l.runInstance(ctx, req, cleanup, &out)
	default:
		err = fmt.Errorf("unknown test launch mode %q", req.Mode)
	}
	out.Took = l.now().Sub(out.Started)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil && !out.OK {
		out.Reason = fmt.Sprintf("no instance in service after %v (test_launch_timeout)%s", req.Timeout, suffix(out.Reason))
		return out, nil
	}
	return out, err
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return "; last failure: " + s
}

// tempName names the temporary group of a run.
func tempName(runID, group string) string {
	name := "amigate-" + runID + "-" + group
	if len(name) > 255 {
		name = name[:255]
	}
	return name
}

// versionDescription marks the launch template versions of a run.
func versionDescription(runID string) string { return "amigate test launch " + runID }

// runGroup clones the target's group: a new version of its launch template
// with the AMI, a temporary group using it with the group's subnets and
// service-linked role; then waits for an instance in service or a failed
// activity.
func (l *Launcher) runGroup(ctx context.Context, req Request, cleanup *Cleanup, out *Outcome) error {
	groups, err := l.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{req.Group}})
	if err != nil {
		return fmt.Errorf("read group %s in %s %s: %w", req.Group, req.Account, req.Region, err)
	}
	if len(groups.AutoScalingGroups) == 0 {
		return fmt.Errorf("read group %s in %s %s: no such group", req.Group, req.Account, req.Region)
	}
	g := groups.AutoScalingGroups[0]
	spec := g.LaunchTemplate
	if spec == nil && g.MixedInstancesPolicy != nil && g.MixedInstancesPolicy.LaunchTemplate != nil {
		spec = g.MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification
	}
	if spec == nil || aws.ToString(spec.LaunchTemplateId) == "" && aws.ToString(spec.LaunchTemplateName) == "" {
		return fmt.Errorf("group %s in %s %s has no launch template (launch configurations are not supported): use test_launch = \"instance\"", req.Group, req.Account, req.Region)
	}
	out.ServiceLinkedRole = aws.ToString(g.ServiceLinkedRoleARN)
	version := aws.ToString(spec.Version)
	if version == "" {
		version = "$Default"
	}
	versions, err := l.EC2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{
		LaunchTemplateId: spec.LaunchTemplateId, LaunchTemplateName: nameIfNoID(spec), Versions: []string{version}})
	if err != nil || len(versions.LaunchTemplateVersions) == 0 {
		return fmt.Errorf("read launch template version %s of group %s: %w", version, req.Group, errOrNone(err))
	}
	src := versions.LaunchTemplateVersions[0]
	templateID := aws.ToString(src.LaunchTemplateId)

	desc := versionDescription(req.RunID)
	cleanup.Add(fmt.Sprintf("launch template %s versions %q in %s %s", templateID, desc, req.Account, req.Region), func(ctx context.Context) error {
		return DeleteTemplateVersions(ctx, l.EC2, templateID, func(v ec2types.LaunchTemplateVersion) bool {
			return aws.ToString(v.VersionDescription) == desc
		})
	})
	data := &ec2types.RequestLaunchTemplateData{ImageId: aws.String(req.AMI)}
	if req.InstanceType != "" {
		data.InstanceType = ec2types.InstanceType(req.InstanceType)
	}
	var created *ec2.CreateLaunchTemplateVersionOutput
	err = settle(ctx, func(ctx context.Context) (err error) {
		created, err = l.EC2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
			LaunchTemplateId: aws.String(templateID), SourceVersion: aws.String(strconv.FormatInt(aws.ToInt64(src.VersionNumber), 10)),
			VersionDescription: aws.String(desc), LaunchTemplateData: data})
		return err
	})
	if err != nil {
		return fmt.Errorf("create a launch template version with %s for group %s: %w", req.AMI, req.Group, err)
	}
	newVersion := strconv.FormatInt(aws.ToInt64(created.LaunchTemplateVersion.VersionNumber), 10)

	name := tempName(req.RunID, req.Group)
	cleanup.Add(fmt.Sprintf("Auto Scaling group %s in %s %s", name, req.Account, req.Region), func(ctx context.Context) error {
		return DeleteGroup(ctx, l.AutoScaling, name)
	})
	in := &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(name),
		MinSize:              aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(1),
		ServiceLinkedRoleARN: g.ServiceLinkedRoleARN,
		Tags:                 groupTags(name, req.RunID, l.now()),
	}
	spec = &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(templateID), Version: aws.String(newVersion)}
	if overrides := cloneOverrides(g); len(overrides) > 0 && req.InstanceType == "" {
		// The group's instance types, which its template may not name.
		in.MixedInstancesPolicy = &astypes.MixedInstancesPolicy{LaunchTemplate: &astypes.LaunchTemplate{
			LaunchTemplateSpecification: spec, Overrides: overrides}}
	} else {
		in.LaunchTemplate = spec
	}
	if aws.ToString(g.VPCZoneIdentifier) != "" {
		in.VPCZoneIdentifier = g.VPCZoneIdentifier
	} else {
		in.AvailabilityZones = g.AvailabilityZones
	}
	if err := settle(ctx, func(ctx context.Context) error {
		_, err := l.AutoScaling.CreateAutoScalingGroup(ctx, in)
		return err
	}); err != nil {
		return fmt.Errorf("create the test group %s: %w", name, err)
	}
	l.say(fmt.Sprintf("test launch: group %s in %s %s clones %s with %s", name, req.Account, req.Region, req.Group, req.AMI))
	return l.waitGroup(ctx, req, name, out)
}

// cloneOverrides copies the instance types (or instance requirements) of
// a MixedInstancesPolicy group for its test clone. An override's own
// launch template is left out: the clone launches every type from the new
// version, with the new AMI. The group's instances distribution is not
// copied either, so the test instance is On-Demand: Spot capacity has no
// bearing on the keys.
func cloneOverrides(g astypes.AutoScalingGroup) []astypes.LaunchTemplateOverrides {
	if g.MixedInstancesPolicy == nil || g.MixedInstancesPolicy.LaunchTemplate == nil {
		return nil
	}
	var out []astypes.LaunchTemplateOverrides
	for _, o := range g.MixedInstancesPolicy.LaunchTemplate.Overrides {
		o.LaunchTemplateSpecification = nil
		out = append(out, o)
	}
	return out
}

func nameIfNoID(spec *astypes.LaunchTemplateSpecification) *string {
	if aws.ToString(spec.LaunchTemplateId) != "" {
		return nil
	}
	return spec.LaunchTemplateName
}

func errOrNone(err error) error {
	if err != nil {
		return err
	}
	return errors.New("no such version")
}

func groupTags(name, runID string, now time.Time) []astypes.Tag {
	var tags []astypes.Tag
	for k, v := range map[string]string{TagRunID: runID, TagCreatedBy: CreatedBy, TagCreatedAt: now.UTC().Format(time.RFC3339)} {
		tags = append(tags, astypes.Tag{Key: aws.String(k), Value: aws.String(v), ResourceId: aws.String(name),
			ResourceType: aws.String("auto-scaling-group"), PropagateAtLaunch: aws.Bool(true)})
	}
	return tags
}

// waitGroup polls the temporary group until an instance is in service, or
// an activity fails (and no grant may still be propagating).
func (l *Launcher) waitGroup(ctx context.Context, req Request, name string, out *Outcome) error {
	delay := req.PollMin
	seenFailed := map[string]bool{}
	for {
		if out.WaitedForGrants && !l.now().Before(req.RetryKMSUntil) {
			return nil // the grants had their time; the last failure stands
		}
		groups, err := l.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
		if err != nil {
			return fmt.Errorf("read the test group %s: %w", name, err)
		}
		for _, g := range groups.AutoScalingGroups {
			for _, in := range g.Instances {
				if in.LifecycleState == astypes.LifecycleStateInService {
					out.OK, out.InstanceID = true, aws.ToString(in.InstanceId)
					return nil
				}
			}
		}
		acts, err := l.AutoScaling.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("read the activities of the test group %s: %w", name, err)
		}
		for _, a := range acts.Activities {
			if a.StatusCode != astypes.ScalingActivityStatusCodeFailed || seenFailed[aws.ToString(a.ActivityId)] {
				continue
			}
			seenFailed[aws.ToString(a.ActivityId)] = true
			out.Reason = strings.TrimSpace(aws.ToString(a.StatusMessage))
			if out.Reason == "" {
				out.Reason = aws.ToString(a.Description)
			}
			out.InstanceID = instanceOf(aws.ToString(a.Description))
			out.KMS = IsKMSFailure(out.Reason)
			if !l.retryKMS(req, out) {
				return nil
			}
		}
		if err := sleep(ctx, delay); err != nil {
			return err
		}
		delay = min(delay*2, req.PollMax)
	}
}

// retryKMS tells whether to keep waiting after a KMS failure: a grant this
// run created may not have reached every KMS host yet (up to about five
// minutes), and Auto Scaling retries by itself.
func (l *Launcher) retryKMS(req Request, out *Outcome) bool {
	if !out.KMS || !l.now().Before(req.RetryKMSUntil) {
		return false
	}
	if !out.WaitedForGrants {
		l.say(fmt.Sprintf("! test launch in %s %s failed on the key (%s); a grant created moments ago may not have propagated yet: waiting until %s before calling it a failure",
			req.Account, req.Region, out.Reason, req.RetryKMSUntil.Format(time.TimeOnly)))
	}
	out.WaitedForGrants = true
	return true
}

// instanceOf reads the instance id from an activity description
// ("Launching a new EC2 instance: i-0123...").
func instanceOf(desc string) string {
	i := strings.Index(desc, "i-")
	if i < 0 {
		return ""
	}
	end := i + 2
	for end < len(desc) && strings.ContainsRune("0123456789abcdef", rune(desc[end])) {
		end++
	}
	return desc[i:end]
}

// settle makes a call that creates something and waits for AWS's answer
// even when ctx is cancelled (Ctrl-C), for at most settleWait: AWS may
// still apply a request whose answer the client gave up on, and what it
// made then would appear after the cleanup looked for it. The call's error,
// or else ctx's, is returned: a stopped run stops after the call.
func settle(ctx context.Context, call func(context.Context) error) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleWait)
	defer cancel()
	if err := call(sctx); err != nil {
		return err
	}
	return ctx.Err()
}

// settleWait bounds a creating call (retries included) a stopped run still
// waits for.
const settleWait = 30 * time.Second

// runInstance launches one instance of the AMI and waits for it to run or
// to be terminated.
func (l *Launcher) runInstance(ctx context.Context, req Request, cleanup *Cleanup, out *Outcome) error {
	cleanup.Add(fmt.Sprintf("instances tagged %s=%s in %s %s", TagRunID, req.RunID, req.Account, req.Region), func(ctx context.Context) error {
		return TerminateTagged(ctx, l.EC2, TagRunID, req.RunID)
	})
	typ := req.InstanceType
	if typ == "" {
		typ = "t3.micro"
	}
	for attempt := 1; ; attempt++ {
		in := &ec2.RunInstancesInput{
			ImageId: aws.String(req.AMI), InstanceType: ec2types.InstanceType(typ), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			ClientToken:       aws.String(fmt.Sprintf("amigate-%s-%s-%d", req.RunID, req.Region, attempt)),
			TagSpecifications: instanceTags(req.RunID, l.now()),
		}
		if req.SubnetID != "" {
			in.SubnetId = aws.String(req.SubnetID)
		}
		var run *ec2.RunInstancesOutput
		err := settle(ctx, func(ctx context.Context) (err error) {
			run, err = l.EC2.RunInstances(ctx, in)
			return err
		})
		if err != nil {
			return fmt.Errorf("run an instance of %s in %s %s: %w", req.AMI, req.Account, req.Region, err)
		}
		out.InstanceID = aws.ToString(run.Instances[0].InstanceId)
		if attempt == 1 {
			l.say(fmt.Sprintf("test launch: instance %s of %s in %s %s", out.InstanceID, req.AMI, req.Account, req.Region))
		}
		state, reason, err := l.waitInstance(ctx, req, out.InstanceID)
		if err != nil {
			return err
		}
		if state == ec2types.InstanceStateNameRunning {
			out.OK = true
			return nil
		}
		out.Reason, out.KMS = reason, IsKMSFailure(reason)
		if !l.retryKMS(req, out) {
			return nil
		}
		if err := sleep(ctx, req.PollMax); err != nil {
			return err
		}
	}
}

func instanceTags(runID string, now time.Time) []ec2types.TagSpecification {
	tags := []ec2types.Tag{
		{Key: aws.String(TagRunID), Value: aws.String(runID)},
		{Key: aws.String(TagCreatedBy), Value: aws.String(CreatedBy)},
		{Key: aws.String(TagCreatedAt), Value: aws.String(now.UTC().Format(time.RFC3339))},
	}
	return []ec2types.TagSpecification{
		{ResourceType: ec2types.ResourceTypeInstance, Tags: tags},
		{ResourceType: ec2types.ResourceTypeVolume, Tags: tags},
	}
}

// waitInstance waits, with the SDK's InstanceRunning waiter, until the
// instance runs or ends, and returns its state and state reason.
func (l *Launcher) waitInstance(ctx context.Context, req Request, id string) (ec2types.InstanceStateName, string, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = l.now().Add(req.Timeout)
	}
	waiter := ec2.NewInstanceRunningWaiter(l.EC2, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = req.PollMin, req.PollMax
	})
	in := &ec2.DescribeInstancesInput{InstanceIds: []string{id}}
	waitErr := waiter.Wait(ctx, in, time.Until(deadline))
	if ctx.Err() != nil {
		return "", "", ctx.Err()
	}
	// Running, or the waiter saw it end: read why.
	d, err := l.EC2.DescribeInstances(ctx, in)
	if err != nil {
		return "", "", fmt.Errorf("read instance %s: %w", id, err)
	}
	if len(d.Reservations) == 0 || len(d.Reservations[0].Instances) == 0 {
		return "", "", fmt.Errorf("read instance %s: %w", id, errors.Join(errors.New("not found"), waitErr))
	}
	inst := d.Reservations[0].Instances[0]
	if inst.State.Name == ec2types.InstanceStateNameRunning {
		return inst.State.Name, "", nil
	}
	reason := ""
	if inst.StateReason != nil {
		reason = strings.TrimSpace(aws.ToString(inst.StateReason.Code) + ": " + aws.ToString(inst.StateReason.Message))
	}
	if reason == "" && waitErr != nil {
		reason = waitErr.Error()
	}
	return inst.State.Name, reason, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func isCode(err error, codes ...string) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.ErrorCode() == c {
			return true
		}
	}
	return false
}
