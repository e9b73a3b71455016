package awsim

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// The simulator's own reading of the policy-language rules that gave false
// greens (issue 12). It shares no code with package keypolicy: each checks
// the other.

// newKeyWith creates a key with this policy in the owner account.
func newKeyWith(t *testing.T, url, policy string) string {
	t.Helper()
	k, err := kms.NewFromConfig(config(url, owner)).CreateKey(context.Background(), &kms.CreateKeyInput{Policy: aws.String(policy)})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return aws.ToString(k.KeyMetadata.Arn)
}

func describeKey(cfg aws.Config, keyARN string) error {
	_, err := kms.NewFromConfig(cfg).DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(keyARN)})
	return err
}

// targetRoleSession makes role/name in the target account, with an inline
// policy allowing every KMS action, and returns credentials of a session of
// it.
func targetRoleSession(t *testing.T, s *Server, url, name string) aws.Config {
	t.Helper()
	arn := "arn:aws:iam::" + target + ":role/" + name
	s.mu.Lock()
	s.world.roles[arn] = &role{arn: arn, name: name, path: "/", account: target,
		trustPolicy:    `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + target + `:root"},"Action":"sts:AssumeRole"}]}`,
		inlinePolicies: map[string]string{"kms": `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`}}
	s.mu.Unlock()
	out, err := sts.NewFromConfig(config(url, target)).AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String(arn), RoleSessionName: aws.String("launch")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(url, target)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(out.Credentials.AccessKeyId), aws.ToString(out.Credentials.SecretAccessKey), aws.ToString(out.Credentials.SessionToken))
	return cfg
}

const ownerRootStatement = `{"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"}`

// AWS KMS Developer Guide, "Key policies": every statement of a key policy
// needs Principal or NotPrincipal; CreateKey and PutKeyPolicy refuse one
// without with MalformedPolicyDocumentException and change nothing.
func TestKMSRefusesKeyPolicyStatementWithoutPrincipal(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	kc := kms.NewFromConfig(config(url, owner))
	for _, bad := range []string{
		`{"Version":"2012-10-17","Statement":[` + ownerRootStatement + `,{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`,
		`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kms:*","Resource":"*"}}`,
		`{"Version":"2012-10-17","Statement":[` + ownerRootStatement + `,{"Effect":"Deny","Principal":null,"Action":"kms:*","Resource":"*"}]}`,
	} {
		if _, err := kc.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(bad)}); apiCode(err) != "MalformedPolicyDocumentException" {
			t.Errorf("CreateKey with %s: %v, want MalformedPolicyDocumentException", bad, err)
		}
		k, err := kc.CreateKey(ctx, &kms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = kc.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: k.KeyMetadata.KeyId, PolicyName: aws.String("default"), Policy: aws.String(bad)})
		if apiCode(err) != "MalformedPolicyDocumentException" {
			t.Errorf("PutKeyPolicy with %s: %v, want MalformedPolicyDocumentException", bad, err)
		}
		got, err := kc.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: k.KeyMetadata.KeyId, PolicyName: aws.String("default")})
		if err != nil || aws.ToString(got.Policy) != defaultKeyPolicy(owner) {
			t.Errorf("the refused policy changed the key's: %v %s", err, aws.ToString(got.Policy))
		}
	}
}

// IAM User Guide, "IAM JSON policy elements: Version": policy variables are
// substituted only in a 2012-10-17 policy, in conditions and in Resource;
// in 2008-10-17, or without Version, they are literal text.
func TestSimPolicyVariablesOnlyInVersion20121017(t *testing.T) {
	_, url := startSim(t)
	sameAccount := `{"Sid":"SameAccount","Effect":"Allow","Principal":"*","Action":"kms:DescribeKey","Resource":"*","Condition":{"StringEquals":{"kms:CallerAccount":"${aws:PrincipalAccount}"}}}`
	ownDeny := `{"Sid":"DenyOwnKeys","Effect":"Deny","Principal":"*","Action":"kms:DescribeKey","Resource":"arn:aws:kms:*:${aws:PrincipalAccount}:key/*"}`
	for _, tc := range []struct {
		version   string
		substitue bool
	}{
		{`"Version":"2012-10-17",`, true},
		{`"Version":"2008-10-17",`, false},
		{``, false},
	} {
		// The target's root is allowed only by the variable.
		keyARN := newKeyWith(t, url, `{`+tc.version+`"Statement":[`+ownerRootStatement+`,`+sameAccount+`]}`)
		if err := describeKey(config(url, target), keyARN); (err == nil) != tc.substitue {
			t.Errorf("%s kms:CallerAccount = ${aws:PrincipalAccount}: %v, want allowed=%v", tc.version, err, tc.substitue)
		}
		// The owner is denied only by the variable in Resource.
		keyARN = newKeyWith(t, url, `{`+tc.version+`"Statement":[`+ownerRootStatement+`,`+ownDeny+`]}`)
		if err := describeKey(config(url, owner), keyARN); (apiCode(err) == "AccessDeniedException") != tc.substitue {
			t.Errorf("%s Resource with ${aws:PrincipalAccount}: %v, want denied=%v", tc.version, err, tc.substitue)
		}
	}
	// A variable the request does not carry has no value: StringNotEquals
	// on it holds, so the Deny applies (IAM User Guide, "IAM policy
	// elements: Variables and tags", policy variables with no value).
	keyARN := newKeyWith(t, url, `{"Version":"2012-10-17","Statement":[`+ownerRootStatement+`,
	  {"Effect":"Deny","Principal":"*","Action":"kms:DescribeKey","Resource":"*","Condition":{"StringNotEquals":{"kms:CallerAccount":"${aws:username}"}}}]}`)
	if err := describeKey(config(url, owner), keyARN); apiCode(err) != "AccessDeniedException" {
		t.Errorf("a Deny with StringNotEquals on a variable with no value: %v, want AccessDeniedException", err)
	}
}

