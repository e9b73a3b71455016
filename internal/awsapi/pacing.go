package awsapi

import (
	"context"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/time/rate"
)

// Pacing keeps amigate's calls under AWS's request quotas, so that a run
// over hundreds of targets is not throttled by its own calls: before each
// attempt (retries included) a call waits for a token of its quota's
// bucket, one bucket per service, quota group, charged account and region
// (account alone for the global IAM and Organizations), shared by every
// session and configuration of the process. The account charged is the
// caller's: AWS counts every request against the account of the
// credentials that signed it, KMS's cross-account requests included.
//
// The client keeps to AWS's rates, with buckets smaller than AWS's by what
// ArrivalJitter can bunch up: requests sent within the client's bucket
// reach AWS at most ArrivalJitter earlier or later than their neighbours,
// so they stay within AWS's bucket; a run of few calls is not slowed, its
// calls fit in the bucket, and a long run goes at the binding quota's rate
// (slower would idle, faster would be throttled). Throttles that other
// processes' calls cause in the same account are left to the retryer.
//
// The SDK's adaptive retry mode (retry.NewAdaptiveMode) does not replace
// this: its client-side rate limiter starts unlimited and only slows down
// after AWS has throttled, per client (not per account and quota), for
// every operation of the client at once; across hundreds of clients it
// learns nothing before the throttles it is meant to avoid.
//
// The figures are this package's reading of AWS's documents, kept apart
// from the simulator's (internal/awsim), so that a test can hold one
// against the other.

// ArrivalJitter bounds how much earlier or later than its neighbours a
// request can reach AWS than it was sent: two requests sent T apart arrive
// at least T - 2×ArrivalJitter apart, so the client's bucket leaves
// 2 × ArrivalJitter × rate tokens of AWS's free.
const ArrivalJitter = 25 * time.Millisecond

// pace is one of AWS's request quotas as the client reads it: its bucket,
// refill rate per second and the bucket's size.
type pace struct {
	group string
	rate  float64
	burst float64
	// global: one bucket per account for every region.
	global bool
}

// Where the figures come from: the KMS Developer Guide's "Request
// quotas"; the EC2 Developer Guide's "Request throttling for the Amazon
// EC2 API"; the IAM User Guide's "IAM and AWS STS quotas"; the CloudTrail
// API Reference's LookupEvents. AWS publishes none for Auto Scaling (only
// that all its APIs share one bucket), IAM or Organizations: those below
// are conservative choices.
var (
	// KMS: requests per second per operation, a bucket of one second's
	// worth; most management operations 5.
	kmsPaces = map[string]float64{
		"CreateAlias": 5, "CreateGrant": 50, "CreateKey": 5, "DeleteAlias": 15, "DescribeKey": 2000,
		"DisableKey": 5, "EnableKey": 5, "GetKeyPolicy": 1000, "ListAliases": 500, "ListGrants": 100,
		"ListKeyPolicies": 100, "PutKeyPolicy": 15, "RetireGrant": 30, "RevokeGrant": 30, "ScheduleKeyDeletion": 15,
	}
	kmsDefault = 5.0
	// The symmetric cryptographic operations share one quota, 5,500 per
	// second in the Regions where it is lowest.
	kmsCrypto = pace{group: "cryptographic", rate: 5500, burst: 5500}

	// EC2: a bucket per action, of its category unless listed.
	ec2Paces = map[string]pace{
		"ModifyImageAttribute":          {rate: 5, burst: 100},
		"ModifySnapshotAttribute":       {rate: 5, burst: 100},
		"CreateLaunchTemplateVersion":   {rate: 5, burst: 100},
		"TerminateInstances":            {rate: 5, burst: 100},
		"RunInstances":                  {rate: 2, burst: 5},
		"StartInstances":                {rate: 2, burst: 5},
		"CreateTags":                    {rate: 10, burst: 100},
		"DeleteTags":                    {rate: 10, burst: 100},
		"CreateSnapshot":                {rate: 5, burst: 100},
		"CreateVolume":                  {rate: 5, burst: 100},
		"DeleteSnapshot":                {rate: 5, burst: 100},
		"DeregisterImage":               {rate: 5, burst: 100},
		"CopyImage":                     {rate: 1, burst: 100},
		"CreateKeyPair":                 {rate: 5, burst: 50},
		"AuthorizeSecurityGroupIngress": {rate: 5, burst: 50},
	}
	ec2Read  = pace{rate: 20, burst: 100}
	ec2Write = pace{rate: 5, burst: 50}
	// A Describe of these with neither filter nor pagination draws from a
	// smaller bucket of its own.
	ec2Unfiltered     = []string{"DescribeInstances", "DescribeInstanceStatus", "DescribeNetworkInterfaces", "DescribeSecurityGroups", "DescribeSnapshots", "DescribeSpotInstanceRequests", "DescribeVolumes"}
	ec2UnfilteredPace = pace{rate: 10, burst: 50}
	// Calls that start or stop instances also take a token per instance.
	ec2InstancePaces = map[string]pace{
		"RunInstances": {rate: 2, burst: 1000}, "StartInstances": {rate: 2, burst: 1000},
		"StopInstances": {rate: 20, burst: 1000}, "TerminateInstances": {rate: 20, burst: 1000},
	}

	// STS: 600 per second, shared by every operation.
	stsPace = pace{group: "all", rate: 600, burst: 600}
	// CloudTrail: LookupEvents 2 per second; nothing else is called.
	trailPaces = map[string]pace{"LookupEvents": {rate: 2, burst: 2}}
	// Auto Scaling (not published): one bucket for every operation.
	asgPace = pace{group: "all", rate: 10, burst: 20}
	// IAM (not published, global): reads 20, the policy simulator 5,
	// writes 10.
	iamSimulate = pace{rate: 5, burst: 5, global: true}
	iamRead     = pace{rate: 20, burst: 20, global: true}
	iamWrite    = pace{rate: 10, burst: 10, global: true}
	// Organizations (not published, global): 5 per operation.
	orgsPace = pace{rate: 5, burst: 5, global: true}
)

