// Package iamsim_test compares keypolicy's evaluator with an independent
// one, @cloud-copilot/iam-simulate, on generated key policies and requests.
//
// The npm package is test-only (AGPL-3.0): `npm ci --prefix test/iamsim`
// installs the version pinned in package-lock.json into
// test/iamsim/node_modules; it is run as a separate node process
// (simulate.mjs) and never linked into a binary.
//
// Run:
//
//	npm ci --prefix test/iamsim
//	go test ./test/iamsim/ -run Differential -v
//	AMIGATE_IAMSIM_CASES=50000 go test ./test/iamsim/ -run Differential -v
//	go test ./test/iamsim/ -run '^$' -bench IAMSimulateVsKeypolicy
package iamsim_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

const (
	keyAccount = "444455556666"
	keyARN     = "arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	// defaultCases is the default run (a few seconds); AMIGATE_IAMSIM_CASES
	// asks for more.
	defaultCases = 5000
	seed1        = 2026
	seed2        = 11
	current      = "2012-10-17"
)

// numCases is the run's size: defaultCases, or AMIGATE_IAMSIM_CASES.
func numCases(t testing.TB) int {
	v := os.Getenv("AMIGATE_IAMSIM_CASES")
	if v == "" {
		return defaultCases
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("AMIGATE_IAMSIM_CASES %q: want a positive number of cases", v)
	}
	return n
}

// simCase is one generated (key policy, request) pair. Context is what
// keypolicy gets; simulate sends it to node with single values as strings.
type simCase struct {
	ID int
	// Version is the policy's Version element, "" for none; Statements are
	// its statements as JSON objects; Policy is the document they make.
	Version    string
	Statements []string
	Policy     json.RawMessage
	Principal  string
	Action     string
	Resource   string
	Context    map[string][]string
}

type simAnswer struct {
	ID       int    `json:"id"`
	Decision string `json:"decision"`
	Raw      string `json:"raw"`
	Error    string `json:"error"`
}

// multiValued are the context keys that hold a list of values; they are
// always sent as a JSON array. Every other key goes as a plain string.
var multiValued = map[string]bool{
	"kms:GrantOperations":           true,
	"aws:PrincipalServiceNamesList": true,
	"aws:PrincipalOrgPaths":         true,
}