// IAM User Guide, "AWS JSON policy elements: NotPrincipal": a Deny whose
// NotPrincipal lists an account's root ARN exempts that root user only; a
// session of one of the account's roles is denied. A role ARN listed
// exempts none of its sessions ("principals must always name a specific
// session"); the session's own ARN does.
func TestSimDenyNotPrincipalAccountRootDeniesTheAccountsRoles(t *testing.T) {
	s, url := startSim(t)
	// The roles exist before the policy names one (KMS refuses a missing one).
	launcher, exempt := targetRoleSession(t, s, url, "Launcher"), targetRoleSession(t, s, url, "Exempt")
	use := `{"Sid":"Use","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}`
	keyARN := newKeyWith(t, url, `{"Version":"2012-10-17","Statement":[`+ownerRootStatement+`,`+use+`,
	  {"Sid":"OnlyTheseAccounts","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::444455556666:root","arn:aws:iam::111122223333:root","arn:aws:iam::111122223333:role/Exempt"]},"Action":"kms:*","Resource":"*"}]}`)
	if err := describeKey(config(url, target), keyARN); err != nil {
		t.Errorf("the target's root user, listed: %v", err)
	}
	if err := describeKey(launcher, keyARN); apiCode(err) != "AccessDeniedException" {
		t.Errorf("a session of a role of the listed account: %v, want AccessDeniedException", err)
	}
	if err := describeKey(exempt, keyARN); apiCode(err) != "AccessDeniedException" {
		t.Errorf("a session of the listed role: %v, want AccessDeniedException", err)
	}
	keyARN = newKeyWith(t, url, `{"Version":"2012-10-17","Statement":[`+ownerRootStatement+`,`+use+`,
	  {"Sid":"OnlyThisSession","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::444455556666:root","arn:aws:iam::111122223333:root","arn:aws:iam::111122223333:role/Exempt","arn:aws:sts::111122223333:assumed-role/Exempt/launch"]},"Action":"kms:*","Resource":"*"}]}`)
	if err := describeKey(exempt, keyARN); err != nil {
		t.Errorf("the listed session: %v", err)
	}
}

// IAM User Guide, "AWS JSON policy elements: Principal": a service
// principal names the service, not an account or its roles.
func TestSimServicePrincipalNamesNoAccountOrRole(t *testing.T) {
	s, url := startSim(t)
	keyARN := newKeyWith(t, url, `{"Version":"2012-10-17","Statement":[`+ownerRootStatement+`,
	  {"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"kms:*","Resource":"*"}]}`)
	if err := describeKey(config(url, target), keyARN); apiCode(err) != "AccessDeniedException" {
		t.Errorf("target root under a service-principal allow: %v", err)
	}
	if err := describeKey(targetRoleSession(t, s, url, "Launcher"), keyARN); apiCode(err) != "AccessDeniedException" {
		t.Errorf("target role under a service-principal allow: %v", err)
	}
}

// IAM User Guide, "Condition operators", Amazon Resource Name operators:
// each of the six ARN fields is matched on its own, so '*' in the account
// field is any account and never reaches across a colon.
func TestSimArnLikeMatchesEachFieldOnItsOwn(t *testing.T) {
	for _, tc := range []struct {
		pattern, arn string
		want         bool
	}{
		{"arn:aws:iam::*:role/Launcher", "arn:aws:iam::111122223333:role/Launcher", true},
		{"arn:aws:iam::*:role/Launcher", "arn:aws:iam::111122223333:role/team/Launcher", false},
		{"arn:aws:iam::*", "arn:aws:iam::111122223333:root", false},
		{"arn:aws:iam::*:*", "arn:aws:iam::111122223333:root", true},
		{"arn:aws:iam::1111????3333:root", "arn:aws:iam::111122223333:root", true},
	} {
		for _, op := range []string{"ArnLike", "ArnEquals"} {
			if got := conditionHolds(op, []string{tc.arn}, []string{tc.pattern}); got != tc.want {
				t.Errorf("%s %s vs %s: %v, want %v", op, tc.pattern, tc.arn, got, tc.want)
			}
		}
	}
}

// IAM User Guide, "IAM policy elements: Variables and tags": ${*}, ${?} and
// ${$} stand for the characters themselves, so in a StringLike pattern
// ${*} matches only a '*'; ${key, 'default'} gives the default when the
// request lacks the key.
func TestSimPolicyVariableEscapesAndDefaults(t *testing.T) {
	st := policyStatement{variables: true}
	for _, tc := range []struct {
		op, value, have string
		want            bool
	}{
		{"StringLike", "a${*}", "a*", true},
		{"StringLike", "a${*}", "ab", false},
		{"StringLike", "a${?}", "a?", true},
		{"StringEquals", "cost${$}", "cost$", true},
		{"StringEquals", "${aws:username, 'nobody'}", "nobody", true},
		{"StringEquals", "${kms:CallerAccount}", target, true},
	} {
		want := st.conditionValues(policyCondition{op: tc.op, values: []string{tc.value}}, map[string][]string{"kms:calleraccount": {target}})
		if got := conditionHolds(tc.op, []string{tc.have}, want); got != tc.want {
			t.Errorf("%s %q vs %q: %v, want %v", tc.op, tc.value, tc.have, got, tc.want)
		}
	}
}
