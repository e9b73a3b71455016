package gate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/amigate/packer-plugin-amigate/internal/keylock"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// A dry run changes nothing, so it checks instead that each change could be
// made, by the principal that would make it:
//   - with the service's own DryRun where it has one (EC2's
//     ModifyImageAttribute and ModifySnapshotAttribute, KMS's CreateGrant):
//     AWS's own answer, with every policy, boundary and SCP counted;
//   - where there is none (PutKeyPolicy, the lock's aliases), or where KMS
//     would refuse only because the key policy is not patched yet, with the
//     key policy as amigate evaluates it and IAM's policy simulator for the
//     principal's own policies.
//
// What none of these can establish is a DRY_RUN_UNVERIFIED error, and so is
// a test launch, which a dry run does not make: a dry run is never green
// where the real run could be red.

// caller is who the source credentials are, for the dry run's checks.
type caller struct {
	arn string // as STS names it: a root, user or assumed-role session
	// policyARN is the IAM entity whose policies apply ("" for the root
	// user, whose are all-allowing).
	policyARN string
	root      bool
}

// sourceIdentity reads (once) who the source credentials are, as STS
// names them.
func (r *runState) sourceIdentity(ctx context.Context, region string) (*sts.GetCallerIdentityOutput, error) {
	r.identityOnce.Do(func() {
		r.identity, r.identityErr = r.cl.STS(source, region).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if r.identityErr != nil {
			r.identityErr = fmt.Errorf("read the source identity: %w", r.identityErr)
		}
	})
	return r.identity, r.identityErr
}

// sourceCaller reads (once) who the source credentials are, and the IAM
// entity whose policies apply to them (for the policy simulator).
func (r *runState) sourceCaller(ctx context.Context, region string) (caller, error) {
	r.callerOnce.Do(func() {
		out, err := r.sourceIdentity(ctx, region)
		if err != nil {
			r.callerErr = err
			return
		}
		c := caller{arn: aws.ToString(out.Arn)}
		a, _ := keypolicy.ParseARN(c.arn)
		switch {
		case a.Service == "iam" && a.Resource == "root":
			c.root = true
		case a.Service == "sts" && strings.HasPrefix(a.Resource, "assumed-role/"):
			// The session names its role without the role's path; IAM has
			// the full ARN the simulator needs.
			name := strings.SplitN(strings.TrimPrefix(a.Resource, "assumed-role/"), "/", 2)[0]
			role, err := r.cl.IAM(source, region).GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
			if err == nil {
				c.policyARN = aws.ToString(role.Role.Arn)
			}
		default:
			c.policyARN = c.arn
		}
		r.caller = c
	})
	return r.caller, r.callerErr
}

// permission is an action on a resource.
type permission struct{ action, resource string }

// simulated is the policy simulator's answer for one permission: its
// decision ("allowed", "implicitDeny", "explicitDeny") and the condition
// keys the policies test that it was given no value for.
type simulated struct {
	decision string
	missing  []string
}