// Generated material: principals, statement parts, conditions, contexts.
var (
	requestPrincipals = []string{
		// Same account as the key.
		"arn:aws:iam::444455556666:role/App",
		"arn:aws:iam::444455556666:root",
		"arn:aws:iam::444455556666:user/bob",
		// Cross-account.
		"arn:aws:iam::111122223333:role/App",
		"arn:aws:iam::111122223333:role/Deploy",
		"arn:aws:iam::111122223333:root",
		"arn:aws:iam::111122223333:user/alice",
		"arn:aws:iam::999988887777:role/App",
		"arn:aws:iam::999988887777:root",
		// Role sessions: the caller as KMS sees it after AssumeRole.
		"arn:aws:sts::111122223333:assumed-role/App/build-1",
		"arn:aws:sts::111122223333:assumed-role/Deploy/ci",
		"arn:aws:sts::444455556666:assumed-role/App/i-0123456789abcdef0",
		// The target's Auto Scaling service-linked role, and its session.
		slrARN,
		slrSession,
	}
	statementPrincipals = []string{
		`"Principal":"*"`,
		`"Principal":{"AWS":"*"}`,
		`"Principal":{"AWS":"111122223333"}`,
		`"Principal":{"AWS":"444455556666"}`,
		`"Principal":{"AWS":"arn:aws:iam::111122223333:root"}`,
		`"Principal":{"AWS":"arn:aws:iam::111122223333:role/App"}`,
		`"Principal":{"AWS":"arn:aws:iam::444455556666:root"}`,
		`"Principal":{"AWS":"arn:aws:iam::999988887777:role/App"}`,
		`"Principal":{"AWS":"arn:aws:sts::111122223333:assumed-role/App/build-1"}`,
		`"NotPrincipal":{"AWS":"arn:aws:sts::444455556666:assumed-role/App/i-0123456789abcdef0"}`,
		`"Principal":{"AWS":["arn:aws:iam::444455556666:role/App","111122223333"]}`,
		`"Principal":{"AWS":["arn:aws:iam::111122223333:user/alice","arn:aws:iam::999988887777:root"]}`,
		`"NotPrincipal":{"AWS":"arn:aws:iam::111122223333:role/App"}`,
		`"NotPrincipal":{"AWS":["arn:aws:iam::111122223333:root","arn:aws:iam::444455556666:role/App"]}`,
		`"NotPrincipal":{"AWS":["arn:aws:iam::444455556666:root","arn:aws:iam::999988887777:role/App"]}`,
		// NotPrincipal with an account (id and root ARN), a user, a
		// service-linked role, and the IAM User Guide's example that lists
		// session, role and account.
		`"NotPrincipal":{"AWS":"111122223333"}`,
		`"NotPrincipal":{"AWS":"arn:aws:iam::111122223333:root"}`,
		`"NotPrincipal":{"AWS":"arn:aws:iam::111122223333:user/alice"}`,
		`"NotPrincipal":{"AWS":["arn:aws:iam::111122223333:user/alice","arn:aws:iam::111122223333:root"]}`,
		`"NotPrincipal":{"AWS":"` + slrARN + `"}`,
		`"NotPrincipal":{"AWS":["arn:aws:sts::111122223333:assumed-role/App/build-1","arn:aws:iam::111122223333:role/App","arn:aws:iam::111122223333:root"]}`,
		`"Principal":{"AWS":"` + slrARN + `"}`,
		// NotPrincipal naming a role, its session, or both with the account
		// (IAM User Guide, NotPrincipal: a role's ARN exempts none of its
		// sessions; principals must name a specific session).
		`"NotPrincipal":{"AWS":"arn:aws:iam::111122223333:role/Deploy"}`,
		`"NotPrincipal":{"AWS":"` + slrSession + `"}`,
		`"NotPrincipal":{"AWS":["` + slrSession + `","` + slrARN + `","arn:aws:iam::111122223333:root"]}`,
		// Service principals name services, never an IAM caller.
		`"Principal":{"Service":"ec2.amazonaws.com"}`,
		`"Principal":{"Service":["autoscaling.amazonaws.com","kms.amazonaws.com"]}`,
		`"Principal":{"AWS":"arn:aws:iam::999988887777:root","Service":"ec2.amazonaws.com"}`,
		`"NotPrincipal":{"Service":"ec2.amazonaws.com"}`,
		// No principal at all: in a key policy it applies to no one.
		``, ``,
	}
	statementActions = []string{
		`"Action":"kms:*"`, `"Action":"kms:ReEncrypt*"`, `"Action":"kms:Decrypt"`, `"Action":"kms:De?rypt"`,
		`"Action":"*"`, `"Action":["kms:Encrypt","KMS:decrypt"]`, `"Action":"kms:CreateGrant"`,
		`"Action":["kms:Describe*","kms:GenerateDataKey*"]`, `"Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"]`,
		`"NotAction":"kms:Decrypt"`, `"NotAction":["kms:Put*","kms:Create*"]`, `"NotAction":"kms:ReEncrypt*"`,
	}
	statementResources = []string{
		`"Resource":"*"`, `"Resource":"` + keyARN + `"`, `"Resource":"arn:aws:kms:us-east-1:444455556666:key/*"`,
		`"Resource":["arn:aws:kms:eu-west-1:*:key/*"]`, `"Resource":"arn:aws:kms:*:111122223333:key/*"`,
		`"NotResource":"arn:aws:kms:eu-west-1:*:key/*"`, `"NotResource":"` + keyARN + `"`,
		// Policy variables in the resource part (IAM User Guide, "IAM JSON
		// policy elements: Resource").
		`"Resource":"arn:aws:kms:us-east-1:444455556666:key/${aws:PrincipalTag/keyid}"`,
		`"Resource":"arn:aws:kms:us-east-1:444455556666:key/${aws:PrincipalTag/keyid, '1234abcd-12ab-34cd-56ef-1234567890ab'}"`,
		`"NotResource":"arn:aws:kms:us-east-1:444455556666:key/${aws:PrincipalTag/keyid}"`,
	}
	conditions = []string{
		// kms:ViaService
		`"StringEquals":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}`,
		`"StringEquals":{"kms:ViaService":["s3.us-east-1.amazonaws.com","rds.us-east-1.amazonaws.com"]}`,
		`"StringLike":{"kms:ViaService":"ec2.*.amazonaws.com"}`,
		`"StringNotLike":{"kms:ViaService":"s3.*"}`,
		`"StringEqualsIgnoreCase":{"kms:ViaService":"EC2.US-EAST-1.AMAZONAWS.COM"}`,
		`"StringEqualsIfExists":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}`,
		`"StringNotEqualsIfExists":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}`,
		`"StringLikeIfExists":{"kms:ViaService":"autoscaling.*"}`,
		`"Null":{"kms:ViaService":"false"}`,
		`"StringNotEquals":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}`,
		`"StringLike":{"KMS:viaService":"*.us-east-1.amazonaws.com"}`,
		// kms:CallerAccount
		`"StringNotEquals":{"kms:CallerAccount":"111122223333"}`,
		`"StringEquals":{"kms:CallerAccount":["111122223333","444455556666"]}`,
		`"StringNotEqualsIgnoreCase":{"kms:CallerAccount":"444455556666"}`,
		`"StringEquals":{"kms:CallerAccount":"${aws:PrincipalAccount}"}`,
		`"StringNotEquals":{"kms:CallerAccount":"${aws:PrincipalAccount}"}`,
		`"StringEqualsIgnoreCase":{"aws:PrincipalAccount":"${kms:CallerAccount}"}`,
		// policy variables: in a pattern, with a default, and one no
		// request carries (the statement then applies to no one)
		`"StringLike":{"kms:ViaService":"ec2.${aws:RequestedRegion}.amazonaws.com"}`,
		`"StringLike":{"aws:PrincipalArn":"arn:aws:iam::${kms:CallerAccount}:*"}`,
		`"StringNotLike":{"aws:PrincipalArn":"arn:aws:iam::${kms:CallerAccount}:role/*"}`,
		`"StringEquals":{"aws:PrincipalTag/team":"${aws:PrincipalTag/owner, 'platform'}"}`,
		`"StringEquals":{"aws:PrincipalTag/team":"${aws:username}"}`,
		// kms:GrantIsForAWSResource
		`"Bool":{"kms:GrantIsForAWSResource":"true"}`,
		`"BoolIfExists":{"kms:GrantIsForAWSResource":"true"}`,
		`"Null":{"kms:GrantIsForAWSResource":"true"}`,
		// kms:GrantOperations, multivalued
		`"ForAnyValue:StringEquals":{"kms:GrantOperations":["Decrypt","CreateGrant"]}`,
		`"ForAllValues:StringEquals":{"kms:GrantOperations":["Decrypt","Encrypt","GenerateDataKeyWithoutPlaintext","ReEncryptFrom","ReEncryptTo","CreateGrant","DescribeKey"]}`,
		`"ForAllValues:StringLike":{"kms:GrantOperations":["ReEncrypt*","Decrypt"]}`,
		`"ForAnyValue:StringEqualsIgnoreCase":{"kms:GrantOperations":"decrypt"}`,
		`"ForAnyValue:StringNotEquals":{"kms:GrantOperations":"Decrypt"}`,
		`"ForAllValues:StringNotLike":{"kms:GrantOperations":"Retire*"}`,
		`"Null":{"kms:GrantOperations":"false"}`,
		`"ForAnyValue:StringEqualsIfExists":{"kms:GrantOperations":"Encrypt"}`,
		// aws:SecureTransport
		`"Bool":{"aws:SecureTransport":"true"}`,
		`"BoolIfExists":{"aws:SecureTransport":"false"}`,
		// aws:SourceIp, IPv4 and IPv6
		`"Null":{"aws:SourceIp":"true"}`,
		`"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}`,
		`"IpAddress":{"aws:SourceIp":["2001:db8::/32","198.51.100.0/24"]}`,
		`"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}`,
		`"NotIpAddress":{"aws:SourceIp":["2001:db8:1::/48","192.0.2.0/28"]}`,
		`"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}`,
		// aws:PrincipalArn, aws:PrincipalAccount
		`"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/App"}`,
		`"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/*"}`,
		`"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:root"}`,
		`"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::444455556666:role/App"}`,
		`"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::999988887777:*"}`,
		`"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::${aws:PrincipalAccount}:role/*"}`,
		`"StringEquals":{"aws:PrincipalAccount":"111122223333"}`,
		`"StringLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:*"}`,
		// numbers and dates
		`"NumericLessThan":{"aws:MultiFactorAuthAge":"3600"}`,
		`"NumericGreaterThanEquals":{"aws:MultiFactorAuthAge":"100"}`,
		`"NumericLessThanIfExists":{"aws:MultiFactorAuthAge":"300"}`,
		`"DateGreaterThan":{"aws:CurrentTime":"2025-01-01T00:00:00Z"}`,
		`"DateLessThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"}`,
		`"DateNotEquals":{"aws:CurrentTime":"2026-03-01T00:00:00Z"}`,
		`"NumericNotEquals":{"aws:MultiFactorAuthAge":"200"}`,
		`"DateGreaterThanIfExists":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}`,
		// aws:EpochTime with date and numeric operators, and a date given
		// in epoch seconds (IAM User Guide, "AWS global condition context
		// keys": both time keys are always in the request).
		`"DateGreaterThanEquals":{"aws:EpochTime":"2025-01-01T00:00:00Z"}`,
		`"DateLessThanEquals":{"aws:EpochTime":"1780000000"}`,
		`"NumericLessThan":{"aws:EpochTime":"1780000000"}`,
		`"NumericGreaterThanEquals":{"aws:EpochTime":["1700000000"]}`,
		`"DateLessThan":{"aws:CurrentTime":"1780000000"}`,
		// aws:ResourceAccount, the key owner's account, and the perimeter
		// pattern that compares the caller's with it.
		`"StringEquals":{"aws:ResourceAccount":"444455556666"}`,
		`"StringNotEquals":{"aws:PrincipalAccount":"${aws:ResourceAccount}"}`,
		`"StringEquals":{"aws:ResourceAccount":"${aws:PrincipalAccount}"}`,
		// aws:MultiFactorAuthPresent, present or not
		`"Bool":{"aws:MultiFactorAuthPresent":"false"}`,
		`"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}`,
		`"Null":{"aws:MultiFactorAuthPresent":"true"}`,
		// tags, and the other multivalued key
		`"StringLike":{"aws:PrincipalTag/team":["plat*","sec"]}`,
		`"ForAnyValue:StringLike":{"aws:PrincipalServiceNamesList":["ec2*","autoscaling.amazonaws.com"]}`,
		`"ForAllValues:StringEquals":{"aws:PrincipalServiceNamesList":["ec2.amazonaws.com","autoscaling.amazonaws.com"]}`,
		// A multivalued key without a set operator (IAM User Guide,
		// "Single-valued vs. multivalued context keys": one is required).
		`"StringEquals":{"kms:GrantOperations":"Decrypt"}`,
		// The organization keys (IAM User Guide, "AWS global condition
		// context keys"): aws:PrincipalOrgID single-valued,
		// aws:PrincipalOrgPaths multivalued; with and without set
		// operators, negated, IfExists and Null.
		`"StringEquals":{"aws:PrincipalOrgID":"o-abcdefghij"}`,
		`"StringEquals":{"aws:PrincipalOrgID":["o-abcdefghij","o-zzzzzzzzzz"]}`,
		`"StringNotEquals":{"aws:PrincipalOrgID":"o-abcdefghij"}`,
		`"StringNotEqualsIfExists":{"aws:PrincipalOrgID":"o-zzzzzzzzzz"}`,
		`"StringEqualsIfExists":{"aws:PrincipalOrgID":"o-abcdefghij"}`,
		`"StringLike":{"aws:PrincipalOrgID":"o-abc*"}`,
		`"Null":{"aws:PrincipalOrgID":"true"}`,
		`"ForAnyValue:StringLike":{"aws:PrincipalOrgPaths":"o-abcdefghij/*"}`,
		`"ForAnyValue:StringLike":{"aws:PrincipalOrgPaths":["o-abcdefghij/r-ab12/ou-ab12-11111111/*","o-zzzzzzzzzz/r-cd34/*"]}`,
		`"ForAnyValue:StringEquals":{"aws:PrincipalOrgPaths":"o-abcdefghij/r-ab12/ou-ab12-33333333/"}`,
		`"ForAllValues:StringLike":{"aws:PrincipalOrgPaths":"o-abcdefghij/r-ab12/ou-ab12-11111111/*"}`,
		`"ForAnyValue:StringNotLike":{"aws:PrincipalOrgPaths":"o-abcdefghij/r-ab12/ou-ab12-11111111/*"}`,
		`"ForAllValues:StringNotLike":{"aws:PrincipalOrgPaths":"o-zzzzzzzzzz/*"}`,
		`"StringLike":{"aws:PrincipalOrgPaths":"o-abcdefghij/*"}`,
		`"StringNotLike":{"aws:PrincipalOrgPaths":"o-abcdefghij/r-ab12/ou-ab12-11111111/*"}`,
		`"StringEqualsIfExists":{"aws:PrincipalOrgPaths":"o-abcdefghij/r-ab12/ou-ab12-33333333/"}`,
		`"Null":{"aws:PrincipalOrgPaths":"false"}`,
		// amigate's organization-mode grant statement: each caller only
		// for its own account's Auto Scaling roles.
		`"StringLike":{"kms:GranteePrincipal":"arn:aws:iam::${aws:PrincipalAccount}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling*"}`,
	}
	contextChoices = map[string][][]string{
		"kms:ViaService":             {{"ec2.us-east-1.amazonaws.com"}, {"s3.us-east-1.amazonaws.com"}, {"ec2.eu-west-1.amazonaws.com"}, {"autoscaling.us-east-1.amazonaws.com"}},
		"kms:GrantIsForAWSResource":  {{"true"}, {"false"}},
		"kms:GrantOperations":        {{"Decrypt"}, {"Decrypt", "CreateGrant"}, {"Encrypt", "ReEncryptFrom"}, {"ReEncryptFrom", "ReEncryptTo"}, {"RetireGrant", "Decrypt"}},
		"aws:SecureTransport":        {{"true"}, {"false"}},
		"aws:SourceIp":               {{"203.0.113.5"}, {"198.51.100.1"}, {"2001:db8::1"}, {"2001:db8:1::5"}, {"192.0.2.1"}, {"10.1.2.3"}},
		"aws:MultiFactorAuthAge":     {{"50"}, {"200"}, {"5000"}},
		"aws:MultiFactorAuthPresent": {{"true"}, {"false"}},
		"aws:PrincipalTag/team":      {{"platform"}, {"sec"}, {"other"}},
		"aws:PrincipalTag/keyid":     {{"1234abcd-12ab-34cd-56ef-1234567890ab"}, {"other"}},
		"aws:RequestedRegion":        {{"us-east-1"}, {"eu-west-1"}},
		// A second multivalued key, for the ForAnyValue:/ForAllValues: qualifiers.
		"aws:PrincipalServiceNamesList": {{"ec2.amazonaws.com"}, {"ec2.amazonaws.com", "autoscaling.amazonaws.com"}, {"ec2.amazonaws.com", "lambda.amazonaws.com"}},
		"kms:GranteePrincipal": {
			{slrARN}, {"arn:aws:iam::999988887777:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"},
			{"arn:aws:iam::444455556666:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling_custom"},
			{"arn:aws:iam::111122223333:role/App"},
		},
		// kms:EncryptionContext:* is never sent: iam-simulate drops
		// encryption-context keys (see ../../../shared/ENVIRONMENT.md).
	}
	// contextKeys in a fixed order, so the generator is deterministic
	// (ranging over a map is not).
	contextKeys = func() []string {
		var ks []string
		for k := range contextChoices {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}()
	// requestActions: CreateGrant twice, as the grant keys only come with it.
	requestActions = []string{
		"kms:Decrypt", "kms:CreateGrant", "kms:CreateGrant", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:DescribeKey",
		"kms:GenerateDataKeyWithoutPlaintext", "kms:Encrypt", "kms:PutKeyPolicy", "kms:RetireGrant",
		"kms:ListGrants", "kms:RevokeGrant",
	}
	// onlyWith limits a KMS condition key to the actions AWS supplies it
	// for (Service Authorization Reference, AWS KMS, "Actions defined by
	// AWS Key Management Service", condition keys column). A real request
	// never carries it with another action, and iam-simulate drops it
	// there, so such a request would compare nothing meaningful.
	onlyWith = map[string][]string{
		"kms:GrantOperations":       {"kms:CreateGrant"},
		"kms:GrantIsForAWSResource": {"kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"},
		"kms:GranteePrincipal":      {"kms:CreateGrant"},
	}
	// orgPaths is where each account of the callers stands in an
	// organization (aws:PrincipalOrgPaths; its first part is
	// aws:PrincipalOrgID); a caller of an account not listed, or drawn
	// without (one case in three), carries neither key, as a principal
	// of an account in no organization does.
	orgPaths = map[string]string{
		"111122223333": "o-abcdefghij/r-ab12/ou-ab12-11111111/ou-ab12-22222222/",
		"444455556666": "o-abcdefghij/r-ab12/ou-ab12-33333333/",
		"999988887777": "o-zzzzzzzzzz/r-cd34/",
	}
)

const (
	slrARN     = "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
	slrSession = "arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAutoScaling/AutoScaling"
)

// requestTimes are the instants a request is made at: aws:CurrentTime and
// aws:EpochTime carry the same one.
var requestTimes = []time.Time{
	time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
	time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
	time.Unix(1780000000, 0).UTC(),
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// versions: three in five policies are 2012-10-17, the others 2008-10-17
// or without Version (which means 2008-10-17).
var versions = []string{current, current, current, "2008-10-17", ""}

// policyJSON is the document of a Version and statements.
func policyJSON(version string, stmts []string) json.RawMessage {
	v := ""
	if version != "" {
		v = `"Version":"` + version + `",`
	}
	return json.RawMessage(`{` + v + `"Statement":[` + strings.Join(stmts, ",") + `]}`)
}

func generate(r *rand.Rand, id int) simCase {
	var stmts []string
	for n := 1 + r.IntN(4); n > 0; n-- {
		effect := "Allow"
		principal := pick(r, statementPrincipals)
		if r.IntN(3) == 0 || strings.HasPrefix(principal, `"NotPrincipal"`) {
			effect = "Deny" // NotPrincipal only with Deny, as AWS requires
		}
		parts := []string{`"Effect":"` + effect + `"`}
		if principal != "" {
			parts = append(parts, principal)
		}
		parts = append(parts, pick(r, statementActions), pick(r, statementResources))
		if k := r.IntN(4); k > 0 {
			var cs []string
			used := map[string]bool{}
			for ; k > 0; k-- {
				c := pick(r, conditions)
				op := c[:strings.Index(c, `":{`)]
				if used[op] {
					continue // one block per operator: JSON keys are unique
				}
				used[op] = true
				cs = append(cs, c)
			}
			parts = append(parts, `"Condition":{`+strings.Join(cs, ",")+`}`)
		}
		stmts = append(stmts, "{"+strings.Join(parts, ",")+"}")
	}
	principal := pick(r, requestPrincipals)
	action := pick(r, requestActions)
	account := strings.Split(principal, ":")[4]
	// The keys AWS always supplies for an IAM caller; for a role session
	// aws:PrincipalArn is the role's ARN (IAM User Guide, "AWS global
	// condition context keys", aws:PrincipalArn).
	ctx := map[string][]string{
		"aws:PrincipalArn":     {principalARN(principal)},
		"aws:PrincipalAccount": {account},
		"kms:CallerAccount":    {account},
		"aws:ResourceAccount":  {keyAccount},
	}
	// AWS always sends both time keys; without them (one case in three)
	// the missing-key rules are exercised.
	if r.IntN(3) > 0 {
		at := pick(r, requestTimes)
		ctx["aws:CurrentTime"] = []string{at.Format(time.RFC3339)}
		ctx["aws:EpochTime"] = []string{strconv.FormatInt(at.Unix(), 10)}
	}
	for _, k := range contextKeys {
		if actions, ok := onlyWith[k]; ok && !slices.Contains(actions, action) {
			continue
		}
		if r.IntN(3) > 0 {
			ctx[k] = pick(r, contextChoices[k])
		}
	}
	if path, ok := orgPaths[account]; ok && r.IntN(3) > 0 {
		ctx["aws:PrincipalOrgID"] = []string{strings.Split(path, "/")[0]}
		ctx["aws:PrincipalOrgPaths"] = []string{path}
	}
	version := pick(r, versions)
	return simCase{
		ID: id, Version: version, Statements: stmts, Policy: policyJSON(version, stmts),
		Principal: principal, Action: action, Resource: keyARN, Context: ctx,
	}
}

// principalARN is aws:PrincipalArn for a caller: the role ARN for a role
// session, the caller's ARN otherwise.
func principalARN(caller string) string {
	if caller == slrSession {
		return slrARN
	}
	if rest, ok := strings.CutPrefix(caller, "arn:aws:sts::"); ok {
		account, path, _ := strings.Cut(rest, ":assumed-role/")
		role, _, _ := strings.Cut(path, "/")
		return "arn:aws:iam::" + account + ":role/" + role
	}
	return caller
}

func generateCases(n int) []simCase {
	r := rand.New(rand.NewPCG(seed1, seed2))
	cases := make([]simCase, n)
	for i := range cases {
		cases[i] = generate(r, i)
	}
	return cases
}

// disagreement is a known class of cases on which iam-simulate departs
// from AWS's documentation. Every case is compared; a disagreeing case its
// predicate selects is explained, not failed. Each class also has a
// rewrite that states the documented rule in terms iam-simulate reads
// right: the cases of the class are asked again, rewritten, and must then
// agree with keypolicy, so an explained disagreement is never a cover for
// another bug.
type disagreement struct {
	class string
	why   string
	// right is the side AWS's documentation supports; doc names it.
	right, doc string
	applies    func(c simCase) bool
	rewrite    func(c simCase) simCase
}

// Three more differences were found and are kept out of the generator, not
// hidden: all come from inputs AWS itself would not produce.
//   - A KMS condition key sent with an action it does not apply to, such
//     as kms:GrantOperations on kms:Decrypt or kms:GrantIsForAWSResource on
//     kms:ReEncryptTo: iam-simulate drops such a key (it reads the Service
//     Authorization Reference's per-action condition keys), so for it the
//     key is absent; keypolicy evaluates the context it is given. AWS never
//     supplies the key with those actions, so neither answer is observable;
//     the generator follows the reference (onlyWith). Seen as 22
//     disagreements out of 2,000 before that rule.
//   - A Resource/NotResource pattern with fewer than six ARN segments, such
//     as "arn:aws:kms:eu-west-1:*": iam-simulate never matches it, not even
//     in NotResource; keypolicy matches it as a wildcard over the whole
//     ARN. AWS documents ARNs as six segments and does not say what a
//     shorter pattern does, so the generator writes well-formed patterns
//     ("arn:aws:kms:eu-west-1:*:key/*").
//   - Several values for a single-valued key (aws:PrincipalTag/team):
//     iam-simulate keeps only the first for ForAllValues:. A request never
//     carries a list there, so the qualifiers are exercised on the
//     multivalued kms:GrantOperations and aws:PrincipalServiceNamesList.
//
// kms:EncryptionContext:* keys are not generated at all: iam-simulate drops
// them, so they compare nothing (keypolicy's own tests cover them). Nor are
// service principals as callers: how {"AWS": "*"} treats one is not
// documented, and no launch path has a service principal as its caller
// (keypolicy's own tests state its reading).
var knownDisagreements = []disagreement{{
	class: "Policy variables in a 2008-10-17 policy, or one without Version",
	why: "iam-simulate substitutes ${...} whatever the policy's Version; AWS substitutes policy variables only in a " +
		"Version 2012-10-17 policy, and reads them as literal text otherwise (no Version means 2008-10-17).",
	right: "keypolicy",
	doc: "IAM User Guide, IAM JSON policy elements: Version " +
		"(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_version.html)",
	applies: literalVariables,
	rewrite: escapeVariables,
}, {
	class: "Deny with NotPrincipal naming the caller's account (root ARN or account id)",
	why: "iam-simulate exempts every principal of the account from the Deny; AWS exempts only the principals listed, " +
		"so the account's root ARN (or id) in NotPrincipal exempts the root user alone and a role or user of that " +
		"account is still denied.",
	right: "keypolicy",
	doc: "IAM User Guide, AWS JSON policy elements: NotPrincipal " +
		"(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html)",
	applies: denyNotPrincipalNamesCallerAccount,
	rewrite: dropCallerAccountFromNotPrincipal,
}, {
	class: "Policy variable in an ARN condition operator's value",
	why: "iam-simulate splits the policy value into ARN fields at ':' before it substitutes variables, so " +
		"\"arn:aws:iam::${aws:PrincipalAccount}:role/*\" breaks at the colon inside ${aws:PrincipalAccount} and " +
		"never matches; keypolicy substitutes the variable and matches the ARN.",
	right: "keypolicy",
	doc: "IAM User Guide, IAM policy elements: Variables and tags, \"Where you can use policy variables\" " +
		"(variables are allowed in the Condition element with string and ARN operators; " +
		"https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html)",
	applies: variableInArnCondition,
	rewrite: substitutePrincipalAccount,
}, {
	class: "Deny with NotPrincipal naming the role of the calling session",
	why: "iam-simulate exempts a role's sessions from a Deny whose NotPrincipal names the role; AWS exempts a session only " +
		"when NotPrincipal names that session: a role's ARN there exempts none of them.",
	right: "keypolicy",
	doc: "IAM User Guide, AWS JSON policy elements: NotPrincipal (\"When you specify an assumed-role session in a " +
		"NotPrincipal element, you cannot use a wildcard (*) to mean 'all sessions'. Principals must always name a specific session.\"; " +
		"https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html)",
	applies: denyNotPrincipalNamesCallersRole,
	rewrite: dropCallersRoleFromNotPrincipal,
}, {
	class: "Policy variable with no value in a 2012-10-17 policy",
	why: "iam-simulate leaves out a statement whose policy variable the request does not carry; AWS reads the variable as " +
		"no value, which nothing is equal to or like: a positive operator fails, a negated one (StringNotEquals, ...) holds, " +
		"and a Resource or NotResource entry with it names no resource.",
	right: "keypolicy",
	doc: "IAM User Guide, IAM policy elements: Variables and tags, \"Policy variables with no value\" " +
		"(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html)",
	applies: variableWithNoValue,
	rewrite: writeNoValue,
}, {
	class: "Date operator comparing a date in epoch seconds with one in ISO 8601",
	why: "iam-simulate reads a date written as a number as seconds since 1970 and one in ISO 8601 as milliseconds, so it " +
		"compares aws:EpochTime with an ISO 8601 date, or aws:CurrentTime with an epoch date, in different units; AWS accepts " +
		"either form for a date operator's value and for aws:EpochTime, and compares the instants.",
	right: "keypolicy",
	doc: "IAM User Guide, IAM JSON policy elements: Condition operators, Date condition operators (\"You must specify date/time " +
		"values with one of the W3C implementations of the ISO 8601 date formats or in epoch (UNIX) time\"), and AWS global " +
		"condition context keys, aws:EpochTime (\"Works with date operators or numeric operators\"; " +
		"https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Date)",
	applies: mixedDateForms,
	rewrite: datesInRequestForm,
}, {
	class: "Deny conditioned on a multivalued key without ForAnyValue: or ForAllValues:",
	why: "iam-simulate never matches such a condition, so the Deny does not apply; AWS says a multivalued key requires a set " +
		"operator and does not document what it makes of one without, so keypolicy takes the condition as undecided: an Allow " +
		"on it does not count (as iam-simulate) and a Deny on it does (a green must not rest on an undocumented reading).",
	right: "keypolicy (the conservative reading of an undocumented case)",
	doc: "IAM User Guide, IAM JSON policy elements: Condition operators, \"Single-valued vs. multivalued context keys\" " +
		"(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html)",
	applies: denyOnMultivaluedKeyWithoutSet,
	rewrite: dropDenyConditionsOnMultivaluedKeys,
}}

// denyOnMultivaluedKeyWithoutSet: a Deny's condition on a multivalued key
// the request carries has no ForAnyValue:/ForAllValues: qualifier.
func denyOnMultivaluedKeyWithoutSet(c simCase) bool {
	for _, s := range statements(c) {
		if s.Effect != "Deny" {
			continue
		}
		for op, block := range s.Condition {
			if strings.Contains(op, ":") || strings.HasPrefix(op, "Null") {
				continue
			}
			for key := range block {
				if multiValued[key] && c.Context[key] != nil {
					return true
				}
			}
		}
	}
	return false
}

// dropDenyConditionsOnMultivaluedKeys states keypolicy's reading for
// iam-simulate: a Deny's condition on a multivalued key (the request
// carries) without a set qualifier counts as holding.
func dropDenyConditionsOnMultivaluedKeys(c simCase) simCase {
	stmts := make([]string, len(c.Statements))
	for i, st := range c.Statements {
		var m map[string]any
		if err := json.Unmarshal([]byte(st), &m); err != nil {
			panic(err)
		}
		cond, _ := m["Condition"].(map[string]any)
		if m["Effect"] != "Deny" || cond == nil {
			stmts[i] = st
			continue
		}
		for op, block := range cond {
			if strings.Contains(op, ":") || strings.HasPrefix(op, "Null") {
				continue
			}
			keys := block.(map[string]any)
			for key := range keys {
				if multiValued[key] && c.Context[key] != nil {
					delete(keys, key)
				}
			}
			if len(keys) == 0 {
				delete(cond, op)
			}
		}
		if len(cond) == 0 {
			delete(m, "Condition")
		}
		b, _ := json.Marshal(m)
		stmts[i] = string(b)
	}
	c.Statements, c.Policy = stmts, policyJSON(c.Version, stmts)
	return c
}

// statementDoc is the part of a generated statement the predicates read.
type statementDoc struct {
	Effect       string
	NotPrincipal *struct{ AWS any }
	Condition    map[string]map[string]any
}

func statements(c simCase) []statementDoc {
	var doc struct{ Statement []statementDoc }
	if err := json.Unmarshal(c.Policy, &doc); err != nil {
		panic(err) // generated policies are valid JSON
	}
	return doc.Statement
}

func strList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			out = append(out, x.(string))
		}
		return out
	}
	return nil
}

