package gate

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Sessions gives the AWS configuration of the source account, and of a role
// assumed in a target, in a region. internal/awsapi implements it.
type Sessions interface {
	Source(region string) aws.Config
	Role(roleARN, externalID, region string) aws.Config
}

// CallCounter is implemented by sessions that count their API calls; the
// report lists the counts.
type CallCounter interface {
	Calls() map[string]int
}

// ec2API is what the gate calls on EC2.
type ec2API interface {
	DescribeImages(context.Context, *ec2.DescribeImagesInput, ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DescribeSnapshots(context.Context, *ec2.DescribeSnapshotsInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	DescribeImageAttribute(context.Context, *ec2.DescribeImageAttributeInput, ...func(*ec2.Options)) (*ec2.DescribeImageAttributeOutput, error)
	ModifyImageAttribute(context.Context, *ec2.ModifyImageAttributeInput, ...func(*ec2.Options)) (*ec2.ModifyImageAttributeOutput, error)
	DescribeSnapshotAttribute(context.Context, *ec2.DescribeSnapshotAttributeInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotAttributeOutput, error)
	ModifySnapshotAttribute(context.Context, *ec2.ModifySnapshotAttributeInput, ...func(*ec2.Options)) (*ec2.ModifySnapshotAttributeOutput, error)
}

// kmsAPI is what the gate calls on KMS.
type kmsAPI interface {
	DescribeKey(context.Context, *kms.DescribeKeyInput, ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
	GetKeyPolicy(context.Context, *kms.GetKeyPolicyInput, ...func(*kms.Options)) (*kms.GetKeyPolicyOutput, error)
	PutKeyPolicy(context.Context, *kms.PutKeyPolicyInput, ...func(*kms.Options)) (*kms.PutKeyPolicyOutput, error)
	ListGrants(context.Context, *kms.ListGrantsInput, ...func(*kms.Options)) (*kms.ListGrantsOutput, error)
	CreateGrant(context.Context, *kms.CreateGrantInput, ...func(*kms.Options)) (*kms.CreateGrantOutput, error)
	// The key policy lock (internal/keylock).
	CreateAlias(context.Context, *kms.CreateAliasInput, ...func(*kms.Options)) (*kms.CreateAliasOutput, error)
	DeleteAlias(context.Context, *kms.DeleteAliasInput, ...func(*kms.Options)) (*kms.DeleteAliasOutput, error)
	ListAliases(context.Context, *kms.ListAliasesInput, ...func(*kms.Options)) (*kms.ListAliasesOutput, error)
}

// principal is who the gate acts as: the source account, or a role in a
// target.
type principal struct {
	roleARN, externalID string
}

var source = principal{}

// clients builds each client once per principal and region, for the run.
type clients struct {
	sessions Sessions
	// wrapKMS, when set, wraps every KMS client (tests race the patch).
	wrapKMS func(kmsAPI) kmsAPI

	mu    sync.Mutex
	ec2   map[clientKey]*ec2.Client
	kms   map[clientKey]kmsAPI
	asg   map[clientKey]*autoscaling.Client
	trail map[clientKey]*cloudtrail.Client
	iam   map[clientKey]*iam.Client
	sts   map[clientKey]*sts.Client
	orgs  map[clientKey]*organizations.Client
	cfgs  map[clientKey]aws.Config
}

type clientKey struct {
	who    principal
	region string
}

func newClients(s Sessions) *clients {
	return &clients{sessions: s, ec2: map[clientKey]*ec2.Client{}, kms: map[clientKey]kmsAPI{}, asg: map[clientKey]*autoscaling.Client{},
		trail: map[clientKey]*cloudtrail.Client{}, iam: map[clientKey]*iam.Client{}, sts: map[clientKey]*sts.Client{},
		orgs: map[clientKey]*organizations.Client{}, cfgs: map[clientKey]aws.Config{}}
}

// config returns the configuration of who in region; the caller holds mu.
func (c *clients) config(k clientKey) aws.Config {
	cfg, ok := c.cfgs[k]
	if !ok {
		if k.who == source {
			cfg = c.sessions.Source(k.region)
		} else {
			cfg = c.sessions.Role(k.who.roleARN, k.who.externalID, k.region)
		}
		c.cfgs[k] = cfg
	}
	return cfg
}

// EC2 returns who's EC2 client in region; it serves the gate's and the
// test launch's narrow interfaces alike.
func (c *clients) EC2(who principal, region string) *ec2.Client {
	return cached(c, c.ec2, clientKey{who, region}, func(cfg aws.Config) *ec2.Client { return ec2.NewFromConfig(cfg) })
}

// AutoScaling returns who's Auto Scaling client in region.
func (c *clients) AutoScaling(who principal, region string) *autoscaling.Client {
	return cached(c, c.asg, clientKey{who, region}, func(cfg aws.Config) *autoscaling.Client { return autoscaling.NewFromConfig(cfg) })
}

// CloudTrail returns who's CloudTrail client in region.
func (c *clients) CloudTrail(who principal, region string) *cloudtrail.Client {
	return cached(c, c.trail, clientKey{who, region}, func(cfg aws.Config) *cloudtrail.Client { return cloudtrail.NewFromConfig(cfg) })
}

// IAM returns who's IAM client (IAM is global; region only signs).
func (c *clients) IAM(who principal, region string) *iam.Client {
	return cached(c, c.iam, clientKey{who, region}, func(cfg aws.Config) *iam.Client { return iam.NewFromConfig(cfg) })
}

// STS returns who's STS client in region.
func (c *clients) STS(who principal, region string) *sts.Client {
	return cached(c, c.sts, clientKey{who, region}, func(cfg aws.Config) *sts.Client { return sts.NewFromConfig(cfg) })
}

// Organizations returns who's AWS Organizations client (one endpoint per
// partition, in region).
func (c *clients) Organizations(who principal, region string) *organizations.Client {
	return cached(c, c.orgs, clientKey{who, region}, func(cfg aws.Config) *organizations.Client { return organizations.NewFromConfig(cfg) })
}

// cached returns the client of k from m, building it on first use.
func cached[T any](c *clients, m map[clientKey]T, k clientKey, build func(aws.Config) T) T {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := m[k]; ok {
		return cl
	}
	cl := build(c.config(k))
	m[k] = cl
	return cl
}

// KMS returns who's KMS client in region.
func (c *clients) KMS(who principal, region string) kmsAPI {
	return cached(c, c.kms, clientKey{who, region}, func(cfg aws.Config) kmsAPI {
		var cl kmsAPI = kms.NewFromConfig(cfg)
		if c.wrapKMS != nil {
			cl = c.wrapKMS(cl)
		}
		return cl
	})
}

// forEach runs fn for each of n items, at most limit at once, and returns
// the first error; the context given to fn is cancelled on the first error.
func forEach(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	p := newPool(ctx, limit)
	for i := 0; i < n && p.ctx.Err() == nil; i++ {
		p.goBlocking(func(ctx context.Context) error { return fn(ctx, i) })
	}
	return p.Wait()
}

// pool runs jobs, also jobs added while others run, at most limit at once.
// The first error cancels the others' context and is Wait's answer; a
// panic in a job becomes that error, so that the run's deferred cleanup
// still deletes what it created.
type pool struct {
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	first  error
}

func newPool(ctx context.Context, limit int) *pool {
	ctx, cancel := context.WithCancel(ctx)
	return &pool{ctx: ctx, cancel: cancel, sem: make(chan struct{}, max(limit, 1))}
}

// Go runs fn in the pool; it returns at once, fn waiting for a free slot.
func (p *pool) Go(fn func(context.Context) error) {
	p.wg.Add(1)
	go func() {
		select {
		case p.sem <- struct{}{}:
		case <-p.ctx.Done():
			p.wg.Done()
			return
		}
		p.run(fn)
	}()
}

// goBlocking waits for a free slot, then runs fn in the pool: a caller
// adding many jobs starts no more goroutines than there are slots.
func (p *pool) goBlocking(fn func(context.Context) error) {
	select {
	case p.sem <- struct{}{}:
	case <-p.ctx.Done():
		return
	}
	p.wg.Add(1)
	go p.run(fn)
}

// lead runs fn beside the pool's jobs without taking a slot: fn
// coordinates (it waits on other jobs, and adds some), and holding a slot
// while it waits could starve the jobs it waits for.
func (p *pool) lead(fn func(context.Context) error) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.call(fn)
	}()
}

// run runs fn holding a slot.
func (p *pool) run(fn func(context.Context) error) {
	defer p.wg.Done()
	defer func() { <-p.sem }()
	p.call(fn)
}

// call runs fn, its error or panic the pool's first error.
func (p *pool) call(fn func(context.Context) error) {
	defer func() {
		if v := recover(); v != nil {
			p.fail(fmt.Errorf("internal error: %v\n%s", v, debug.Stack()))
		}
	}()
	if p.ctx.Err() != nil {
		return
	}
	if err := fn(p.ctx); err != nil {
		p.fail(err)
	}
}

func (p *pool) fail(err error) {
	p.once.Do(func() { p.first = err; p.cancel() })
}

// Wait waits for every job and returns the first error, or the context's.
func (p *pool) Wait() error {
	p.wg.Wait()
	defer p.cancel()
	if p.first != nil {
		return p.first
	}
	return p.ctx.Err()
}
