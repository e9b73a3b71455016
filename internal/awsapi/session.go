// Package awsapi builds the AWS SDK configuration amigate uses: the source
// account's credentials from the settings users know from the amazon plugin
// (or the SDK's default chain), a role assumed in each target, the User-Agent
// and a count of every API call for the report. The gate declares the
// narrow client interfaces it needs; this package only hands out
// aws.Config values.
package awsapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"
)

// Settings are the AWS access settings, named as in packer-plugin-amazon.
type Settings struct {
	Region                string
	Profile               string
	AccessKey, SecretKey  string
	Token                 string
	SharedCredentialsFile string
	AssumeRole            AssumeRole
	// MaxRetries is how many times a throttled or failed call is retried;
	// 0 means DefaultMaxRetries.
	MaxRetries int
	// Endpoint overrides every service's endpoint (AWS_ENDPOINT_URL, which
	// the SDK honours by itself, does the same from the environment).
	Endpoint string
	// UserAgent is added to every request as "name/version".
	UserAgent string
	// RetryMaxBackoff caps the retryer's back-off; 0 keeps the SDK's 20 s.
	RetryMaxBackoff time.Duration
}

// AssumeRole is a role to assume before anything else, in the source account.
type AssumeRole struct {
	RoleARN     string
	ExternalID  string
	SessionName string
	Duration    time.Duration
}

// MaxConcurrency is the most calls amigate has in flight to one service in
// one region.
const MaxConcurrency = 256

// DefaultMaxRetries is how many times a call is retried when AWS throttles
// it or fails inside (5xx, connection reset). The SDK's standard retryer
// makes 3 attempts, which a run of a few dozen calls does not survive at
// 10 % throttling: 0.12³ per call is one run in seven failing. Ten attempts
// make that 0.12¹⁰, and the retryer's exponential back-off with jitter
// (capped at 20 s) and its retry quota (which fails fast once AWS keeps
// failing) are kept. Errors that are not retryable (AccessDenied,
// validation, not found) are never retried.
const DefaultMaxRetries = 9

// SessionName is the role session name amigate uses, visible in CloudTrail.
const SessionName = "amigate"

// Session hands out configurations for the source account and for roles in
// the targets. Assumed-role credentials are cached for the run, so each role
// is assumed once however many regions and clients use it. It is safe for
// concurrent use.
type Session struct {
	base  aws.Config
	calls *callCounter
	// account is the source's account for pacing (pacing.go).
	account func(context.Context) string

	mu    sync.Mutex
	roles map[string]aws.CredentialsProvider
}

// New loads the source configuration: static keys when given, else the
// profile, else the SDK's default chain; then the source assume_role.
func New(ctx context.Context, s Settings) (*Session, error) {
	if envScaleErr != nil {
		return nil, envScaleErr
	}
	calls := &callCounter{n: map[string]int{}, inFlight: map[string]chan struct{}{}}
	opts := []func(*config.LoadOptions) error{
		config.WithAPIOptions([]func(*middleware.Stack) error{calls.middleware}),
		// The gate keeps up to MaxConcurrency calls in flight to each
		// service in each region; keep their connections for reuse, also
		// when every service answers at one host (an endpoint override,
		// the simulator), rather than opening and closing sockets.
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = 4 * MaxConcurrency
			t.MaxIdleConnsPerHost = 4 * MaxConcurrency
		})),
	}
	if s.Region != "" {
		opts = append(opts, config.WithRegion(s.Region))
	}
	if s.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(s.Profile))
	}
	if s.SharedCredentialsFile != "" {
		opts = append(opts, config.WithSharedCredentialsFiles([]string{s.SharedCredentialsFile}))
	}
	if s.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, s.Token)))
	}
	retries := s.MaxRetries
	if retries <= 0 {
		retries = DefaultMaxRetries
	}
	opts = append(opts, config.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = retries + 1
			if s.RetryMaxBackoff > 0 {
				o.MaxBackoff = s.RetryMaxBackoff
			}
		})
	}))
	if s.Endpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(s.Endpoint))
	}
	if name, version, ok := strings.Cut(s.UserAgent, "/"); ok {
		opts = append(opts, config.WithAPIOptions([]func(*middleware.Stack) error{awsmiddleware.AddUserAgentKeyValue(name, version)}))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load aws configuration: %w", err)
	}
	sess := &Session{base: cfg, calls: calls, roles: map[string]aws.CredentialsProvider{}, account: credentialsAccount(cfg.Credentials)}
	if s.AssumeRole.RoleARN != "" {
		sess.base.Credentials = sess.assume(cfg, sess.account, s.AssumeRole)
		sess.account = roleAccount(s.AssumeRole.RoleARN)
	}
	return sess, nil
}

// Region is the region the settings or the SDK's resolution give, or "".
func (s *Session) Region() string { return s.base.Region }

