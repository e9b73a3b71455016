package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/awsapi"
	"github.com/amigate/packer-plugin-amigate/internal/gate"
	"github.com/amigate/packer-plugin-amigate/internal/keylock"
	"github.com/amigate/packer-plugin-amigate/internal/report"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
	"github.com/amigate/packer-plugin-amigate/version"
)

type checkArgs struct {
	region, paths, keyPolicy, grantFrom, testLaunch, launchTimeout string
	grantWait, instanceType, subnet, lockTimeout                   string
	reportFile, junitFile, markdownFile, format                    string
	orgRoleName, orgExternalID, orgPaths, orgsRole, principals     string
	amis, targets, targetRoles, asgs, orgs, ous, excluded, orgASGs listFlag
	noShare, noGrants, shareSnapshots, allowUnencrypted, dryRun    bool
}

const checkUsage = `usage: amigate check --ami [REGION=]AMI [--ami ...] --target ACCOUNT [--target ...]
                     [--region REGION] [--target-role ACCOUNT=ROLE_ARN] [--asg ACCOUNT=GROUP ...]
                     [--paths asg,instance,copy] [--key-policy patch|check|ignore] [--no-share] [--no-grants]
                     [--grant-from target|source] [--test-launch none|asg|instance] [--launch-timeout 10m]
                     [--grant-wait 5m] [--instance-type TYPE] [--subnet SUBNET] [--share-snapshots]
                     [--allow-unencrypted] [--lock-timeout 20m]
                     [--target-org o-... ...] [--target-ou ou-... ...] [--exclude-account ACCOUNT ...]
                     [--org-role-name NAME] [--org-external-id ID] [--org-asg GROUP ...] [--org-paths asg,instance,copy]
                     [--organizations-role ROLE_ARN] [--key-policy-principals auto|accounts|organization]
                     [--dry-run] [--report FILE] [--junit FILE] [--markdown FILE] [--format text|json]

The gate outside Packer: checks every snapshot's key, shares the AMIs with the
targets, patches the key policy and creates the Auto Scaling grants, then says
whether every target can launch the image. AWS access comes from the SDK's
usual chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...; AWS_ENDPOINT_URL is honoured).
`

const auditUsage = `usage: amigate audit --ami [REGION=]AMI [--ami ...] --target ACCOUNT [--target ...]
                     [--region REGION] [--target-role ACCOUNT=ROLE_ARN] [--asg ACCOUNT=GROUP ...]
                     [--paths asg,instance,copy] [--allow-unencrypted]
                     [--target-org o-... ...] [--target-ou ou-... ...] [--exclude-account ACCOUNT ...]
                     [--org-role-name NAME] [--org-external-id ID] [--org-asg GROUP ...] [--org-paths asg,instance,copy]
                     [--organizations-role ROLE_ARN] [--report FILE] [--junit FILE] [--markdown FILE] [--format text|json]

Checks AMIs already released, and changes nothing: each target still has its
launch permission, each key is still enabled (not disabled, not pending
deletion), and the key policy and grants still give every Auto Scaling
service-linked role of each target (also those with a custom suffix made
since the release, listed with the target role's iam:ListRoles) what it
needs. Exit 1 names what drifted and the fix, so a broken release is found
before a scale-out fails.
`

func runCheck(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return runGate(ctx, "check", args, stdout, stderr)
}

func runAudit(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return runGate(ctx, "audit", args, stdout, stderr)
}