// simulate asks IAM's policy simulator, as who, what the policies of
// policyARN (a role or user) decide for each permission, in the request
// context given (the condition keys the real call would carry).
func (r *runState) simulate(ctx context.Context, who principal, region, policyARN string, perms []permission, reqContext map[string][]string) (map[permission]simulated, error) {
	var actions, resources []string
	for _, p := range perms {
		actions = appendNew(actions, p.action)
		resources = appendNew(resources, p.resource)
	}
	out := map[permission]simulated{}
	pages := iam.NewSimulatePrincipalPolicyPaginator(r.cl.IAM(who, region), &iam.SimulatePrincipalPolicyInput{
		PolicySourceArn: aws.String(policyARN), ActionNames: actions, ResourceArns: resources, ContextEntries: contextEntries(reqContext)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, res := range page.EvaluationResults {
			out[permission{aws.ToString(res.EvalActionName), aws.ToString(res.EvalResourceName)}] = simulated{string(res.EvalDecision), res.MissingContextValues}
		}
	}
	return out, nil
}

// contextEntries turns a request context into the simulator's entries,
// typed as IAM's condition keys are.
func contextEntries(reqContext map[string][]string) []iamtypes.ContextEntry {
	keys := sortedKeys(reqContext)
	out := make([]iamtypes.ContextEntry, 0, len(keys))
	for _, k := range keys {
		typ := iamtypes.ContextKeyTypeEnumString
		switch {
		case boolKeys[k]:
			typ = iamtypes.ContextKeyTypeEnumBoolean
		case keypolicy.IsMultiValued(k):
			typ = iamtypes.ContextKeyTypeEnumStringList
		}
		out = append(out, iamtypes.ContextEntry{ContextKeyName: aws.String(k), ContextKeyType: typ, ContextKeyValues: reqContext[k]})
	}
	return out
}

var boolKeys = map[string]bool{"aws:viaawsservice": true, "aws:securetransport": true, "aws:principalisawsservice": true,
	"aws:multifactorauthpresent": true, "kms:grantisforawsresource": true, "kms:multiregion": true}

// notVerifiedBecause says why an allowed decision is not a verified one:
// the policies test condition keys the simulator had no value for.
func (s simulated) notVerifiedBecause() string {
	if s.decision != "allowed" || len(s.missing) == 0 {
		return ""
	}
	return "the IAM policies test " + strings.Join(s.missing, ", ") + ", which the real call's context would decide and the policy simulator was not given"
}

func appendNew(list []string, s string) []string {
	if contains(list, s) {
		return list
	}
	return append(list, s)
}

// sourceMay checks that the source principal may make direct KMS calls on
// the key: each action on the key (the key policy as it is, with the
// request's own condition keys in reqContext), and, where the key policy
// leaves it to IAM, the principal's own policies for those and for the
// IAM-only permissions in iamOnly. It returns why each refused action is
// refused, or what could not be checked.
func (r *runState) sourceMay(ctx context.Context, ks *keyState, actions []string, reqContext map[string][]string, iamOnly []permission) (refused map[string]string, unchecked string, err error) {
	c, err := r.sourceCaller(ctx, ks.region)
	if err != nil {
		return nil, "", err
	}
	// Beyond what keypolicy knows of a direct call: the call's own keys,
	// and aws:PrincipalArn of a session, its role's ARN when GetRole told
	// it (with its path).
	known := map[string][]string{}
	for k, v := range reqContext {
		known[k] = v
	}
	if arn := c.principalARN(); arn != "" {
		known["aws:principalarn"] = []string{arn}
	}
	now := time.Now()
	direct := func(action string) (keypolicy.Request, error) {
		req, err := keypolicy.DirectRequest(&ks.key, c.arn, action, now, known)
		if err != nil {
			return req, fmt.Errorf("check the permissions on %s: %w", ks.key.ARN, err)
		}
		return req, nil
	}
	refused = map[string]string{}
	needIdentity := append([]permission(nil), iamOnly...)
	for _, action := range actions {
		req, err := direct(action)
		if err != nil {
			return nil, "", err
		}
		auth := keypolicy.Authorize(&ks.key, req, nil)
		if auth.Decision != keypolicy.Allowed {
			refused[action] = fmt.Sprintf("the key policy does not allow %s to call it (%s)", c.arn, auth.Decision)
			continue
		}
		if !auth.KeyPolicy.Direct || auth.CrossAccount {
			needIdentity = append(needIdentity, permission{action, ks.key.ARN})
		}
	}
	if c.root || len(refused) > 0 || len(needIdentity) == 0 {
		return refused, "", nil
	}
	if c.policyARN == "" {
		return refused, fmt.Sprintf("the IAM policies of %s could not be read: iam:GetRole on its role was refused", c.arn), nil
	}
	// The simulator takes one context for every permission: a direct
	// call's, which is the same for each action.
	req, err := direct(needIdentity[0].action)
	if err != nil {
		return nil, "", err
	}
	decisions, err := r.simulate(ctx, source, ks.region, c.policyARN, needIdentity, req.Context)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", err
		}
		return refused, fmt.Sprintf("IAM's policy simulator could not be asked about %s: %v", c.policyARN, err), nil
	}
	for _, p := range needIdentity {
		d := decisions[p]
		if d.decision != "allowed" {
			refused[p.action] = fmt.Sprintf("the IAM policies of %s do not allow it on %s (IAM policy simulator: %s)", c.policyARN, p.resource, orUnknown(d.decision))
		} else if why := d.notVerifiedBecause(); why != "" && unchecked == "" {
			unchecked = p.action + " on " + p.resource + ": " + why
		}
	}
	return refused, unchecked, nil
}