// paceOf returns AWS's quota of a call (service as in the SigV4 signing
// name), and whether the client knows one. variant is "" or, for EC2,
// "unfiltered" or "instances" (the per-instance bucket).
func paceOf(service, op, variant string) (pace, bool) {
	p, ok := func() (pace, bool) {
		switch service {
		case "kms":
			switch op {
			case "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateRandom", "ReEncrypt", "GenerateMac", "VerifyMac":
				return kmsCrypto, true
			}
			r, ok := kmsPaces[op]
			if !ok {
				r = kmsDefault
			}
			return pace{rate: r, burst: r}, true
		case "ec2":
			switch variant {
			case "unfiltered":
				if slices.Contains(ec2Unfiltered, op) {
					p := ec2UnfilteredPace
					p.group = op + " unfiltered"
					return p, true
				}
				variant = ""
			case "instances":
				p, ok := ec2InstancePaces[op]
				p.group = op + " instances"
				return p, ok
			}
			if p, ok := ec2Paces[op]; ok {
				return p, true
			}
			for _, prefix := range []string{"Describe", "Get", "List", "Search"} {
				if strings.HasPrefix(op, prefix) {
					return ec2Read, true
				}
			}
			return ec2Write, true
		case "sts":
			return stsPace, true
		case "cloudtrail":
			p, ok := trailPaces[op]
			return p, ok
		case "autoscaling":
			return asgPace, true
		case "iam":
			switch {
			case op == "SimulatePrincipalPolicy" || op == "SimulateCustomPolicy":
				return iamSimulate, true
			case strings.HasPrefix(op, "Get") || strings.HasPrefix(op, "List"):
				return iamRead, true
			}
			return iamWrite, true
		case "organizations":
			return orgsPace, true
		}
		return pace{}, false
	}()
	if ok && p.group == "" {
		p.group = op
	}
	return p, ok
}

// pacer holds the process's buckets.
type pacer struct {
	mu      sync.Mutex
	scale   float64
	buckets map[paceKey]*rate.Limiter
}

type paceKey struct {
	service, group, account, region string
}

