package keypolicy

import (
	"fmt"
	"strings"
	"time"
)

// ParsePath reads a path name.
func ParsePath(s string) (Path, error) {
	switch p := Path(strings.TrimSpace(s)); p {
	case PathASG, PathInstance, PathCopy:
		return p, nil
	}
	return "", fmt.Errorf("unknown path %q (want asg, instance or copy)", s)
}

// ParsePaths reads a comma-separated list of path names.
func ParsePaths(s string) ([]Path, error) {
	var out []Path
	for _, f := range strings.Split(s, ",") {
		p, err := ParsePath(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// AutoScalingGrantOperations are the operations the Auto Scaling
// service-linked role needs on a key from another account (EC2 Auto Scaling
// User Guide, "Required AWS KMS key policy for use with encrypted volumes").
var AutoScalingGrantOperations = []string{"Decrypt", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo", "CreateGrant"}

// DefaultAutoScalingRole is the ARN of an account's default Auto Scaling
// service-linked role.
func DefaultAutoScalingRole(partition, account string) string {
	return "arn:" + partition + ":iam::" + account + ":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
}

// pathAction is one KMS call a launch path makes, and whether EC2 makes it
// as a grant for an AWS resource.
type pathAction struct {
	action       string
	createsGrant bool
	withContext  bool // carries the volume's encryption context
}

// Actions each path needs on the source key (DESIGN §1.2).
var pathActions = map[Path][]pathAction{
	PathASG: {
		{"kms:Decrypt", false, true},
		{"kms:GenerateDataKeyWithoutPlaintext", false, true},
		{"kms:ReEncryptFrom", false, true},
		{"kms:ReEncryptTo", false, true},
		{"kms:CreateGrant", true, false},
	},
	PathInstance: {
		{"kms:CreateGrant", true, false},
		{"kms:Decrypt", false, true},
		{"kms:DescribeKey", false, false},
		{"kms:GenerateDataKeyWithoutPlaintext", false, true},
		{"kms:ReEncryptFrom", false, true},
		{"kms:ReEncryptTo", false, true},
	},
	PathCopy: {
		{"kms:Decrypt", false, true},
		{"kms:DescribeKey", false, false},
		{"kms:ReEncryptFrom", false, true},
		{"kms:CreateGrant", true, false},
	},
}

// newVolumeID stands for the volume a launch creates: a grant constrained
// to an existing volume's encryption context cannot serve it.
const newVolumeID = "vol-0a1b2c3d4e5f60000"

// multiRegion is kms:MultiRegion, which KMS supplies for every operation on
// a key (AWS KMS Developer Guide, "AWS KMS condition keys"): multi-Region
// keys, primary and replicas, have ids that start with "mrk-" (AWS KMS
// Developer Guide, "How multi-Region keys work").
func multiRegion(key ARN) []string {
	if strings.HasPrefix(key.Resource, "key/mrk-") {
		return valueTrue
	}
	return valueFalse
}

// networkKeys are condition keys about where a request comes from; calls
// EC2 makes for the user do not come from the user's network.
var networkKeys = map[string]bool{
	"aws:sourceip": true, "aws:vpcsourceip": true, "aws:sourcevpc": true, "aws:sourcevpce": true,
}

// CheckOptions are what a verdict needs beyond the key and the targets.
type CheckOptions struct {
	// Now is when the launches happen: the requests' aws:CurrentTime and
	// aws:EpochTime, which AWS always sends (IAM User Guide, "AWS global
	// condition context keys"). The zero time means not known: a
	// condition on either key is then undecidable (a Deny counts, an
	// Allow does not). The gate and lint pass the current time.
	Now time.Time
}

// Check gives the verdict with no time given (see CheckWith).
func Check(key Key, targets []Target) Verdict {
	return CheckWith(key, targets, CheckOptions{})
}

// CheckWith gives the verdict: can every target launch, on each of its
// paths, an image whose snapshots are encrypted with key?
func CheckWith(key Key, targets []Target, opts CheckOptions) Verdict {
	key.indexGrants()
	v := Verdict{
		OK:       true,
		Key:      KeyInfo{ARN: key.ARN, Manager: key.Manager, State: key.State},
		Findings: CheckKeyMetadata(key),
	}
	for _, f := range v.Findings {
		if f.Severity == SeverityError {
			v.OK = false
		}
	}
	keyARN, err := ParseKeyARN(key.ARN)
	if err != nil {
		v.OK = false
		v.Findings = append(v.Findings, Finding{Code: CodeKeyPolicyMissing, Severity: SeverityError, Actions: []string{},
			Message: fmt.Sprintf("cannot evaluate the key policy: %v", err), Fix: "give the key's full ARN"})
		return v
	}
	env := newRequestEnv(&key, keyARN, opts.Now)
	for _, t := range targets {
		tv := TargetVerdict{Account: t.Account, OK: true}
		for _, p := range t.paths() {
			for _, principal := range t.principals(keyARN.Partition, p) {
				pv := checkPath(&key, env, t, p, principal)
				tv.OK = tv.OK && pv.OK
				tv.Paths = append(tv.Paths, pv)
			}
		}
		v.OK = v.OK && tv.OK
		v.Targets = append(v.Targets, tv)
	}
	return v
}

// CheckKeyMetadata applies the key-level rules of DESIGN §1.1.
func CheckKeyMetadata(key Key) []Finding {
	out := []Finding{}
	if strings.EqualFold(key.Manager, "AWS") {
		out = append(out, Finding{Code: CodeAWSManagedKey, Severity: SeverityError, Actions: []string{},
			Message: fmt.Sprintf("key %s is AWS managed (such as aws/ebs): its policy cannot be changed, so no other account can ever use it", key.ARN),
			Fix:     "re-encrypt the image with a customer managed key: aws ec2 copy-image --encrypted --kms-key-id <customer managed key ARN> ..., or set kms_key_id/encrypt_boot in the builder"})
	}
	if key.State != "" && key.State != "Enabled" {
		out = append(out, Finding{Code: CodeKeyNotEnabled, Severity: SeverityError, Actions: []string{},
			Message: fmt.Sprintf("key %s is %s: nothing can decrypt the snapshots until it is enabled", key.ARN, key.State),
			Fix:     keyStateFix(key)})
	}
	spec := key.Spec
	if spec == "" {
		spec = "SYMMETRIC_DEFAULT"
	}
	usage := key.Usage
	if usage == "" {
		usage = "ENCRYPT_DECRYPT"
	}
	if spec != "SYMMETRIC_DEFAULT" || usage != "ENCRYPT_DECRYPT" {
		out = append(out, Finding{Code: CodeKeySpec, Severity: SeverityError, Actions: []string{},
			Message: fmt.Sprintf("key %s is %s for %s: EBS encryption needs a symmetric encryption key (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT)", key.ARN, spec, usage),
			Fix:     "encrypt the image with a symmetric customer managed key"})
	}
	return out
}

func keyStateFix(key Key) string {
	if key.State == "PendingDeletion" {
		return "aws kms cancel-key-deletion --key-id " + key.ARN + " && aws kms enable-key --key-id " + key.ARN
	}
	return "aws kms enable-key --key-id " + key.ARN
}

func (t Target) paths() []Path {
	if len(t.Paths) == 0 {
		return DefaultPaths
	}
	return t.Paths
}

// principals is who acts on the path: the Auto Scaling service-linked roles
// on asg, the launching principal otherwise (AnyPrincipal when none is
// given).
func (t Target) principals(partition string, p Path) []string {
	if p == PathASG {
		if len(t.ASGRoles) == 0 {
			return []string{DefaultAutoScalingRole(partition, t.Account)}
		}
		return t.ASGRoles
	}
	if t.Principal != "" {
		return []string{t.Principal}
	}
	return []string{AnyPrincipal(partition, t.Account)}
}

// checkPath evaluates every action the path needs and explains failures.
func checkPath(key *Key, env *requestEnv, t Target, p Path, principal string) PathVerdict {
	pv := PathVerdict{Path: p, Principal: principal, OK: true, Findings: []Finding{}}
	identity := t.Identity
	if p == PathASG {
		identity = nil // the service-linked role's policy is AWS's, known to have no KMS permission
	}
	var unknown []string
	a := env.newActor(principal, p, t.orgFor(principal), false)
	for _, pa := range pathActions[p] {
		req := a.request(pa)
		auth := Authorize(key, req, identity)
		for _, u := range auth.KeyPolicy.Unknown {
			unknown = appendUnique(unknown, u)
		}
		if auth.Decision == Allowed {
			continue
		}
		pv.OK = false
		pv.Findings = mergeFinding(pv.Findings, explain(key, env, t, p, principal, req, auth))
		// Across accounts the asg path needs a grant whatever the key
		// policy says: a statement there explains nothing.
		if f, ok := literalVariable(key.Policy, req); ok && (p != PathASG || !auth.CrossAccount) {
			pv.Findings = mergeFinding(pv.Findings, f)
		}
	}
	for _, u := range unknown {
		pv.Findings = append(pv.Findings, Finding{Code: CodeUnknownVariable, Severity: SeverityWarning, Actions: []string{},
			Message: fmt.Sprintf("a statement uses the policy variable ${%s}, which the launch requests do not carry: AWS reads it as no value, which matches nothing (a positive operator fails on it, a negated one holds, and a Resource with it names no key)", u),
			Fix:     "check that the statement does what was meant without the variable, or replace it with literal values"})
	}
	return pv
}

// mergeFinding adds f, or merges its actions into a finding with the same
// code and statement.
func mergeFinding(list []Finding, f Finding) []Finding {
	for i := range list {
		if list[i].Code == f.Code && list[i].Statement == f.Statement {
			for _, a := range f.Actions {
				list[i].Actions = appendUnique(list[i].Actions, a)
			}
			switch f.Code {
			case CodeGrantMissing:
				list[i].Fix = f.Fix
			case CodeKeyPolicyMissing:
				// One fix for the path: every statement its actions lack
				// (CreateGrant for EC2, and use of the key).
				if st := strings.TrimPrefix(f.Fix, addStatementsFix); !strings.Contains(list[i].Fix, st) {
					list[i].Fix += " and " + st
				}
			}
			return list
		}
	}
	return append(list, f)
}