// Source returns the source account's configuration in a region.
func (s *Session) Source(region string) aws.Config {
	cfg := s.base.Copy()
	cfg.Region = region
	cfg.APIOptions = append(slices.Clip(cfg.APIOptions), paceAs(s.account))
	return cfg
}

// Role returns the configuration of a role assumed from the source account,
// in a region. The role is assumed when a client first needs credentials.
func (s *Session) Role(roleARN, externalID, region string) aws.Config {
	cache := roleARN + "\x00" + externalID
	s.mu.Lock()
	creds, ok := s.roles[cache]
	if !ok {
		creds = s.assume(s.base, s.account, AssumeRole{RoleARN: roleARN, ExternalID: externalID})
		s.roles[cache] = creds
	}
	s.mu.Unlock()
	cfg := s.base.Copy()
	cfg.Region = region
	cfg.Credentials = creds
	cfg.APIOptions = append(slices.Clip(cfg.APIOptions), paceAs(roleAccount(roleARN)))
	return cfg
}

// assume returns cached credentials of role, assumed with from's, whose
// calls count against fromAccount's quotas.
func (s *Session) assume(from aws.Config, fromAccount func(context.Context) string, role AssumeRole) aws.CredentialsProvider {
	stsCfg := from.Copy()
	if stsCfg.Region == "" {
		stsCfg.Region = "us-east-1"
	}
	stsCfg.APIOptions = append(slices.Clip(stsCfg.APIOptions), paceAs(fromAccount))
	provider := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(stsCfg), role.RoleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = role.SessionName
		if o.RoleSessionName == "" {
			o.RoleSessionName = SessionName
		}
		if role.ExternalID != "" {
			o.ExternalID = aws.String(role.ExternalID)
		}
		if role.Duration > 0 {
			o.Duration = role.Duration
		}
	})
	return aws.NewCredentialsCache(provider)
}

// roleAccount is the account of a role ARN (arn:PARTITION:iam::ACCOUNT:role/...),
// or the ARN itself when it has none.
func roleAccount(roleARN string) func(context.Context) string {
	account := roleARN
	if parts := strings.SplitN(roleARN, ":", 6); len(parts) == 6 && parts[4] != "" {
		account = parts[4]
	}
	return func(context.Context) string { return account }
}

// credentialsAccount is the account of credentials when the provider
// knows it (AWS_ACCOUNT_ID, aws_account_id, SSO, an assumed role), else
// their access key id, which stands for the account: a process runs as one
// source principal. (Pacing runs after the SDK resolved the credentials,
// so Retrieve answers from the cache.)
func credentialsAccount(creds aws.CredentialsProvider) func(context.Context) string {
	return func(ctx context.Context) string {
		if creds == nil {
			return "anonymous"
		}
		c, err := creds.Retrieve(ctx)
		switch {
		case err != nil:
			return "source"
		case c.AccountID != "":
			return c.AccountID
		}
		return "key " + c.AccessKeyID
	}
}

// Calls returns how many calls were made, by "service:Action"
// ("kms:PutKeyPolicy"; "ec2:ModifyImageAttribute (dry run)" for a call
// made with DryRun), retries included.
func (s *Session) Calls() map[string]int { return s.calls.snapshot() }

// callCounter counts the calls of a session and bounds those in flight.
type callCounter struct {
	mu sync.Mutex
	n  map[string]int
	// inFlight holds a slot per call in flight, by service and region:
	// AWS's request quotas are per service, account and region.
	inFlight map[string]chan struct{}
}

// middleware counts each attempt when it is sent, and holds it while
// MaxConcurrency others to the same service and region are in flight,
// whichever part of the run makes them. It comes before pacing (which
// waits right before signing), so that a call that got its token is sent
// at once rather than queued behind the in-flight bound.
func (c *callCounter) middleware(stack *middleware.Stack) error {
	// A call with DryRun set changes nothing; it is counted apart.
	if err := noteShape(stack); err != nil {
		return err
	}
	count := middleware.FinalizeMiddlewareFunc("amigateCountCalls",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			service := serviceName(ctx)
			name := service + ":" + awsmiddleware.GetOperationName(ctx)
			if shapeFrom(ctx).dryRun {
				name += " (dry run)"
			}
			c.mu.Lock()
			c.n[name]++
			slots, ok := c.inFlight[service+"/"+awsmiddleware.GetRegion(ctx)]
			if !ok {
				slots = make(chan struct{}, MaxConcurrency)
				c.inFlight[service+"/"+awsmiddleware.GetRegion(ctx)] = slots
			}
			c.mu.Unlock()
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return middleware.FinalizeOutput{}, middleware.Metadata{}, ctx.Err()
			}
			defer func() { <-slots }()
			return next.HandleFinalize(ctx, in)
		})
	if _, ok := stack.Finalize.Get("Signing"); ok {
		return stack.Finalize.Insert(count, "Signing", middleware.Before)
	}
	return stack.Finalize.Add(count, middleware.After)
}

func (c *callCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}
