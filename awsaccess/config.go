//go:generate packer-sdc mapstructure-to-hcl2 -type AssumeRoleConfig
//go:generate packer-sdc struct-markdown

// Package awsaccess is the AWS access configuration amigate's Packer
// components share, with the names users know from packer-plugin-amazon.
package awsaccess

import (
	"errors"
	"fmt"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/awsapi"
	"github.com/amigate/packer-plugin-amigate/internal/gate"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
	"github.com/amigate/packer-plugin-amigate/version"
)

// AssumeRoleConfig is the role amigate assumes in the source account.
type AssumeRoleConfig struct {
	// The ARN of the role to assume, in the account that owns the AMI and its key.
	RoleARN string `mapstructure:"role_arn" required:"false"`
	// The external id the role's trust policy requires, if any.
	ExternalID string `mapstructure:"external_id" required:"false"`
	// The session name, visible in CloudTrail. Defaults to `amigate`.
	SessionName string `mapstructure:"session_name" required:"false"`
	// How long the assumed-role credentials last, in seconds. Defaults to 3600.
	DurationSeconds int `mapstructure:"duration_seconds" required:"false"`
}

// Config is how amigate reaches AWS as the source account. Unset, it uses
// the SDK's default credential chain and region resolution, and honours
// AWS_ENDPOINT_URL.
type Config struct {
	// The region of the AMI when the artifact does not say. Defaults to the
	// SDK's region resolution (AWS_REGION, profile).
	Region string `mapstructure:"region" required:"false"`
	// The shared-config profile to use.
	Profile string `mapstructure:"profile" required:"false"`
	// The AWS access key. Defaults to the SDK's credential chain.
	AccessKey string `mapstructure:"access_key" required:"false"`
	// The AWS secret key.
	SecretKey string `mapstructure:"secret_key" required:"false"`
	// The session token of temporary credentials.
	Token string `mapstructure:"token" required:"false"`
	// The shared credentials file. Defaults to ~/.aws/credentials.
	SharedCredentialsFile string `mapstructure:"shared_credentials_file" required:"false"`
	// A role to assume in the source account before anything else.
	AssumeRole AssumeRoleConfig `mapstructure:"assume_role" required:"false"`
	// How many times a throttled or failed call (5xx, connection reset) is
	// retried, with exponential back-off. Defaults to 9 (10 attempts), which
	// rides out sustained throttling; errors such as AccessDenied are never
	// retried.
	MaxRetries int `mapstructure:"max_retries" required:"false"`
}

// Secrets are the values Packer's log filter must hide.
func (c *Config) Secrets() []string { return []string{c.AccessKey, c.SecretKey, c.Token} }

// Validate reports every problem, naming the field and the value.
func (c *Config) Validate() []error {
	var errs []error
	if c.AssumeRole.RoleARN != "" {
		if _, err := keypolicy.ParseRoleARN(c.AssumeRole.RoleARN); err != nil {
			errs = append(errs, gate.FieldError{Field: "assume_role.role_arn", Value: c.AssumeRole.RoleARN, Problem: "not an IAM role ARN"})
		}
	}
	if d := c.AssumeRole.DurationSeconds; d != 0 && (d < 900 || d > 43200) {
		errs = append(errs, gate.FieldError{Field: "assume_role.duration_seconds", Value: fmt.Sprint(d), Problem: "must be between 900 and 43200"})
	}
	if c.Region != "" && !gate.ValidRegion(c.Region) {
		errs = append(errs, gate.FieldError{Field: "region", Value: c.Region, Problem: "not an AWS region"})
	}
	if c.MaxRetries < 0 {
		errs = append(errs, gate.FieldError{Field: "max_retries", Value: fmt.Sprint(c.MaxRetries), Problem: "must not be negative"})
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		errs = append(errs, errors.New("access_key and secret_key: give both or neither"))
	}
	return errs
}

// Settings are the settings internal/awsapi builds the session from.
func (c *Config) Settings() awsapi.Settings {
	return awsapi.Settings{
		Region:                c.Region,
		Profile:               c.Profile,
		AccessKey:             c.AccessKey,
		SecretKey:             c.SecretKey,
		Token:                 c.Token,
		SharedCredentialsFile: c.SharedCredentialsFile,
		AssumeRole: awsapi.AssumeRole{
			RoleARN:     c.AssumeRole.RoleARN,
			ExternalID:  c.AssumeRole.ExternalID,
			SessionName: c.AssumeRole.SessionName,
			Duration:    time.Duration(c.AssumeRole.DurationSeconds) * time.Second,
		},
		MaxRetries: c.MaxRetries,
		UserAgent:  "packer-plugin-amigate/" + version.PluginVersion.FormattedVersion(),
	}
}