// sourcePatchFindings checks that the source principal may patch the key's
// policy as the real run would: kms:PutKeyPolicy on the key, and, for the
// key policy lock, kms:CreateAlias and kms:DeleteAlias on the key and the
// lock's alias, and kms:ListAliases. The key policy is the one before the
// patch. What cannot be checked gets the given severity.
func (r *runState) sourcePatchFindings(ctx context.Context, ks *keyState, uncheckedSeverity string) ([]keypolicy.Finding, error) {
	keyARN, err := keypolicy.ParseKeyARN(ks.key.ARN)
	if err != nil {
		return nil, fmt.Errorf("check the permissions on %s: %w", ks.key.ARN, err)
	}
	aliasARN := "arn:" + keyARN.Partition + ":kms:" + keyARN.Region + ":" + keyARN.Account + ":" + keylock.Name(ks.key.ARN)
	actions := []string{"kms:PutKeyPolicy", "kms:CreateAlias", "kms:DeleteAlias"}
	refused, unchecked, err := r.sourceMay(ctx, ks, actions, nil,
		[]permission{{"kms:CreateAlias", aliasARN}, {"kms:DeleteAlias", aliasARN}, {"kms:ListAliases", "*"}})
	if err != nil {
		return nil, err
	}
	var findings []keypolicy.Finding
	for _, action := range append(actions, "kms:ListAliases") {
		if why, ok := refused[action]; ok {
			findings = append(findings, keypolicy.Finding{Code: keypolicy.CodePermissionMissing, Severity: keypolicy.SeverityError, Actions: []string{action},
				Message: fmt.Sprintf("patching the key policy of %s needs %s: %s", ks.key.ARN, action, why),
				Fix:     "give the source principal the permissions docs/acceptance.md lists (key policy and IAM policy)"})
		}
	}
	if unchecked != "" {
		findings = append(findings, unverified(uncheckedSeverity,
			fmt.Sprintf("whether the source principal may patch the key policy of %s (kms:PutKeyPolicy, and the lock's kms:CreateAlias, kms:DeleteAlias, kms:ListAliases) was not checked: %s", ks.key.ARN, unchecked),
			"give the source principal iam:GetRole and iam:SimulatePrincipalPolicy on its own role, or run without dry_run"))
	}
	return findings, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "no answer"
	}
	return s
}

// principalARN is the caller's aws:PrincipalArn: its role's ARN for a
// session, "" when GetRole could not tell it (the role's path).
func (c caller) principalARN() string {
	if c.root {
		return c.arn
	}
	return c.policyARN
}

func unverified(severity, message, fix string) keypolicy.Finding {
	return keypolicy.Finding{Code: keypolicy.CodeDryRunUnverified, Severity: severity, Actions: []string{}, Message: message, Fix: fix}
}

