package gate

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/kms"
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
}

// autoScalingAPI is what the gate calls on Auto Scaling.
type autoScalingAPI interface {
	DescribeAutoScalingGroups(context.Context, *autoscaling.DescribeAutoScalingGroupsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
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

	mu   sync.Mutex
	ec2  map[clientKey]ec2API
	kms  map[clientKey]kmsAPI
	asg  map[clientKey]autoScalingAPI
	cfgs map[clientKey]aws.Config
}

type clientKey struct {
	who    principal
	region string
}

func newClients(s Sessions) *clients {
	return &clients{sessions: s, ec2: map[clientKey]ec2API{}, kms: map[clientKey]kmsAPI{}, asg: map[clientKey]autoScalingAPI{}, cfgs: map[clientKey]aws.Config{}}
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

func (c *clients) EC2(who principal, region string) ec2API {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := clientKey{who, region}
	if cl, ok := c.ec2[k]; ok {
		return cl
	}
	cl := ec2.NewFromConfig(c.config(k))
	c.ec2[k] = cl
	return cl
}

func (c *clients) KMS(who principal, region string) kmsAPI {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := clientKey{who, region}
	if cl, ok := c.kms[k]; ok {
		return cl
	}
	var cl kmsAPI = kms.NewFromConfig(c.config(k))
	if c.wrapKMS != nil {
		cl = c.wrapKMS(cl)
	}
	c.kms[k] = cl
	return cl
}

func (c *clients) AutoScaling(who principal, region string) autoScalingAPI {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := clientKey{who, region}
	if cl, ok := c.asg[k]; ok {
		return cl
	}
	cl := autoscaling.NewFromConfig(c.config(k))
	c.asg[k] = cl
	return cl
}

// Credentials retrieves who's credentials now, so that assuming a role is
// done while other calls are in flight rather than on the critical path.
func (c *clients) Credentials(ctx context.Context, who principal, region string) error {
	c.mu.Lock()
	cfg := c.config(clientKey{who, region})
	c.mu.Unlock()
	if cfg.Credentials == nil {
		return nil
	}
	_, err := cfg.Credentials.Retrieve(ctx)
	return err
}

// forEach runs fn for each of n items, at most limit at once, and returns
// the first error; the context given to fn is cancelled on the first error.
func forEach(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, max(limit, 1))
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
