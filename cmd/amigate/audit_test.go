package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// `amigate audit` re-checks a release and changes nothing: green right
// after `amigate check`, exit 1 naming the revoked grant and the fix once
// the grant is revoked, and exit 2 for the flags that would change things.
func TestAuditFindsARevokedGrantAndChangesNothing(t *testing.T) {
	s, ami := simEnv(t)
	target := []string{"--ami", ami, "--target", "111122223333", "--target-role", "111122223333=arn:aws:iam::111122223333:role/amigate", "--asg", "111122223333=web"}
	if r := amigate(t, "", append([]string{"check"}, target...)...); r.code != exitOK {
		t.Fatalf("release: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	before := mutating(s)
	if r := amigate(t, "", append([]string{"audit"}, target...)...); r.code != exitOK || mutating(s) != before {
		t.Fatalf("audit after the release: exit %d, %d mutating calls\n%s%s", r.code, mutating(s)-before, r.stdout, r.stderr)
	}

	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(os.Getenv("AWS_ENDPOINT_URL")), Credentials: credentials.NewStaticCredentialsProvider("SIM444455556666", "x", "")}
	kc := kms.NewFromConfig(cfg)
	grants, err := kc.ListGrants(context.Background(), &kms.ListGrantsInput{KeyId: aws.String("alias/golden-ami")})
	if err != nil || len(grants.Grants) != 1 {
		t.Fatalf("grants: %v %v", grants, err)
	}
	if _, err := kc.RevokeGrant(context.Background(), &kms.RevokeGrantInput{KeyId: grants.Grants[0].KeyId, GrantId: grants.Grants[0].GrantId}); err != nil {
		t.Fatal(err)
	}
	before = mutating(s)
	r := amigate(t, "", append([]string{"audit"}, target...)...)
	if r.code != exitGateSaysNo || mutating(s) != before || !strings.Contains(r.stdout, "GRANT_MISSING") || !strings.Contains(r.stdout, "aws kms create-grant") {
		t.Fatalf("audit after the grant was revoked: exit %d, %d mutating calls\n%s%s", r.code, mutating(s)-before, r.stdout, r.stderr)
	}

	for _, flag := range []string{"--dry-run", "--no-share", "--key-policy", "--test-launch"} {
		if r := amigate(t, "", append([]string{"audit", flag, "x"}, target...)...); r.code != exitBadInput || !strings.Contains(r.stderr, "not defined: "+flag[1:]) {
			t.Errorf("audit %s: exit %d\n%s", flag, r.code, r.stderr)
		}
	}
}
