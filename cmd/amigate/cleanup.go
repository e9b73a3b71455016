package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/amigate/packer-plugin-amigate/internal/awsapi"
	"github.com/amigate/packer-plugin-amigate/internal/gate"
	"github.com/amigate/packer-plugin-amigate/internal/keylock"
	"github.com/amigate/packer-plugin-amigate/internal/launch"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
	"github.com/amigate/packer-plugin-amigate/version"
)

const cleanupUsage = `usage: amigate cleanup --older-than DURATION --region REGION [--region ...]
                       [--target ACCOUNT [--target-role ACCOUNT=ROLE_ARN] ...] [--dry-run] [--format text|json]

Deletes what runs killed hard left behind, created more than DURATION ago:
the test launches' Auto Scaling groups and instances tagged
amigate:created-by=amigate and launch template versions described "amigate
test launch RUN" (in each --target, or without --target in the account of
the current credentials), and the key policy locks (KMS aliases
alias/amigate/lock/...) in the account of the current credentials, which
owns the keys. A run still going that is older than DURATION would lose
what it holds: give a DURATION longer than any run.
`

// runCleanup sweeps every configured target and region.
func runCleanup(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	var (
		olderThan, format     string
		regions, targets, rls listFlag
		dryRun                bool
	)
	fs := flag.NewFlagSet("amigate cleanup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&olderThan, "older-than", "", "delete what was created more than `DURATION` ago (such as 2h)")
	fs.Var(&regions, "region", "`REGION` to sweep (repeatable)")
	fs.Var(&targets, "target", "target `ACCOUNT` to sweep through its --target-role (repeatable)")
	fs.Var(&rls, "target-role", "`ACCOUNT=ROLE_ARN` to assume in a target")
	fs.BoolVar(&dryRun, "dry-run", false, "list what would be deleted, delete nothing")
	fs.StringVar(&format, "format", "text", "output `FORMAT`: text or json")
	fs.Usage = func() { fmt.Fprint(stderr, cleanupUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitBadInput
	}
	age, err := time.ParseDuration(olderThan)
	switch {
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case olderThan == "":
		err = errors.New("--older-than is required")
	case err != nil || age <= 0:
		err = badInput("--older-than", olderThan, errors.New("not a positive duration (such as 2h): a run still going would lose what it made"))
	case len(regions) == 0:
		err = errors.New("--region is required")
	case format != "text" && format != "json":
		err = badInput("--format", format, errors.New("must be text or json"))
	default:
		err = nil
	}
	var roles map[string]string
	if err == nil {
		roles, err = targetRoles(targets, rls)
	}
	if err == nil {
		for _, r := range regions {
			if !gate.ValidRegion(r) {
				err = badInput("--region", r, errors.New("not an AWS region"))
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "amigate cleanup: %v\n", err)
		return exitBadInput
	}
	sess, err := awsapi.New(ctx, awsapi.Settings{Region: regions[0], UserAgent: "amigate/" + version.PluginVersion.FormattedVersion()})
	if err != nil {
		fmt.Fprintf(stderr, "amigate cleanup: %v\n", err)
		return exitRuntime
	}
	type swept struct {
		Account   string            `json:"account"`
		Region    string            `json:"region"`
		Leftovers []launch.Leftover `json:"leftovers"`
	}
	var all []swept
	cutoff := time.Now().Add(-age)
	report := func(acct, region string, found []launch.Leftover) {
		for _, l := range found {
			verb := "deleted"
			if !l.Deleted {
				verb = "would delete"
			}
			fmt.Fprintf(stderr, "%s %s %s (run %s, created %s) in %s %s\n", verb, l.Kind, l.ID, orUnknownRun(l.RunID), l.Created.Format(time.RFC3339), acct, region)
		}
	}
	source, err := sts.NewFromConfig(sess.Source(regions[0])).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		fmt.Fprintf(stderr, "amigate cleanup: who am I: %v\n", err)
		return exitRuntime
	}
	for _, region := range regions {
		locks, err := keylock.Sweep(ctx, kms.NewFromConfig(sess.Source(region)), cutoff, dryRun)
		found := []launch.Leftover{}
		for _, l := range locks {
			found = append(found, launch.Leftover{Kind: "kms-alias", ID: l.Alias, RunID: l.RunID, Created: l.Created, Deleted: l.Deleted})
		}
		all = append(all, swept{Account: aws.ToString(source.Account), Region: region, Leftovers: found})
		report(aws.ToString(source.Account), region, found)
		if err != nil {
			fmt.Fprintf(stderr, "amigate cleanup: %s %s: %v\n", aws.ToString(source.Account), region, err)
			return exitRuntime
		}
	}
	accounts := append([]string(nil), targets...)
	if len(accounts) == 0 {
		accounts = []string{aws.ToString(source.Account)}
	}
	for _, acct := range accounts {
		for _, region := range regions {
			cfg := sess.Source(region)
			if role := roles[acct]; role != "" {
				cfg = sess.Role(role, "", region)
			}
			found, err := launch.Sweep(ctx, ec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg), cutoff, dryRun)
			if found == nil {
				found = []launch.Leftover{}
			}
			all = append(all, swept{Account: acct, Region: region, Leftovers: found})
			report(acct, region, found)
			if err != nil {
				fmt.Fprintf(stderr, "amigate cleanup: %s %s: %v\n", acct, region, err)
				return exitRuntime
			}
		}
	}
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(all)
	} else {
		n := 0
		for _, s := range all {
			n += len(s.Leftovers)
		}
		fmt.Fprintf(stdout, "%d leftover(s) older than %s\n", n, age)
	}
	return exitOK
}

func orUnknownRun(run string) string {
	if run == "" {
		return "unknown"
	}
	return run
}

// targetRoles reads ACCOUNT=ROLE_ARN pairs for the given accounts.
func targetRoles(targets, pairs []string) (map[string]string, error) {
	roles := map[string]string{}
	for _, t := range targets {
		if !keypolicy.ValidAccountID(t) {
			return nil, badInput("--target", t, errors.New("not a 12-digit AWS account id"))
		}
	}
	for _, p := range pairs {
		acct, role, ok := strings.Cut(p, "=")
		if !ok {
			return nil, badInput("--target-role", p, errors.New("want ACCOUNT=ROLE_ARN"))
		}
		if !slices.Contains(targets, acct) {
			return nil, badInput("--target-role", p, fmt.Errorf("account %s is not one of the --target accounts", acct))
		}
		arn, err := keypolicy.ParseRoleARN(role)
		if err != nil || arn.Account != acct {
			return nil, badInput("--target-role", p, errors.New("not a role ARN of that account"))
		}
		roles[acct] = role
	}
	for _, t := range targets {
		if roles[t] == "" {
			return nil, badInput("--target", t, errors.New("needs --target-role "+t+"=ROLE_ARN"))
		}
	}
	return roles, nil
}