// dryRunGrant checks that the grant could be created, and reports whether
// it would be. From the target, KMS's DryRun answers for the target's
// policies and the key policy as it is; when KMS refuses only because the
// key policy is not yet patched to let the target create the grant, IAM's
// simulator answers for the target role's own policies, and the planned key
// policy (already the key's in a dry run) for the rest. From the source,
// whose key policy amigate evaluates itself, the source's policies are
// checked as for the patch.
func (r *runState) dryRunGrant(ctx context.Context, ks *keyState, g keypolicy.Grant, t Target, who principal, from, fromAccount string, in *kms.CreateGrantInput) (bool, error) {
	if from == GrantFromSource {
		refused, unchecked, err := r.sourceMay(ctx, ks, []string{"kms:CreateGrant"}, grantContext(g), nil)
		switch {
		case err != nil:
			return false, err
		case refused["kms:CreateGrant"] != "":
			r.grantFailed(ks, g, t, from, fromAccount, refused["kms:CreateGrant"])
			return false, nil
		case unchecked != "":
			r.grantUnverified(ks, g, fmt.Sprintf("whether the source principal may create the grant for %s was not checked: %s", g.GranteePrincipal, unchecked),
				"give the source principal iam:GetRole and iam:SimulatePrincipalPolicy on its own role, or run without dry_run")
		}
		return true, nil
	}
	in.DryRun = aws.Bool(true)
	_, err := r.cl.KMS(who, ks.region).CreateGrant(ctx, in)
	var apiErr smithy.APIError
	switch {
	case isCode(err, "DryRunOperationException"):
		return true, nil
	case err == nil:
		return false, fmt.Errorf("dry run of the grant for %s on %s: KMS answered a DryRun as if it had created the grant", g.GranteePrincipal, ks.key.ARN)
	case !errors.As(err, &apiErr):
		return false, fmt.Errorf("dry run of the grant for %s on %s from %s: %w", g.GranteePrincipal, ks.key.ARN, fromAccount, err)
	case apiErr.ErrorCode() != "AccessDeniedException" || !ks.patchLetsCreateGrant(t.AccountID) || identityRefusal(apiErr.ErrorMessage()):
		// Only a refusal the pending patch could lift is looked at again;
		// one by the target's own policies (or an explicit deny anywhere)
		// is the real run's too.
		r.grantFailed(ks, g, t, from, fromAccount, apiErr.ErrorCode()+": "+apiErr.ErrorMessage())
		return false, nil
	}
	// The context of the real call: the target's role calling KMS directly.
	known := grantContext(g)
	if path := r.orgPath(t.AccountID); path != "" {
		known["aws:principalorgid"] = []string{strings.SplitN(path, "/", 2)[0]}
		known["aws:principalorgpaths"] = []string{path}
	}
	req, err := keypolicy.DirectRequest(&ks.key, t.RoleARN, "kms:CreateGrant", time.Now(), known)
	if err != nil {
		return false, fmt.Errorf("dry run of the grant for %s: %w", g.GranteePrincipal, err)
	}
	perm := permission{"kms:CreateGrant", ks.key.ARN}
	decisions, err := r.simulate(ctx, who, ks.region, t.RoleARN, []permission{perm}, req.Context)
	if err != nil {
		if ctx.Err() != nil {
			return false, err
		}
		r.grantUnverified(ks, g, fmt.Sprintf("whether %s may create the grant for %s was not checked: the key policy does not let it yet (the run would patch that), and IAM's policy simulator could not be asked: %v", t.RoleARN, g.GranteePrincipal, err),
			fmt.Sprintf("give %s iam:SimulatePrincipalPolicy on itself, or run without dry_run", t.RoleARN))
		return true, nil
	}
	d := decisions[perm]
	if d.decision != "allowed" {
		r.grantFailed(ks, g, t, from, fromAccount, fmt.Sprintf("no identity-based policy of %s allows kms:CreateGrant on the key (IAM policy simulator: %s)", t.RoleARN, orUnknown(d.decision)))
		return false, nil
	}
	if why := d.notVerifiedBecause(); why != "" {
		r.grantUnverified(ks, g, fmt.Sprintf("whether %s may create the grant for %s was not checked: %s", t.RoleARN, g.GranteePrincipal, why),
			"run without dry_run, or remove the conditions on keys the simulator cannot be given")
	}
	return true, nil
}