// literalVariables: the policy is not 2012-10-17 and writes a ${...}.
func literalVariables(c simCase) bool {
	return c.Version != current && bytes.Contains(c.Policy, []byte("${"))
}

// escapeVariables states the 2008-10-17 reading in a 2012-10-17 policy:
// every "${" is written "${$}{", which AWS reads as the text "${".
func escapeVariables(c simCase) simCase {
	if c.Version == current {
		return c
	}
	stmts := make([]string, len(c.Statements))
	for i, st := range c.Statements {
		stmts[i] = strings.ReplaceAll(st, "${", "${$}{")
	}
	c.Version, c.Statements, c.Policy = current, stmts, policyJSON(current, stmts)
	return c
}

// callerAccountEntries are the NotPrincipal entries that name the caller's
// account itself, and whether the caller is that account's root user.
func callerAccountEntries(c simCase) (entries []string, isRoot bool) {
	account := strings.Split(c.Principal, ":")[4]
	root := "arn:aws:iam::" + account + ":root"
	return []string{root, account}, c.Principal == root
}

// denyNotPrincipalNamesCallerAccount: some Deny statement's NotPrincipal
// lists the caller's account (root ARN or id), and the caller is neither
// that root nor listed itself.
func denyNotPrincipalNamesCallerAccount(c simCase) bool {
	entries, isRoot := callerAccountEntries(c)
	if isRoot {
		return false
	}
	for _, s := range statements(c) {
		if s.Effect != "Deny" || s.NotPrincipal == nil {
			continue
		}
		listed := strList(s.NotPrincipal.AWS)
		if (slices.Contains(listed, entries[0]) || slices.Contains(listed, entries[1])) && !slices.Contains(listed, c.Principal) {
			return true
		}
	}
	return false
}

