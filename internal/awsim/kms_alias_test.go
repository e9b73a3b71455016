package awsim

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func createKey(t *testing.T, kc *kms.Client) string {
	t.Helper()
	out, err := kc.CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

func TestCreateAliasIsExclusiveUntilDeleted(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	kc := kms.NewFromConfig(config(url, owner))
	keyARN := createKey(t, kc)
	name := "alias/amigate/lock/x"
	if _, err := kc.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(keyARN)}); err != nil {
		t.Fatal(err)
	}
	_, err := kc.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(keyARN)})
	if apiCode(err) != "AlreadyExistsException" {
		t.Fatalf("second CreateAlias: %v, want AlreadyExistsException", err)
	}
	out, err := kc.ListAliases(ctx, &kms.ListAliasesInput{KeyId: aws.String(keyARN)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Aliases) != 1 || aws.ToString(out.Aliases[0].AliasName) != name || out.Aliases[0].CreationDate == nil ||
		time.Since(*out.Aliases[0].CreationDate) > time.Minute {
		t.Fatalf("ListAliases %+v, want %s with its creation date", out.Aliases, name)
	}
	if _, err := kc.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(name)}); apiCode(err) != "NotFoundException" {
		t.Fatalf("DeleteAlias of a deleted alias: %v, want NotFoundException", err)
	}
	if _, err := kc.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(keyARN)}); err != nil {
		t.Fatalf("CreateAlias after DeleteAlias: %v", err)
	}
}

func TestAliasNamesAsKMSChecksThem(t *testing.T) {
	_, url := startSim(t)
	kc := kms.NewFromConfig(config(url, owner))
	keyARN := createKey(t, kc)
	for name, code := range map[string]string{
		"amigate":                           "ValidationException", // no alias/ prefix
		"alias/has space":                   "ValidationException",
		"alias/" + strings.Repeat("a", 251): "ValidationException", // 257 characters
		"alias/aws/mine":                    "NotAuthorizedException",
	} {
		_, err := kc.CreateAlias(context.Background(), &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(keyARN)})
		if apiCode(err) != code {
			t.Errorf("CreateAlias %q: %v, want %s", name, err, code)
		}
	}
}