// grantContext is the condition keys a CreateGrant of g carries that its
// caller sets: a direct call's, not one for an AWS resource.
func grantContext(g keypolicy.Grant) map[string][]string {
	return map[string][]string{"kms:granteeprincipal": {g.GranteePrincipal}, "kms:grantoperations": g.Operations, "kms:grantisforawsresource": {"false"}}
}

// identityRefusal reports whether KMS's AccessDenied says that the
// caller's own policies refused, or that an explicit deny applies: no
// key-policy patch lifts either (AWS names the kind of policy in the
// message: "because no identity-based policy allows ...", "with an
// explicit deny in a ... policy").
func identityRefusal(message string) bool {
	return strings.Contains(message, "explicit deny") || strings.Contains(message, "no identity-based policy")
}

// grantUnverified records what a dry run could not check about a grant; the
// grantee's path reports it.
func (r *runState) grantUnverified(ks *keyState, g keypolicy.Grant, message, fix string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ks.unverified == nil {
		ks.unverified = map[string]keypolicy.Finding{}
	}
	ks.unverified[g.GranteePrincipal] = unverified(keypolicy.SeverityError, message, fix)
}

// patchLetsCreateGrant reports whether the planned patch is what lets the
// account create its Auto Scaling grants on the key.
func (ks *keyState) patchLetsCreateGrant(account string) bool {
	if ks.plan == nil {
		return false
	}
	for _, p := range ks.plan.Added[keypolicy.SidAutoScalingGrants] {
		if a, err := keypolicy.ParseARN(p); err == nil && a.Account == account {
			return true
		}
	}
	// In the organization mode the statement names the OU, and the plan
	// lists the accounts it was added for.
	for sid, accounts := range ks.plan.OrgAccounts {
		if strings.HasPrefix(sid, keypolicy.SidOrgAutoScalingGrants) && contains(accounts, account) {
			return true
		}
	}
	return false
}

// dryRunEC2 runs an EC2 call with DryRun set: DryRunOperation means the
// real call would be allowed. A refusal is a PERMISSION_MISSING finding.
func (r *runState) dryRunEC2(what, action string, call func() error) error {
	err := call()
	var apiErr smithy.APIError
	switch {
	case isCode(err, "DryRunOperation"):
		return nil
	case isCode(err, "UnauthorizedOperation"):
		errors.As(err, &apiErr)
		f := keypolicy.Finding{Code: keypolicy.CodePermissionMissing, Severity: keypolicy.SeverityError, Actions: []string{action},
			Message: fmt.Sprintf("the source principal may not %s: %s", what, apiErr.ErrorMessage()),
			Fix:     "give the source principal " + action + " (docs/acceptance.md)"}
		r.say("✘ " + f.Code + ": " + f.Message)
		r.addFinding(f)
		return nil
	case err == nil:
		return fmt.Errorf("dry run: EC2 answered a DryRun call to %s as if it had made it", what)
	}
	return fmt.Errorf("dry run: %s: %w", what, err)
}

// testLaunchUnverified is what a dry run says in place of a test launch.
func testLaunchUnverified(mode string) keypolicy.Finding {
	return unverified(keypolicy.SeverityError,
		fmt.Sprintf("a dry run makes no test launch (test_launch = %q): the verdict rests on the policies alone, which the real run's launch could still contradict", mode),
		"run without dry_run to test-launch, or with test_launch = \"none\" to preview the policy changes only")
}

// callerState holds sourceIdentity's and sourceCaller's answers.
type callerState struct {
	identityOnce sync.Once
	identity     *sts.GetCallerIdentityOutput
	identityErr  error

	callerOnce sync.Once
	caller     caller
	callerErr  error
}