// process is the pacer every session of the process shares: targets run
// at once in one run, and runs in one process, draw from the same
// account's buckets.
var process = &pacer{scale: envScale}

// PacingScaleEnv names the environment variable that sets the process's
// pacing scale (SetPacing): for accounts whose quotas AWS raised, or to
// match a simulator's scaled quotas when amigate runs as a binary.
const PacingScaleEnv = "AMIGATE_PACING_SCALE"

// envScale is the scale PacingScaleEnv sets, read once when the process
// starts: 1 when unset or invalid; New reports an invalid one
// (envScaleErr).
var envScale, envScaleErr = parseScale(os.Getenv(PacingScaleEnv))

// parseScale reads a PacingScaleEnv value: 1 when empty, and 1 with an
// error when it is not a number ≥ 0.
func parseScale(v string) (float64, error) {
	if v == "" {
		return 1, nil
	}
	scale, err := strconv.ParseFloat(v, 64)
	if err != nil || scale < 0 || math.IsInf(scale, 0) || math.IsNaN(scale) {
		return 1, fmt.Errorf("%s=%q: want a number ≥ 0 (1 keeps to AWS's published quotas, 0 turns pacing off)", PacingScaleEnv, v)
	}
	return scale, nil
}

// SetPacing scales every rate and bucket the client keeps to (AWS's
// rates × scale, buckets × scale less the ArrivalJitter margin, at least
// one token), for the whole
// process, and starts every bucket afresh; 0 turns pacing off. The
// default is PacingScaleEnv's value, else 1: AWS's published figures.
// Against the simulator with scaled quotas (awsim's QuotaSettings.Scale),
// tests set the same scale. It returns the previous scale.
func SetPacing(scale float64) (previous float64) {
	process.mu.Lock()
	defer process.mu.Unlock()
	previous = process.scale
	process.scale = max(scale, 0)
	process.buckets = nil
	return previous
}

// pacing returns the rate (per second) and bucket size the client keeps
// to for a call, at the current scale; rate 0 means the call is not
// paced. variant is "", or for EC2 "unfiltered" (a Describe with neither
// filter nor pagination) or "instances" (the per-instance bucket).
func pacing(service, operation, variant string) (group string, perSecond float64, burst int) {
	process.mu.Lock()
	scale := process.scale
	process.mu.Unlock()
	p, ok := paceOf(service, operation, variant)
	if !ok || scale == 0 {
		return p.group, 0, 0
	}
	r, b := scaled(p, scale)
	return p.group, r, b
}

// scaled is the client's rate and bucket for AWS's quota p.
func scaled(p pace, scale float64) (float64, int) {
	r := p.rate * scale
	margin := math.Ceil(2 * ArrivalJitter.Seconds() * r)
	return r, int(math.Max(1, math.Floor(p.burst*scale)-margin))
}

// wait blocks until the bucket of k holds n tokens and takes them, or
// until ctx ends.
func (pc *pacer) wait(ctx context.Context, k paceKey, p pace, n int) error {
	pc.mu.Lock()
	if pc.scale == 0 {
		pc.mu.Unlock()
		return nil
	}
	if p.global {
		k.region = ""
	}
	if pc.buckets == nil {
		pc.buckets = map[paceKey]*rate.Limiter{}
	}
	lim, ok := pc.buckets[k]
	if !ok {
		r, b := scaled(p, pc.scale)
		lim = rate.NewLimiter(rate.Limit(r), b)
		pc.buckets[k] = lim
	}
	pc.mu.Unlock()
	res := lim.ReserveN(time.Now(), min(n, lim.Burst()))
	if !res.OK() {
		return nil
	}
	d := res.Delay()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		res.Cancel()
		return ctx.Err()
	}
}