func TestAliasesPerKeyQuota(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	kc := kms.NewFromConfig(config(url, owner))
	keyARN := createKey(t, kc)
	for i := range maxAliasesPerKey {
		if _, err := kc.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(fmt.Sprintf("alias/a%02d", i)), TargetKeyId: aws.String(keyARN)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := kc.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/one-too-many"), TargetKeyId: aws.String(keyARN)})
	if apiCode(err) != "LimitExceededException" {
		t.Fatalf("alias %d: %v, want LimitExceededException", maxAliasesPerKey+1, err)
	}
	// ListAliases pages through them all.
	var names []string
	pages := kms.NewListAliasesPaginator(kc, &kms.ListAliasesInput{KeyId: aws.String(keyARN), Limit: aws.Int32(7)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page.Aliases {
			names = append(names, aws.ToString(a.AliasName))
		}
	}
	if len(names) != maxAliasesPerKey || names[0] != "alias/a00" || names[len(names)-1] != "alias/a49" {
		t.Fatalf("paged ListAliases: %d aliases %v", len(names), names)
	}
}

// roleWithPolicy creates a role in account that the owner account may
// assume, with one inline policy, and returns a KMS client acting as it.
func roleWithPolicy(t *testing.T, url, account, name, policy string) aws.Config {
	t.Helper()
	ctx := context.Background()
	ic := iam.NewFromConfig(config(url, account))
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + owner + `:root"},"Action":"sts:AssumeRole"}]}`
	if _, err := ic.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(trust)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String("p"), PolicyDocument: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	out, err := sts.NewFromConfig(config(url, owner)).AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::" + account + ":role/" + name), RoleSessionName: aws.String("test")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(url, account)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(out.Credentials.AccessKeyId), aws.ToString(out.Credentials.SecretAccessKey), aws.ToString(out.Credentials.SessionToken))
	return cfg
}

// KMS: "principals who manage aliases must have permission to call the alias
// operation on the alias and on all affected KMS keys" (Controlling access
// to aliases).
func TestAliasOperationsNeedPermissionOnAliasAndKey(t *testing.T) {
	_, url := startSim(t)
	ctx := context.Background()
	keyARN := createKey(t, kms.NewFromConfig(config(url, owner))) // default policy: the account's IAM decides
	aliasOnly := kms.NewFromConfig(roleWithPolicy(t, url, owner, "alias-only",
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:CreateAlias","kms:DeleteAlias"],"Resource":"arn:aws:kms:us-east-1:`+owner+`:alias/amigate/*"}]}`))
	_, err := aliasOnly.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/amigate/lock/k"), TargetKeyId: aws.String(keyARN)})
	if apiCode(err) != "AccessDeniedException" || !strings.Contains(err.Error(), "no identity-based policy allows the kms:CreateAlias action") {
		t.Fatalf("CreateAlias without permission on the key: %v", err)
	}
	both := kms.NewFromConfig(roleWithPolicy(t, url, owner, "alias-and-key",
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:CreateAlias","kms:DeleteAlias","kms:ListAliases"],"Resource":["arn:aws:kms:us-east-1:`+owner+`:alias/amigate/*","`+keyARN+`"]}]}`))
	if _, err := both.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/amigate/lock/k"), TargetKeyId: aws.String(keyARN)}); err != nil {
		t.Fatalf("CreateAlias with permission on both: %v", err)
	}
	_, err = both.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/other"), TargetKeyId: aws.String(keyARN)})
	if apiCode(err) != "AccessDeniedException" {
		t.Fatalf("CreateAlias of an alias outside the policy: %v", err)
	}
	// ListAliases is allowed by the identity policy alone (Resource "*").
	if _, err := aliasOnly.ListAliases(ctx, &kms.ListAliasesInput{}); apiCode(err) != "AccessDeniedException" {
		t.Fatalf("ListAliases without kms:ListAliases: %v", err)
	}
	if _, err := both.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/amigate/lock/k")}); err != nil {
		t.Fatalf("DeleteAlias: %v", err)
	}
	// Aliases are per account: another account cannot name this key.
	_, err = kms.NewFromConfig(config(url, target)).CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/x"), TargetKeyId: aws.String(keyARN)})
	if apiCode(err) != "NotFoundException" {
		t.Fatalf("cross-account CreateAlias: %v", err)
	}
}

func TestClockAdvanceMovesCreationDatesAndTheDateHeader(t *testing.T) {
	s, url := startSim(t)
	ctx := context.Background()
	kc := kms.NewFromConfig(config(url, owner))
	keyARN := createKey(t, kc)
	resp, err := http.Post(url+"/_sim/clock", "application/json", strings.NewReader(`{"advance_seconds": 3600}`))
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /_sim/clock: %v %v", err, resp)
	}
	if _, err := kc.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/later"), TargetKeyId: aws.String(keyARN)}); err != nil {
		t.Fatal(err)
	}
	out, err := kc.ListAliases(ctx, &kms.ListAliasesInput{KeyId: aws.String(keyARN)})
	if err != nil {
		t.Fatal(err)
	}
	if d := out.Aliases[0].CreationDate.Sub(time.Now()); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("alias created %v from now, want an hour", d)
	}
	raw, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	date, err := http.ParseTime(raw.Header.Get("Date"))
	if err != nil || date.Sub(s.now()).Abs() > 2*time.Second {
		t.Fatalf("Date header %q, want the simulator's clock %v", raw.Header.Get("Date"), s.now())
	}
	for _, bad := range []string{`{}`, `{"advance_seconds": -1}`, `{"advance": 1}`} {
		resp, err := http.Post(url+"/_sim/clock", "application/json", strings.NewReader(bad))
		if err != nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST /_sim/clock %s: %v %v, want 400", bad, err, resp.Status)
		}
	}
}