// nobody is an account no generated caller belongs to.
const nobody = "arn:aws:iam::000000000000:root"

// dropCallerAccountFromNotPrincipal states AWS's reading for a caller that
// is not the root user: an entry naming its account exempts only the root
// user, so for this caller it is as if absent (a list left empty names an
// account no caller is in).
func dropCallerAccountFromNotPrincipal(c simCase) simCase {
	entries, isRoot := callerAccountEntries(c)
	if isRoot {
		return c
	}
	return editNotPrincipals(c, func(e string) bool { return slices.Contains(entries, e) })
}

// variableInArnCondition: in a 2012-10-17 policy, some Arn* condition
// (with or without a ForAnyValue:/ForAllValues: qualifier or IfExists) has
// a value holding a policy variable.
func variableInArnCondition(c simCase) bool {
	if c.Version != current {
		return false
	}
	for _, s := range statements(c) {
		for op, block := range s.Condition {
			if _, after, ok := strings.Cut(op, ":"); ok {
				op = after
			}
			if !strings.HasPrefix(op, "Arn") {
				continue
			}
			for _, v := range block {
				b, _ := json.Marshal(v)
				if bytes.Contains(b, []byte("${")) {
					return true
				}
			}
		}
	}
	return false
}

// substitutePrincipalAccount does for iam-simulate what AWS does with
// ${aws:PrincipalAccount} in a 2012-10-17 policy, whose every request
// carries the key: it writes the value.
func substitutePrincipalAccount(c simCase) simCase {
	if c.Version != current {
		return c
	}
	account := c.Context["aws:PrincipalAccount"][0]
	stmts := make([]string, len(c.Statements))
	for i, st := range c.Statements {
		stmts[i] = strings.ReplaceAll(st, "${aws:PrincipalAccount}", account)
	}
	c.Statements, c.Policy = stmts, policyJSON(c.Version, stmts)
	return c
}

