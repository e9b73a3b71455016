package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	examples "github.com/amigate/packer-plugin-amigate/example"
	"github.com/amigate/packer-plugin-amigate/internal/awsapi"
	"github.com/amigate/packer-plugin-amigate/internal/awsim"
	"github.com/amigate/packer-plugin-amigate/internal/gate"
	"github.com/amigate/packer-plugin-amigate/internal/report"
)

// The demo's accounts: example/sim-world.json, the first reference write-up.
const (
	demoSource = "444455556666"
	demoTarget = "111122223333"
	demoRegion = "us-east-1"
)

// runDemo starts the simulated AWS with the first write-up's two accounts
// and shows the failure, the gate finding and fixing it, and the launch
// that then works. Nothing leaves this process.
func runDemo(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("amigate demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: amigate demo\n\n"+
			"Starts the simulated AWS in this process with the first reference write-up's\n"+
			"two accounts, shows the target's Auto Scaling group failing to launch the\n"+
			"shared AMI, the gate finding and fixing why, and the launch then working.\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitBadInput
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "amigate demo: unexpected argument %q\n", fs.Arg(0))
		return exitBadInput
	}
	if err := demo(ctx, stdout); err != nil {
		fmt.Fprintf(stderr, "amigate demo: %v\n", err)
		return exitRuntime
	}
	return exitOK
}

func demo(ctx context.Context, out io.Writer) error {
	sim := awsim.New()
	sim.SetRetryBackoff(0)
	if err := sim.LoadWorld(bytes.NewReader(examples.SimWorld)); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	url, err := sim.Start(ctx, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer sim.Close()
	as := func(account string) aws.Config {
		return aws.Config{Region: demoRegion, BaseEndpoint: aws.String(url), Credentials: credentials.NewStaticCredentialsProvider("SIM"+account, "demo", "")}
	}
	images, err := ec2.NewFromConfig(as(demoSource)).DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil || len(images.Images) != 1 {
		return fmt.Errorf("the demo world has no golden image: %v", err)
	}
	ami := aws.ToString(images.Images[0].ImageId)
	fmt.Fprintf(out, "The simulated AWS at %s holds the first reference write-up:\n", url)
	fmt.Fprintf(out, "  account %s baked %s, encrypted with its customer managed key alias/golden-ami,\n", demoSource, ami)
	fmt.Fprintf(out, "  shared it with account %s and let that account use the key in the key policy.\n\n", demoTarget)

	fmt.Fprintf(out, "1. Account %s's Auto Scaling group launches the image:\n", demoTarget)
	if err := demoLaunch(ctx, out, as(demoTarget), ami, "before"); err != nil {
		return err
	}

	fmt.Fprintf(out, "\n2. amigate check --ami %s --target %s --target-role %s=arn:aws:iam::%s:role/amigate --asg %s=web\n\n", ami, demoTarget, demoTarget, demoTarget, demoTarget)
	sess, err := awsapi.New(ctx, awsapi.Settings{Region: demoRegion, AccessKey: "SIM" + demoSource, SecretKey: "demo", Endpoint: url})
	if err != nil {
		return err
	}
	opts := gate.Options{
		AMIs:       map[string]string{demoRegion: ami},
		Targets:    []gate.Target{{AccountID: demoTarget, RoleARN: "arn:aws:iam::" + demoTarget + ":role/amigate", AutoScalingGroups: []string{"web"}}},
		ShareImage: true, KeyPolicy: gate.KeyPolicyPatch, CreateGrants: true, TestLaunch: gate.TestLaunchNone, TestLaunchTimeout: 1,
	}
	checkOnly := opts
	checkOnly.KeyPolicy, checkOnly.CreateGrants, checkOnly.DryRun = gate.KeyPolicyCheck, false, true
	rep, err := gate.Run(ctx, checkOnly, sess, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "   Without changing anything (--key-policy check --no-grants --dry-run), the verdict:")
	var summary bytes.Buffer
	report.WriteSummary(&summary, rep)
	for _, line := range strings.SplitAfter(summary.String(), "\n") {
		if line != "" {
			fmt.Fprint(out, "   "+line)
		}
	}

	fmt.Fprintln(out, "\n   And the gate itself, making the changes:")
	rep, err = gate.Run(ctx, opts, sess, func(line string) { fmt.Fprintln(out, "   "+line) })
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("the gate could not fix the demo world: %s", strings.Join(rep.Failures(), "; "))
	}

	fmt.Fprintf(out, "\n3. Account %s's Auto Scaling group launches the image again:\n", demoTarget)
	return demoLaunch(ctx, out, as(demoTarget), ami, "after")
}

// demoLaunch creates a group of one instance of ami in the target and
// prints the scaling activity.
func demoLaunch(ctx context.Context, out io.Writer, cfg aws.Config, ami, name string) error {
	lt, err := ec2.NewFromConfig(cfg).CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("demo-" + name),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami), InstanceType: ec2types.InstanceTypeT3Micro}})
	if err != nil {
		return err
	}
	as := autoscaling.NewFromConfig(cfg)
	if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("demo-" + name),
		MinSize: aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(1), AvailabilityZones: []string{demoRegion + "a"},
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId}}); err != nil {
		return err
	}
	acts, err := as.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("demo-" + name)})
	if err != nil || len(acts.Activities) == 0 {
		return fmt.Errorf("scaling activities: %v", err)
	}
	a := acts.Activities[0]
	mark := "✔"
	if a.StatusCode != astypes.ScalingActivityStatusCodeSuccessful {
		mark = "✘"
	}
	fmt.Fprintf(out, "   %s %s: %s\n", mark, a.StatusCode, aws.ToString(a.Description))
	if msg := aws.ToString(a.StatusMessage); msg != "" && !strings.Contains(aws.ToString(a.Description), msg) {
		fmt.Fprintf(out, "     %s\n", msg)
	}
	return nil
}
