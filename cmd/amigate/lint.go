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

	"github.com/amigate/packer-plugin-amigate/internal/awsjson"
	"github.com/amigate/packer-plugin-amigate/internal/gate"
	"github.com/amigate/packer-plugin-amigate/internal/report"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// inputError is bad input: exit 2, one line naming the flag and the value.
type inputError struct {
	flag, value string
	err         error
}

func (e *inputError) Error() string {
	return fmt.Sprintf("%s %q: %v", e.flag, e.value, e.err)
}

func badInput(flag, value string, err error) error { return &inputError{flag, value, err} }

type lintArgs struct {
	keyPolicy, keyARN, keyMetadata, grants string
	targets, asgRoles, orgPaths, launchers listFlag
	paths, format                          string
}

func runLint(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var a lintArgs
	fs := flag.NewFlagSet("amigate lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&a.keyPolicy, "key-policy", "", "key policy `FILE`: a policy document or `aws kms get-key-policy` output (- for stdin)")
	fs.StringVar(&a.keyARN, "key-arn", "", "the key's `ARN`")
	fs.StringVar(&a.keyMetadata, "key-metadata", "", "`FILE` of aws kms describe-key output (default: customer managed, enabled, symmetric)")
	fs.StringVar(&a.grants, "grants", "", "`FILE` of aws kms list-grants output")
	fs.Var(&a.targets, "target", "target `ACCOUNT` id (repeatable)")
	fs.Var(&a.asgRoles, "asg-role", "Auto Scaling service-linked role `ARN` of a target (repeatable; default the account's AWSServiceRoleForAutoScaling)")
	fs.Var(&a.launchers, "principal", "the principal that launches in a target, `ACCOUNT=ARN` of a role or user (repeatable; default any role or user of the account, whose ARN, tags and sign-in amigate cannot know)")
	fs.Var(&a.orgPaths, "org-path", "a target's place in its organization, `ACCOUNT=o-ORG/r-ROOT/ou-.../` (its principals' aws:PrincipalOrgPaths; repeatable; default unknown: no organization keys)")
	fs.StringVar(&a.paths, "paths", "asg,instance", "launch `PATHS` to check: asg, instance, copy")
	fs.StringVar(&a.format, "format", "text", "output `FORMAT`: text or json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: amigate lint --key-policy FILE --key-arn ARN [--key-metadata FILE] [--grants FILE]\n                    --target ACCOUNT [--target ACCOUNT ...] [--asg-role ARN ...]\n                    [--principal ACCOUNT=ARN ...] [--org-path ACCOUNT=o-ORG/r-ROOT/ou-.../ ...]\n                    [--paths asg,instance,copy] [--format text|json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitBadInput
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "amigate lint: unexpected argument %q\n", fs.Arg(0))
		return exitBadInput
	}
	key, targets, err := a.load(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "amigate lint: %v\n", err)
		return exitBadInput
	}
	v := keypolicy.CheckWith(key, targets, keypolicy.CheckOptions{Now: time.Now()})
	if a.format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			fmt.Fprintf(stderr, "amigate lint: write output: %v\n", err)
			return exitRuntime
		}
	} else {
		report.WriteVerdictText(stdout, v)
	}
	if !v.OK {
		return exitGateSaysNo
	}
	return exitOK
}

// load validates every argument and reads every file; nothing is printed
// on stdout when it fails.
func (a *lintArgs) load(stdin io.Reader) (keypolicy.Key, []keypolicy.Target, error) {
	var key keypolicy.Key
	if a.format != "text" && a.format != "json" {
		return key, nil, badInput("--format", a.format, errors.New("must be text or json"))
	}
	switch {
	case a.keyPolicy == "":
		return key, nil, errors.New("--key-policy is required")
	case a.keyARN == "":
		return key, nil, errors.New("--key-arn is required")
	case len(a.targets) == 0:
		return key, nil, errors.New("--target is required (repeat it for each account)")
	}
	keyARN, err := keypolicy.ParseKeyARN(a.keyARN)
	switch {
	case err != nil:
		return key, nil, badInput("--key-arn", a.keyARN, errors.New("not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY_ID)"))
	case !gate.ValidRegion(keyARN.Region):
		return key, nil, badInput("--key-arn", a.keyARN, fmt.Errorf("%q is not an AWS region", keyARN.Region))
	}
	paths, err := keypolicy.ParsePaths(a.paths)
	if err != nil {
		return key, nil, badInput("--paths", a.paths, err)
	}
	targets, err := a.targetList(paths)
	if err != nil {
		return key, nil, err
	}
	key = keypolicy.Key{ARN: keyARN.String(), Manager: "CUSTOMER", State: "Enabled", Spec: "SYMMETRIC_DEFAULT", Usage: "ENCRYPT_DECRYPT"}
	// Standard input can be read once.
	stdinBy := ""
	for _, f := range []struct{ flag, value string }{{"--key-policy", a.keyPolicy}, {"--key-metadata", a.keyMetadata}, {"--grants", a.grants}} {
		if f.value != "-" {
			continue
		}
		if stdinBy != "" {
			return key, nil, badInput(f.flag, "-", fmt.Errorf("standard input is already read by %s; give a file", stdinBy))
		}
		stdinBy = f.flag
	}

	data, err := readInput(a.keyPolicy, stdin)
	if err != nil {
		return key, nil, badInput("--key-policy", a.keyPolicy, err)
	}
	if key.Policy, err = awsjson.KeyPolicy(data); err != nil {
		return key, nil, badInput("--key-policy", a.keyPolicy, err)
	}
	if err := keypolicy.ValidateKeyPolicy(key.Policy); err != nil {
		return key, nil, badInput("--key-policy", a.keyPolicy, err)
	}
	if a.keyMetadata != "" {
		data, err := readInput(a.keyMetadata, stdin)
		if err != nil {
			return key, nil, badInput("--key-metadata", a.keyMetadata, err)
		}
		m, err := awsjson.DescribeKey(data)
		if err != nil {
			return key, nil, badInput("--key-metadata", a.keyMetadata, err)
		}
		if m.Arn != key.ARN {
			return key, nil, badInput("--key-metadata", a.keyMetadata, fmt.Errorf("describes key %s, not --key-arn %s", m.Arn, key.ARN))
		}
		// A field describe-key output leaves out keeps its default.
		for dst, v := range map[*string]string{&key.Manager: m.KeyManager, &key.State: m.KeyState, &key.Spec: m.KeySpec, &key.Usage: m.KeyUsage, &key.Origin: m.Origin} {
			if v != "" {
				*dst = v
			}
		}
	}
	if a.grants != "" {
		data, err := readInput(a.grants, stdin)
		if err != nil {
			return key, nil, badInput("--grants", a.grants, err)
		}
		if key.Grants, err = awsjson.ListGrants(data, key.ARN); err != nil {
			return key, nil, badInput("--grants", a.grants, err)
		}
	}
	return key, targets, nil
}