// paceAs is the API option that paces a configuration's calls against the
// quotas of the account account returns (the account of the
// configuration's credentials; a label when it is not known).
func paceAs(account func(context.Context) string) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		// The request's parameters decide EC2's extra buckets.
		if err := noteShape(stack); err != nil {
			return err
		}
		// Waiting comes right before signing: after the retryer (each
		// attempt waits), after credentials are resolved (an AssumeRole
		// is paced on its own), and with nothing between the token and
		// the request but the signature, which is then fresh.
		pace := middleware.FinalizeMiddlewareFunc("amigatePace",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				service := serviceName(ctx)
				op, region := awsmiddleware.GetOperationName(ctx), awsmiddleware.GetRegion(ctx)
				shape := shapeFrom(ctx)
				who := account(ctx)
				draws := []draw{{"", 1}}
				if service == "ec2" && shape.unfiltered {
					draws[0].variant = "unfiltered"
				}
				if service == "ec2" && shape.instances > 0 {
					draws = append(draws, draw{"instances", shape.instances})
				}
				for _, d := range draws {
					p, ok := paceOf(service, op, d.variant)
					if !ok {
						continue
					}
					if err := process.wait(ctx, paceKey{service: service, group: p.group, account: who, region: region}, p, d.n); err != nil {
						return middleware.FinalizeOutput{}, middleware.Metadata{}, err
					}
				}
				return next.HandleFinalize(ctx, in)
			})
		if _, ok := stack.Finalize.Get("Signing"); ok {
			return stack.Finalize.Insert(pace, "Signing", middleware.Before)
		}
		return stack.Finalize.Add(pace, middleware.After)
	}
}

// draw is tokens a call takes from one of its buckets.
type draw struct {
	variant string // see paceOf
	n       int
}

// serviceName is the service of the call in ctx by its SigV4 signing name
// ("ec2", "autoscaling"), as the quotas and the call counts name it.
func serviceName(ctx context.Context) string {
	return strings.ToLower(strings.ReplaceAll(awsmiddleware.GetServiceID(ctx), " ", ""))
}

// requestShape is what of a request's parameters the call counts (a dry
// run is counted apart) and its quota (EC2's extra buckets) depend on.
type requestShape struct {
	// dryRun: DryRun is set (EC2's and KMS's inputs have a DryRun *bool):
	// the call only asks to be checked.
	dryRun bool
	// unfiltered: neither Filters nor pagination (MaxResults, NextToken).
	unfiltered bool
	// instances a call starts or stops: RunInstances' MaxCount, or the
	// number of InstanceIds.
	instances int
}

type shapeKey struct{}

const shapeID = "amigateRequestShape"

// noteShape adds to the stack, once whoever asks first (the call counter,
// pacing), the middleware that reads the request's shape from its
// parameters, before any attempt is made.
func noteShape(stack *middleware.Stack) error {
	if _, ok := stack.Initialize.Get(shapeID); ok {
		return nil
	}
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc(shapeID,
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			ctx = middleware.WithStackValue(ctx, shapeKey{}, shapeOf(in.Parameters))
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
}

// shapeFrom is the shape noteShape found for the call in ctx.
func shapeFrom(ctx context.Context) requestShape {
	shape, _ := middleware.GetStackValue(ctx, shapeKey{}).(requestShape)
	return shape
}

func shapeOf(params any) requestShape {
	v := reflect.ValueOf(params)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return requestShape{}
	}
	v = v.Elem()
	field := func(name string) reflect.Value { return v.FieldByName(name) }
	set := func(f reflect.Value) bool {
		return f.IsValid() && ((f.Kind() == reflect.Pointer && !f.IsNil()) || (f.Kind() == reflect.Slice && f.Len() > 0))
	}
	s := requestShape{unfiltered: !set(field("Filters")) && !set(field("MaxResults")) && !set(field("NextToken"))}
	if f := field("DryRun"); f.IsValid() && f.Kind() == reflect.Pointer && !f.IsNil() && f.Elem().Kind() == reflect.Bool {
		s.dryRun = f.Elem().Bool()
	}
	if f := field("MaxCount"); f.IsValid() && f.Kind() == reflect.Pointer && !f.IsNil() && f.Elem().CanInt() {
		s.instances = int(f.Elem().Int())
	} else if f := field("InstanceIds"); f.IsValid() && f.Kind() == reflect.Slice {
		s.instances = f.Len()
	}
	return s
}
