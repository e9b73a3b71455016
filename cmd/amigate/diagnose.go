package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"

	"github.com/amigate/packer-plugin-amigate/internal/awsapi"
	"github.com/amigate/packer-plugin-amigate/internal/gate"
	"github.com/amigate/packer-plugin-amigate/internal/trail"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
	"github.com/amigate/packer-plugin-amigate/version"
)

const diagnoseUsage = `usage: amigate diagnose --cloudtrail FILE|DIR [--cloudtrail ...] [--format text|json]
       amigate diagnose --region REGION [--since 1h] [--role-arn ARN] [--format text|json]

Finds the KMS calls AWS refused while launching from an encrypted AMI, in
CloudTrail log files (.json or .json.gz as delivered to S3, or folders of
them, read recursively) or online through LookupEvents in the account of
the current credentials (or of --role-arn), and prints them by principal
and key, with the fix. Exit codes: 0 none found, 1 found, 2 bad input
(including an unreadable or corrupt log file), 3 AWS error.
`

func runDiagnose(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	var (
		files                  listFlag
		region, since, roleARN string
		format                 string
	)
	fs := flag.NewFlagSet("amigate diagnose", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&files, "cloudtrail", "CloudTrail log `FILE` or folder (repeatable)")
	fs.StringVar(&region, "region", "", "`REGION` to read CloudTrail in (online)")
	fs.StringVar(&since, "since", "1h", "how far back to read online (`DURATION`)")
	fs.StringVar(&roleARN, "role-arn", "", "a role to assume to read the target's CloudTrail (online)")
	fs.StringVar(&format, "format", "text", "output `FORMAT`: text or json")
	fs.Usage = func() { fmt.Fprint(stderr, diagnoseUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitBadInput
	}
	onlineOnly := ""
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "since" || f.Name == "role-arn" {
			onlineOnly = f.Name
		}
	})
	window, err := time.ParseDuration(since)
	switch {
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case len(files) > 0 && region != "":
		err = errors.New("give --cloudtrail (offline) or --region (online), not both")
	case len(files) > 0 && onlineOnly != "":
		err = fmt.Errorf("--%s reads CloudTrail online: give it with --region, not with --cloudtrail", onlineOnly)
	case len(files) == 0 && region == "":
		err = errors.New("give --cloudtrail FILE|DIR (offline) or --region REGION (online)")
	case err != nil || window <= 0:
		err = badInput("--since", since, errors.New("not a positive duration (such as 1h)"))
	case region != "" && !gate.ValidRegion(region):
		err = badInput("--region", region, errors.New("not an AWS region"))
	case roleARN != "" && !validRole(roleARN):
		err = badInput("--role-arn", roleARN, errors.New("not an IAM role ARN"))
	case format != "text" && format != "json":
		err = badInput("--format", format, errors.New("must be text or json"))
	default:
		err = nil
	}
	if err != nil {
		fmt.Fprintf(stderr, "amigate diagnose: %v\n", err)
		return exitBadInput
	}
	g := trail.NewGrouper()
	if len(files) > 0 {
		for _, f := range files {
			if _, err := os.Stat(f); err != nil {
				fmt.Fprintf(stderr, "amigate diagnose: %v\n", badInput("--cloudtrail", f, errors.Unwrap(err)))
				return exitBadInput
			}
		}
		read, err := trail.ScanPaths(ctx, files, func(_ string, d trail.Denial) error { g.Add(d); return nil })
		if err != nil {
			fmt.Fprintf(stderr, "amigate diagnose: --cloudtrail: %v\n", err)
			if ctx.Err() != nil {
				return exitRuntime // interrupted, not bad input
			}
			return exitBadInput
		}
		if read == 0 {
			fmt.Fprintf(stderr, "amigate diagnose: --cloudtrail %q: no CloudTrail log file (.json, .json.gz) there\n", strings.Join(files, " "))
			return exitBadInput
		}
	} else {
		sess, err := awsapi.New(ctx, awsapi.Settings{Region: region, UserAgent: "amigate/" + version.PluginVersion.FormattedVersion()})
		if err != nil {
			fmt.Fprintf(stderr, "amigate diagnose: %v\n", err)
			return exitRuntime
		}
		cfg := sess.Source(region)
		if roleARN != "" {
			cfg = sess.Role(roleARN, "", region)
		}
		now := time.Now()
		if err := trail.Lookup(ctx, cloudtrail.NewFromConfig(cfg), now.Add(-window), now, func(d trail.Denial) error { g.Add(d); return nil }); err != nil {
			fmt.Fprintf(stderr, "amigate diagnose: %v\n", err)
			return exitRuntime
		}
	}
	found := g.Findings()
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			OK       bool            `json:"ok"`
			Findings []trail.Finding `json:"findings"`
		}{len(found) == 0, found}); err != nil {
			return exitRuntime
		}
	} else {
		writeDenials(stdout, found)
	}
	if len(found) > 0 {
		return exitGateSaysNo
	}
	return exitOK
}

func validRole(arn string) bool {
	_, err := keypolicy.ParseRoleARN(arn)
	return err == nil
}

func writeDenials(w io.Writer, found []trail.Finding) {
	if len(found) == 0 {
		fmt.Fprintln(w, "✔ no KMS denial on a launch path")
		return
	}
	for _, f := range found {
		who := f.Role
		if who == "" {
			who = f.Principal
		}
		fmt.Fprintf(w, "✘ %s on %s: %s (%d)\n", who, f.Key, strings.Join(f.Actions, ", "), f.Count)
		fmt.Fprintf(w, "    %s\n", f.Message)
		fmt.Fprintf(w, "    fix: %s\n", f.Fix)
	}
	fmt.Fprintf(w, "\n✘ %d principal(s) and key(s) with KMS denials on a launch path\n", len(found))
}