func (a *lintArgs) targetList(paths []keypolicy.Path) ([]keypolicy.Target, error) {
	var targets []keypolicy.Target
	index := map[string]int{}
	for _, acct := range a.targets {
		if !keypolicy.ValidAccountID(acct) {
			return nil, badInput("--target", acct, errors.New("not a 12-digit AWS account id"))
		}
		if _, dup := index[acct]; dup {
			continue
		}
		index[acct] = len(targets)
		targets = append(targets, keypolicy.Target{Account: acct, Paths: paths})
	}
	for _, role := range a.asgRoles {
		arn, err := keypolicy.ParseRoleARN(role)
		if err != nil {
			return nil, badInput("--asg-role", role, errors.New("not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"))
		}
		i, ok := index[arn.Account]
		if !ok {
			return nil, badInput("--asg-role", role, fmt.Errorf("account %s is not one of the --target accounts", arn.Account))
		}
		targets[i].ASGRoles = append(targets[i].ASGRoles, role)
	}
	for _, v := range a.launchers {
		acct, principal, ok := strings.Cut(v, "=")
		if !ok {
			return nil, badInput("--principal", v, errors.New("want ACCOUNT=ARN of the role or user that launches, such as 111122223333=arn:aws:iam::111122223333:role/Deployer"))
		}
		i, known := index[acct]
		arn, err := keypolicy.ParsePrincipalARN(principal)
		switch {
		case !keypolicy.ValidAccountID(acct):
			return nil, badInput("--principal", v, fmt.Errorf("%q is not a 12-digit AWS account id", acct))
		case !known:
			return nil, badInput("--principal", v, fmt.Errorf("account %s is not one of the --target accounts", acct))
		case err != nil:
			return nil, badInput("--principal", v, errors.New("not the ARN of an IAM role or user (arn:aws:iam::ACCOUNT:role/NAME)"))
		case arn.Account != acct:
			return nil, badInput("--principal", v, fmt.Errorf("%s is not in account %s", principal, acct))
		case strings.ContainsAny(arn.Resource, "*?"):
			return nil, badInput("--principal", v, errors.New("names no single principal: IAM names have no wildcards"))
		case targets[i].Principal != "" && targets[i].Principal != principal:
			return nil, badInput("--principal", v, fmt.Errorf("account %s already has the principal %s", acct, targets[i].Principal))
		}
		targets[i].Principal = principal
	}
	for _, v := range a.orgPaths {
		acct, path, ok := strings.Cut(v, "=")
		if !ok {
			return nil, badInput("--org-path", v, errors.New("want ACCOUNT=o-ORG/r-ROOT/ou-.../, such as 111122223333=o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/"))
		}
		i, known := index[acct]
		switch {
		case !keypolicy.ValidAccountID(acct):
			return nil, badInput("--org-path", v, fmt.Errorf("%q is not a 12-digit AWS account id", acct))
		case !known:
			return nil, badInput("--org-path", v, fmt.Errorf("account %s is not one of the --target accounts", acct))
		}
		norm, _, err := keypolicy.ParseOrgPath(path)
		if err != nil {
			return nil, badInput("--org-path", v, err)
		}
		if prev := targets[i].OrgPath; prev != "" && prev != norm {
			return nil, badInput("--org-path", v, fmt.Errorf("account %s already has the organization path %s", acct, prev))
		}
		targets[i].OrgPath = norm
	}
	return targets, nil
}

// readInput reads a file, or stdin for "-".
func readInput(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err // the flag already names the file
		}
		return nil, err
	}
	return data, nil
}