// denyNotPrincipalNamesCallersRole: the caller is a role session, and some
// Deny statement's NotPrincipal lists the session's role but not the
// session itself.
func denyNotPrincipalNamesCallersRole(c simCase) bool {
	role := callersRole(c)
	if role == "" {
		return false
	}
	for _, st := range statements(c) {
		if st.Effect != "Deny" || st.NotPrincipal == nil {
			continue
		}
		listed := strList(st.NotPrincipal.AWS)
		if slices.Contains(listed, role) && !slices.Contains(listed, c.Principal) {
			return true
		}
	}
	return false
}

// callersRole is the ARN of the role behind a session caller, as the
// generated policies write it, or "".
func callersRole(c simCase) string {
	if !strings.Contains(c.Principal, ":assumed-role/") {
		return ""
	}
	return principalARN(c.Principal)
}

// dropCallersRoleFromNotPrincipal states AWS's reading for a session: the
// role's ARN in NotPrincipal exempts the role, not the session, so for
// this caller it is as if absent (a list left empty names an account no
// caller is in).
func dropCallersRoleFromNotPrincipal(c simCase) simCase {
	role := callersRole(c)
	if role == "" {
		return c
	}
	return editNotPrincipals(c, func(e string) bool { return e == role })
}

// editNotPrincipals drops the NotPrincipal entries drop selects from
// every statement.
func editNotPrincipals(c simCase, drop func(string) bool) simCase {
	stmts := make([]string, len(c.Statements))
	for i, st := range c.Statements {
		var m map[string]any
		if err := json.Unmarshal([]byte(st), &m); err != nil {
			panic(err)
		}
		np, ok := m["NotPrincipal"].(map[string]any)
		if !ok || np["AWS"] == nil {
			stmts[i] = st
			continue
		}
		var kept []string
		for _, e := range strList(np["AWS"]) {
			if !drop(e) {
				kept = append(kept, e)
			}
		}
		if len(kept) == 0 {
			kept = []string{nobody}
		}
		np["AWS"] = kept
		b, _ := json.Marshal(m)
		stmts[i] = string(b)
	}
	c.Statements, c.Policy = stmts, policyJSON(c.Version, stmts)
	return c
}