// runGate runs `amigate check`, or `amigate audit` (the same gate changing
// nothing).
func runGate(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	audit := name == "audit"
	// What an audit keeps to, and the defaults of check's flags for it.
	a := checkArgs{keyPolicy: gate.KeyPolicyCheck, testLaunch: gate.TestLaunchNone, noShare: true, noGrants: true, principals: gate.PrincipalsAuto,
		launchTimeout: "10m", grantWait: minutes(gate.DefaultGrantWait), lockTimeout: minutes(keylock.DefaultWait)}
	fs := flag.NewFlagSet("amigate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&a.region, "region", "", "`REGION` of the AMIs given without one (default: the SDK's region)")
	fs.Var(&a.amis, "ami", "`[REGION=]AMI` to gate (repeatable)")
	fs.Var(&a.targets, "target", "target `ACCOUNT` id (repeatable)")
	fs.Var(&a.targetRoles, "target-role", "`ACCOUNT=ROLE_ARN`: a role amigate assumes in a target (repeatable)")
	fs.Var(&a.asgs, "asg", "`ACCOUNT=GROUP`: an Auto Scaling group of a target that launches the AMI (repeatable; needs --target-role)")
	fs.Var(&a.orgs, "target-org", "`ORGANIZATION` (o-... or its ARN) whose every active account is a target (repeatable)")
	fs.Var(&a.ous, "target-ou", "organizational `UNIT` (ou-... or its ARN) whose every active account, in nested OUs too, is a target (repeatable)")
	fs.Var(&a.excluded, "exclude-account", "`ACCOUNT` of the --target-org/--target-ou that is not a target (repeatable)")
	fs.StringVar(&a.orgRoleName, "org-role-name", "", "role `NAME` amigate assumes in each account of the --target-org/--target-ou")
	fs.StringVar(&a.orgExternalID, "org-external-id", "", "external `ID` the --org-role-name role requires")
	fs.Var(&a.orgASGs, "org-asg", "Auto Scaling `GROUP` of each account of the --target-org/--target-ou (repeatable; needs --org-role-name)")
	fs.StringVar(&a.orgPaths, "org-paths", "", "launch `PATHS` of the accounts of the --target-org/--target-ou (default: --paths)")
	fs.StringVar(&a.orgsRole, "organizations-role", "", "`ROLE_ARN` in the management account that lists the organization's accounts (default: the source credentials)")
	fs.StringVar(&a.paths, "paths", "asg,instance", "launch `PATHS` of every target: asg, instance, copy")
	fs.BoolVar(&a.allowUnencrypted, "allow-unencrypted", false, "accept unencrypted snapshots")
	if !audit {
		a.changeFlags(fs)
	}
	fs.StringVar(&a.reportFile, "report", "", "write the JSON report to `FILE`")
	fs.StringVar(&a.junitFile, "junit", "", "write a JUnit XML report to `FILE`")
	fs.StringVar(&a.markdownFile, "markdown", "", "write a Markdown summary to `FILE`")
	fs.StringVar(&a.format, "format", "text", "output `FORMAT` on stdout: text or json (the report)")
	fs.Usage = func() {
		if audit {
			fmt.Fprint(stderr, auditUsage)
		} else {
			fmt.Fprint(stderr, checkUsage)
		}
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitBadInput
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "amigate %s: %v\n", name, err)
		return code
	}
	if fs.NArg() > 0 {
		return fail(exitBadInput, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	opts, err := a.options()
	if err == nil {
		err = a.checkOutputs()
	}
	if err != nil {
		return fail(exitBadInput, err)
	}
	opts.Audit = audit
	sess, err := awsapi.New(ctx, awsapi.Settings{Region: a.region, UserAgent: "amigate/" + version.PluginVersion.FormattedVersion()})
	if err != nil {
		return fail(exitRuntime, err)
	}
	if err := a.resolveRegions(&opts, sess.Region()); err != nil {
		return fail(exitBadInput, err)
	}
	if errs := opts.Validate(); len(errs) > 0 {
		printInputErrors(stderr, name, errs)
		return exitBadInput
	}
	view := newProgressView(stderr)
	opts.OnStatus = view.Status
	rep, runErr := gate.Run(ctx, opts, sess, view.Say)
	view.Close()
	var inputErrs gate.InputErrors
	if errors.As(runErr, &inputErrs) {
		printInputErrors(stderr, name, inputErrs)
		return exitBadInput
	}
	if rep != nil {
		if err := report.WriteFiles(rep, a.reportFile, a.junitFile, a.markdownFile); err != nil {
			return fail(exitRuntime, err)
		}
		if a.format == "json" {
			if err := report.WriteJSON(stdout, rep); err != nil {
				return fail(exitRuntime, fmt.Errorf("write output: %w", err))
			}
		} else {
			report.WriteSummary(stdout, rep)
		}
	}
	switch {
	case runErr != nil:
		return fail(exitRuntime, runErr)
	case !rep.OK:
		return exitGateSaysNo
	}
	return exitOK
}

// changeFlags are check's flags for what it changes, which an audit does
// not; the durations default to what a holds.
func (a *checkArgs) changeFlags(fs *flag.FlagSet) {
	fs.StringVar(&a.keyPolicy, "key-policy", gate.KeyPolicyPatch, "what to do with the key policy: patch, check or ignore")
	fs.StringVar(&a.principals, "key-policy-principals", gate.PrincipalsAuto, "who the key-policy statements name: auto, accounts or organization")
	fs.BoolVar(&a.noShare, "no-share", false, "do not give the targets launch permission")
	fs.BoolVar(&a.shareSnapshots, "share-snapshots", false, "give the targets create-volume permission on the snapshots (implied by the copy path)")
	fs.BoolVar(&a.noGrants, "no-grants", false, "do not create the Auto Scaling grants")
	fs.StringVar(&a.grantFrom, "grant-from", "", "create the grants from `WHERE`: target (through --target-role) or source (default: target when it has a role)")
	fs.StringVar(&a.testLaunch, "test-launch", gate.TestLaunchNone, "launch in each target: none, asg or instance")
	fs.StringVar(&a.launchTimeout, "launch-timeout", a.launchTimeout, "how long a test launch may take")
	fs.StringVar(&a.grantWait, "grant-wait", a.grantWait, "how long after creating a grant a test launch failing on the key is retried (grants take minutes to propagate)")
	fs.StringVar(&a.instanceType, "instance-type", "", "instance `TYPE` of a test launch (default: the launch template's, or a mixed instances group's overrides'; t3.micro for --test-launch instance)")
	fs.StringVar(&a.subnet, "subnet", "", "`SUBNET` of an instance test launch")
	fs.StringVar(&a.lockTimeout, "lock-timeout", a.lockTimeout, "how long to wait for a key's policy lock while another run patches the same key")
	fs.BoolVar(&a.dryRun, "dry-run", false, "compute and print every change, make none; checks that each could be made, and exits 1 on what it cannot check")
}

// minutes writes a whole number of minutes as a flag default ("20m").
func minutes(d time.Duration) string { return strconv.Itoa(int(d.Minutes())) + "m" }

// options turns the flags into the gate's options; every flag is checked
// before any AWS call.
func (a *checkArgs) options() (gate.Options, error) {
	o := gate.Options{
		AMIs:                      map[string]string{},
		TargetOrganizations:       a.orgs,
		TargetOrganizationalUnits: a.ous,
		ExcludeAccounts:           a.excluded,
		OrganizationsRoleARN:      a.orgsRole,
		KeyPolicyPrincipals:       a.principals,
		OrganizationTargets:       gate.MemberTargets{RoleName: a.orgRoleName, ExternalID: a.orgExternalID, AutoScalingGroups: a.orgASGs},
		ShareImage:                !a.noShare,
		ShareSnapshots:            a.shareSnapshots,
		KeyPolicy:                 a.keyPolicy,
		CreateGrants:              !a.noGrants,
		GrantFrom:                 a.grantFrom,
		TestLaunch:                a.testLaunch,
		AllowUnencrypted:          a.allowUnencrypted,
		DryRun:                    a.dryRun,
		InstanceType:              a.instanceType,
		SubnetID:                  a.subnet,
	}
	if a.format != "text" && a.format != "json" {
		return o, badInput("--format", a.format, errors.New("must be text or json"))
	}
	if len(a.amis) == 0 {
		return o, errors.New("--ami is required")
	}
	if len(a.targets) == 0 && len(a.orgs) == 0 && len(a.ous) == 0 {
		return o, errors.New("--target is required (repeat it for each account), or --target-org / --target-ou")
	}
	var err error
	if o.TestLaunchTimeout, err = time.ParseDuration(a.launchTimeout); err != nil || o.TestLaunchTimeout <= 0 {
		return o, badInput("--launch-timeout", a.launchTimeout, errors.New("not a positive duration (such as 10m or 90s)"))
	}
	if o.TestLaunchGrantWait, err = time.ParseDuration(a.grantWait); err != nil || o.TestLaunchGrantWait < 0 {
		return o, badInput("--grant-wait", a.grantWait, errors.New("not a duration of zero or more (such as 5m)"))
	}
	if o.LockTimeout, err = time.ParseDuration(a.lockTimeout); err != nil || o.LockTimeout <= 0 {
		return o, badInput("--lock-timeout", a.lockTimeout, errors.New("not a positive duration (such as 15m)"))
	}
	paths, err := keypolicy.ParsePaths(a.paths)
	if err != nil {
		return o, badInput("--paths", a.paths, err)
	}
	orgPaths := paths
	if a.orgPaths != "" {
		if orgPaths, err = keypolicy.ParsePaths(a.orgPaths); err != nil {
			return o, badInput("--org-paths", a.orgPaths, err)
		}
	}
	if len(a.orgs)+len(a.ous) > 0 {
		o.OrganizationTargets.Paths = orgPaths
	}
	index := map[string]int{}
	for _, acct := range a.targets {
		if _, dup := index[acct]; dup {
			continue
		}
		index[acct] = len(o.Targets)
		o.Targets = append(o.Targets, gate.Target{AccountID: acct, Paths: paths})
	}
	o.ShareSnapshots = o.ShareSnapshots || o.CopyPath()
	for _, v := range a.targetRoles {
		acct, role, ok := strings.Cut(v, "=")
		i, known := index[acct]
		switch {
		case !ok:
			return o, badInput("--target-role", v, errors.New("want ACCOUNT=ROLE_ARN"))
		case !known:
			return o, badInput("--target-role", v, fmt.Errorf("account %s is not one of the --target accounts", acct))
		}
		o.Targets[i].RoleARN = role
	}
	for _, v := range a.asgs {
		acct, group, ok := strings.Cut(v, "=")
		i, known := index[acct]
		switch {
		case !ok:
			return o, badInput("--asg", v, errors.New("want ACCOUNT=GROUP"))
		case !known:
			return o, badInput("--asg", v, fmt.Errorf("account %s is not one of the --target accounts", acct))
		}
		o.Targets[i].AutoScalingGroups = append(o.Targets[i].AutoScalingGroups, group)
	}
	return o, nil
}

// checkOutputs checks --region and that the report files can be written,
// before anything is changed.
func (a *checkArgs) checkOutputs() error {
	if a.region != "" && !gate.ValidRegion(a.region) {
		return badInput("--region", a.region, errors.New("not an AWS region"))
	}
	for _, f := range []struct{ flag, path string }{{"--report", a.reportFile}, {"--junit", a.junitFile}, {"--markdown", a.markdownFile}} {
		if err := report.CheckFile(f.path); err != nil {
			return badInput(f.flag, f.path, err)
		}
	}
	return nil
}

// resolveRegions places the AMIs given without a region in --region (or the
// SDK's region).
func (a *checkArgs) resolveRegions(o *gate.Options, defaultRegion string) error {
	for _, v := range a.amis {
		region, ami, ok := strings.Cut(v, "=")
		if !ok {
			region, ami = defaultRegion, v
			if region == "" {
				return badInput("--ami", v, errors.New("no region: give REGION=AMI, --region or AWS_REGION"))
			}
		}
		if prev, dup := o.AMIs[region]; dup && prev != ami {
			return badInput("--ami", v, fmt.Errorf("a second AMI in %s (%s); give one per region", region, prev))
		}
		o.AMIs[region] = ami
	}
	return nil
}

// fieldFlags maps the configuration names in the gate's errors to this
// command's flags.
var fieldFlags = []struct {
	re   *regexp.Regexp
	flag string
}{
	{regexp.MustCompile(`^ami_ids(\[.*\])?$`), "--ami"},
	{regexp.MustCompile(`^target\[\d+\]\.account_id$`), "--target"},
	{regexp.MustCompile(`^target\[\d+\]\.role_arn$`), "--target-role"},
	{regexp.MustCompile(`^target\[\d+\]\.autoscaling_groups$`), "--asg"},
	{regexp.MustCompile(`^target\[\d+\]\.paths$`), "--paths"},
	{regexp.MustCompile(`^target\[\d+\]\.regions$`), "--region"},
	{regexp.MustCompile(`^target$`), "--target"},
	{regexp.MustCompile(`^target_organizations$`), "--target-org"},
	{regexp.MustCompile(`^target_organizational_units$`), "--target-ou"},
	{regexp.MustCompile(`^exclude_accounts$`), "--exclude-account"},
	{regexp.MustCompile(`^organization_targets\.role_name$`), "--org-role-name"},
	{regexp.MustCompile(`^organization_targets\.external_id$`), "--org-external-id"},
	{regexp.MustCompile(`^organization_targets\.autoscaling_groups$`), "--org-asg"},
	{regexp.MustCompile(`^organization_targets\.paths$`), "--org-paths"},
	{regexp.MustCompile(`^organization_targets$`), "--org-role-name"},
	{regexp.MustCompile(`^organizations_role_arn$`), "--organizations-role"},
	{regexp.MustCompile(`^test_launch_timeout$`), "--launch-timeout"},
	{regexp.MustCompile(`^test_launch_grant_wait$`), "--grant-wait"},
	{regexp.MustCompile(`^subnet_id$`), "--subnet"},
	{regexp.MustCompile(`^lock_timeout$`), "--lock-timeout"},
}

// flagOf names the flag behind a configuration field.
func flagOf(field string) string {
	for _, ff := range fieldFlags {
		if ff.re.MatchString(field) {
			return ff.flag
		}
	}
	return "--" + strings.ReplaceAll(field, "_", "-")
}

// optionFlags rewrites the configuration names in the gate's problems as
// this command's flags.
var optionFlags = strings.NewReplacer(
	`test_launch = "asg"`, "--test-launch asg",
	`test_launch = "instance"`, "--test-launch instance",
	`grant_from = "target"`, "--grant-from target",
	"autoscaling_groups", "--asg",
	"role_arn", "--target-role",
)

func printInputErrors(w io.Writer, command string, errs []gate.FieldError) {
	for _, fe := range errs {
		fe.Field = flagOf(fe.Field)
		fe.Problem = optionFlags.Replace(fe.Problem)
		fmt.Fprintf(w, "amigate %s: %v\n", command, fe)
	}
}