// variablePattern finds a policy variable without a default: ${key}.
var variablePattern = regexp.MustCompile(`\$\{([^},'$*?]+)\}`)

// noValue stands for a policy variable with no value: no request value
// is equal to or like it.
const noValue = "amigate-no-value"

// variableWithNoValue: a 2012-10-17 policy writes a variable without a
// default whose key the request does not carry.
func variableWithNoValue(c simCase) bool {
	if c.Version != current {
		return false
	}
	for _, m := range variablePattern.FindAllSubmatch(c.Policy, -1) {
		if !hasContextKey(c, string(m[1])) {
			return true
		}
	}
	return false
}

func hasContextKey(c simCase, key string) bool {
	for k := range c.Context {
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// writeNoValue writes, for each variable with no value, a text no request
// value is equal to or like, as AWS reads it.
func writeNoValue(c simCase) simCase {
	if c.Version != current {
		return c
	}
	stmts := make([]string, len(c.Statements))
	for i, st := range c.Statements {
		stmts[i] = variablePattern.ReplaceAllStringFunc(st, func(v string) string {
			if hasContextKey(c, v[2:len(v)-1]) {
				return v
			}
			return noValue
		})
	}
	c.Statements, c.Policy = stmts, policyJSON(c.Version, stmts)
	return c
}

// dateBlock finds a date operator's values for one of the time keys.
var dateBlock = regexp.MustCompile(`"(?:ForAnyValue:|ForAllValues:)?Date[A-Za-z]*":\{"(aws:EpochTime|aws:CurrentTime)":(\[[^\]]*\]|"[^"]*")\}`)

// mixedDateForms: a date operator compares a time key the request carries
// with a date written in the other form (epoch seconds for aws:CurrentTime,
// ISO 8601 for aws:EpochTime).
func mixedDateForms(c simCase) bool {
	for _, m := range dateBlock.FindAllSubmatch(c.Policy, -1) {
		key, values := string(m[1]), m[2]
		if c.Context[key] == nil {
			continue
		}
		if iso := isoDate.Match(values); (key == "aws:EpochTime") == iso || (key == "aws:CurrentTime" && epochDate.Match(values)) {
			return true
		}
	}
	return false
}

// datesInRequestForm writes the dates compared with a time key in the
// form the request carries it (epoch seconds for aws:EpochTime, ISO 8601
// for aws:CurrentTime): the same instants, in the units iam-simulate
// compares alike.
func datesInRequestForm(c simCase) simCase {
	stmts := make([]string, len(c.Statements))
	for i, st := range c.Statements {
		stmts[i] = dateBlock.ReplaceAllStringFunc(st, func(block string) string {
			if strings.Contains(block, `"aws:EpochTime"`) {
				return isoDate.ReplaceAllStringFunc(block, func(d string) string {
					at, err := time.Parse(time.RFC3339, d)
					if err != nil {
						panic(err)
					}
					return strconv.FormatInt(at.Unix(), 10)
				})
			}
			return epochDate.ReplaceAllStringFunc(block, func(d string) string {
				n, err := strconv.ParseInt(strings.Trim(d, `"`), 10, 64)
				if err != nil {
					panic(err)
				}
				return `"` + time.Unix(n, 0).UTC().Format(time.RFC3339) + `"`
			})
		})
	}
	c.Statements, c.Policy = stmts, policyJSON(c.Version, stmts)
	return c
}

// epochDate is a date written in epoch seconds, as a JSON string.
var epochDate = regexp.MustCompile(`"\d+"`)

var isoDate = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z`)

// explainedBy returns the first known class that selects the case.
func explainedBy(c simCase) *disagreement {
	for i := range knownDisagreements {
		if knownDisagreements[i].applies(c) {
			return &knownDisagreements[i]
		}
	}
	return nil
}

// rewritten applies every class's rewrite that selects the case.
func rewritten(c simCase) simCase {
	out := c
	for _, d := range knownDisagreements {
		if d.applies(c) {
			out = d.rewrite(out)
		}
	}
	return out
}

func nodeModules(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("node_modules/@cloud-copilot/iam-simulate"); err == nil {
		return
	}
	msg := "the independent evaluator @cloud-copilot/iam-simulate is not installed: run `npm ci --prefix test/iamsim`"
	if os.Getenv("CI") == "true" || os.Getenv("AMIGATE_REQUIRE_IAMSIM") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// wireCase is a case as simulate.mjs reads it: single-valued context keys
// as a string, multivalued ones as an array.
type wireCase struct {
	ID        int             `json:"id"`
	Policy    json.RawMessage `json:"policy"`
	Principal string          `json:"principal"`
	Action    string          `json:"action"`
	Resource  string          `json:"resource"`
	Context   map[string]any  `json:"context"`
}

// simulate runs simulate.mjs once over every case and returns the answers
// by case id.
func simulate(t testing.TB, cases []simCase) map[int]simAnswer {
	t.Helper()
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, c := range cases {
		w := wireCase{ID: c.ID, Policy: c.Policy, Principal: c.Principal, Action: c.Action, Resource: c.Resource, Context: map[string]any{}}
		for k, v := range c.Context {
			if len(v) == 1 && !multiValued[k] {
				w.Context[k] = v[0]
			} else {
				w.Context[k] = v
			}
		}
		if err := enc.Encode(w); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("node", "simulate.mjs")
	cmd.Stdin = &in
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("node simulate.mjs: %v\n%s", err, errOut.String())
	}
	answers := map[int]simAnswer{}
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var a simAnswer
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("bad answer %q: %v", sc.Text(), err)
		}
		answers[a.ID] = a
	}
	return answers
}

func evaluate(t testing.TB, c simCase) string {
	p, err := keypolicy.Parse(c.Policy)
	if err != nil {
		t.Fatalf("case %d: generated policy does not parse: %v\n%s", c.ID, err, c.Policy)
	}
	return p.Evaluate(keypolicy.Request{Principal: c.Principal, Action: c.Action, Resource: c.Resource, Context: c.Context}).Decision.String()
}

// features are what the generator must keep drawing, each with a test on
// a case: issue 12's classes and the policy-language rules around them.
var features = []struct {
	name string
	has  func(c simCase) bool
}{
	{"Version 2012-10-17", func(c simCase) bool { return c.Version == current }},
	{"Version 2008-10-17", func(c simCase) bool { return c.Version == "2008-10-17" }},
	{"no Version", func(c simCase) bool { return c.Version == "" }},
	{"policy variables", func(c simCase) bool { return bytes.Contains(c.Policy, []byte("${")) }},
	{"NotPrincipal", func(c simCase) bool { return bytes.Contains(c.Policy, []byte(`"NotPrincipal"`)) }},
	{"NotPrincipal naming an account", func(c simCase) bool {
		return bytes.Contains(c.Policy, []byte(`"NotPrincipal":{"AWS":"111122223333"}`)) || bytes.Contains(c.Policy, []byte(`"NotPrincipal":{"AWS":"arn:aws:iam::111122223333:root"}`))
	}},
	{"NotPrincipal naming a service-linked role", func(c simCase) bool { return bytes.Contains(c.Policy, []byte(`"NotPrincipal":{"AWS":"`+slrARN)) }},
	{"service principal", func(c simCase) bool { return bytes.Contains(c.Policy, []byte(`"Service"`)) }},
	{"organization condition", func(c simCase) bool { return bytes.Contains(c.Policy, []byte(`"aws:PrincipalOrg`)) }},
	{"organization condition, caller with organization keys", func(c simCase) bool {
		return bytes.Contains(c.Policy, []byte(`"aws:PrincipalOrg`)) && c.Context["aws:PrincipalOrgID"] != nil
	}},
	{"organization condition, caller without organization keys", func(c simCase) bool {
		return bytes.Contains(c.Policy, []byte(`"aws:PrincipalOrg`)) && c.Context["aws:PrincipalOrgID"] == nil
	}},
	{"multivalued key without a set operator", func(c simCase) bool {
		return bytes.Contains(c.Policy, []byte(`"StringLike":{"aws:PrincipalOrgPaths"`)) || bytes.Contains(c.Policy, []byte(`"StringNotLike":{"aws:PrincipalOrgPaths"`)) ||
			bytes.Contains(c.Policy, []byte(`"StringEqualsIfExists":{"aws:PrincipalOrgPaths"`)) || bytes.Contains(c.Policy, []byte(`"StringEquals":{"kms:GrantOperations"`))
	}},
	{"caller-bound grantee pattern", func(c simCase) bool { return bytes.Contains(c.Policy, []byte(`"kms:GranteePrincipal"`)) }},
	{"time keys", func(c simCase) bool {
		return bytes.Contains(c.Policy, []byte(`"aws:EpochTime"`)) || bytes.Contains(c.Policy, []byte(`"aws:CurrentTime"`))
	}},
	{"aws:ResourceAccount", func(c simCase) bool { return bytes.Contains(c.Policy, []byte(`aws:ResourceAccount`)) }},
	{"aws:MultiFactorAuthPresent", func(c simCase) bool { return bytes.Contains(c.Policy, []byte(`"aws:MultiFactorAuthPresent"`)) }},
	{"NotPrincipal naming the caller's role, caller a session", denyNotPrincipalNamesCallersRole},
	{"NotPrincipal naming the caller's session", func(c simCase) bool {
		return strings.Contains(c.Principal, ":assumed-role/") && bytes.Contains(c.Policy, []byte(`"NotPrincipal":{"AWS":`)) && bytes.Contains(c.Policy, []byte(c.Principal))
	}},
	{"statement without principal", func(c simCase) bool {
		for _, st := range c.Statements {
			if !strings.Contains(st, `Principal"`) {
				return true
			}
		}
		return false
	}},
}

// classTally counts, for one known class, the cases it selects, how many
// of them disagree as generated, and how many still disagree once the
// class's rewrite states AWS's rule (which must be none).
type classTally struct{ cases, disagree, afterRewrite int }

func TestDifferentialAgainstIAMSimulate(t *testing.T) {
	nodeModules(t)
	cases := generateCases(numCases(t))
	answers := simulate(t, cases)
	agree := 0
	decisions := map[string]int{}
	tally := map[string]*classTally{}
	for _, d := range knownDisagreements {
		tally[d.class] = &classTally{}
	}
	var failed, selected []simCase
	ours := map[int]string{}
	drawn := map[string]int{}
	for _, c := range cases {
		for _, f := range features {
			if f.has(c) {
				drawn[f.name]++
			}
		}
		a, ok := answers[c.ID]
		if !ok {
			t.Fatalf("case %d: no answer from iam-simulate", c.ID)
		}
		if a.Error != "" {
			// Never skipped: a request iam-simulate cannot evaluate is a
			// generator bug.
			t.Errorf("case %d: iam-simulate cannot evaluate it: %s\n  policy %s", c.ID, a.Error, c.Policy)
			continue
		}
		got := evaluate(t, c)
		ours[c.ID] = got
		d := explainedBy(c)
		if d != nil {
			tally[d.class].cases++
			selected = append(selected, rewritten(c))
		}
		switch {
		case got == a.Decision:
			agree++
			decisions[got]++
		case d != nil:
			tally[d.class].disagree++
		default:
			failed = append(failed, c)
		}
	}
	for _, c := range minimize(t, failed) {
		ctx, _ := json.Marshal(c.Context)
		t.Errorf("case %d: keypolicy %s, iam-simulate %s (%s)\n  principal %s action %s\n  context %s\n  policy %s",
			c.ID, evaluate(t, c), answers[c.ID].Decision, answers[c.ID].Raw, c.Principal, c.Action, ctx, c.Policy)
	}
	// The explained cases, rewritten to state AWS's rule, must agree.
	again := simulate(t, selected)
	for _, c := range selected {
		if a := again[c.ID]; a.Error != "" || a.Decision != ours[c.ID] {
			tally[explainedBy(cases[c.ID]).class].afterRewrite++
			t.Errorf("case %d rewritten to AWS's rule: keypolicy %s on the original, iam-simulate %s %s\n  principal %s action %s\n  original %s\n  rewritten %s",
				c.ID, ours[c.ID], a.Decision, a.Error, c.Principal, c.Action, cases[c.ID].Policy, c.Policy)
		}
	}
	explained := 0
	for _, d := range knownDisagreements {
		explained += tally[d.class].disagree
	}
	t.Logf("%d cases (seed %d,%d): %d agree %v, %d explained disagreements, %d unexplained", len(cases), seed1, seed2, agree, decisions, explained, len(failed))
	for _, d := range knownDisagreements {
		n := tally[d.class]
		t.Logf("class %q: selects %d cases, %d disagree as generated, %d after the rewrite to AWS's rule (right: %s; %s)", d.class, n.cases, n.disagree, n.afterRewrite, d.right, d.doc)
	}
	if len(cases) >= defaultCases && agree < 4*len(cases)/5 {
		t.Errorf("only %d of %d cases agree outright; want at least four in five", agree, len(cases))
	}
	for _, f := range features {
		t.Logf("cases with %s: %d", f.name, drawn[f.name])
		if drawn[f.name] < len(cases)/50 {
			t.Errorf("only %d cases with %s: the generator no longer draws it", drawn[f.name], f.name)
		}
	}
	for _, d := range []string{"Allow", "ImplicitDeny", "ExplicitDeny"} {
		if decisions[d] < len(cases)/50 {
			t.Errorf("only %d agreeing %s cases: the generator does not exercise every outcome", decisions[d], d)
		}
	}
}

// minimize reduces each disagreeing case to one statement on which the two
// evaluators still disagree, when there is one, so the report is readable.
func minimize(t *testing.T, failed []simCase) []simCase {
	if len(failed) == 0 {
		return nil
	}
	var singles []simCase
	split := func(c simCase) []json.RawMessage {
		var doc struct{ Statement []json.RawMessage }
		if err := json.Unmarshal(c.Policy, &doc); err != nil {
			t.Fatal(err)
		}
		return doc.Statement
	}
	for _, c := range failed {
		for _, st := range split(c) {
			s := c
			s.ID = len(singles)
			s.Policy = policyJSON(c.Version, []string{string(st)})
			singles = append(singles, s)
		}
	}
	answers := simulate(t, singles)
	out := make([]simCase, 0, len(failed))
	next := 0
	for _, c := range failed {
		reduced := c
		for range split(c) {
			s := singles[next]
			next++
			if answers[s.ID].Error == "" && answers[s.ID].Decision != evaluate(t, s) && reduced.ID == c.ID {
				reduced = s
				reduced.ID = c.ID
			}
		}
		out = append(out, reduced)
	}
	return out
}

// BenchmarkIAMSimulateVsKeypolicy runs the same cases through both
// evaluators. iam-simulate's time per evaluation (iamsim-ns/eval) is one
// node process over the whole batch, its start-up measured on an empty
// batch and subtracted. keypolicy is measured twice: "evaluate" on policies
// parsed beforehand (what amigate does: one key policy, many requests), and
// "parse+evaluate" (iam-simulate parses each case's policy itself).
// x-faster is the ratio per evaluation; the goal is ≥ 100 for "evaluate".
func BenchmarkIAMSimulateVsKeypolicy(b *testing.B) {
	nodeModules(b)
	cases := generateCases(numCases(b))
	start := time.Now()
	simulate(b, nil)
	startup := time.Since(start)
	start = time.Now()
	simulate(b, cases)
	simPer := (time.Since(start) - startup) / time.Duration(len(cases))

	policies := make([]*keypolicy.Policy, len(cases))
	for i, c := range cases {
		p, err := keypolicy.Parse(c.Policy)
		if err != nil {
			b.Fatal(err)
		}
		policies[i] = p
	}
	report := func(b *testing.B) {
		ours := b.Elapsed() / time.Duration(b.N)
		b.ReportMetric(float64(simPer.Nanoseconds()), "iamsim-ns/eval")
		b.ReportMetric(float64(simPer)/float64(max(ours, 1)), "x-faster")
	}
	b.Run("evaluate", func(b *testing.B) {
		i := 0
		for b.Loop() {
			c := cases[i%len(cases)]
			policies[i%len(cases)].Evaluate(keypolicy.Request{Principal: c.Principal, Action: c.Action, Resource: c.Resource, Context: c.Context})
			i++
		}
		report(b)
	})
	b.Run("parse+evaluate", func(b *testing.B) {
		i := 0
		for b.Loop() {
			c := cases[i%len(cases)]
			p, err := keypolicy.Parse(c.Policy)
			if err != nil {
				b.Fatal(err)
			}
			p.Evaluate(keypolicy.Request{Principal: c.Principal, Action: c.Action, Resource: c.Resource, Context: c.Context})
			i++
		}
		report(b)
	})
}
