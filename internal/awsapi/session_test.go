package awsapi

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/amigate/packer-plugin-amigate/internal/awsim"
)

const world = `{"roles": [{"account": "111122223333", "name": "amigate",
  "trust_policy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "sts:AssumeRole"}]},
  "policies": {"all": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}}}]}`

// recorder serves the simulator and remembers each request's User-Agent.
type recorder struct {
	sim *awsim.Server
	mu  sync.Mutex
	ua  []string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.ua = append(r.ua, req.Header.Get("User-Agent"))
	r.mu.Unlock()
	r.sim.ServeHTTP(w, req)
}

func start(t *testing.T) (*recorder, string) {
	t.Helper()
	sim := awsim.New()
	if err := sim.LoadWorld(bytes.NewReader([]byte(world))); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{sim: sim}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return rec, srv.URL
}

// The environment's AWS_ENDPOINT_URL is honoured, the User-Agent names the
// plugin, a target role is assumed once for every region and client, and
// every call is counted.
func TestSession(t *testing.T) {
	rec, url := start(t)
	t.Setenv("AWS_ENDPOINT_URL", url)
	ctx := context.Background()
	sess, err := New(ctx, Settings{Region: "us-east-1", AccessKey: "SIM444455556666", SecretKey: "x", UserAgent: "packer-plugin-amigate/1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := sts.NewFromConfig(sess.Source("eu-west-1")).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || *id.Account != "444455556666" {
		t.Fatalf("source identity: %v", err)
	}
	for _, region := range []string{"us-east-1", "eu-west-1", "us-east-1"} {
		cfg := sess.Role("arn:aws:iam::111122223333:role/amigate", "", region)
		id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil || *id.Account != "111122223333" || !strings.Contains(*id.Arn, "assumed-role/amigate/"+SessionName) {
			t.Fatalf("role identity in %s: %v %v", region, err, id)
		}
		if _, err := kms.NewFromConfig(cfg).ListAliases(ctx, &kms.ListAliasesInput{}); err != nil {
			t.Fatal(err)
		}
	}
	calls := sess.Calls()
	if calls["sts:AssumeRole"] != 1 || calls["sts:GetCallerIdentity"] != 4 || calls["kms:ListAliases"] != 3 {
		t.Fatalf("calls = %v", calls)
	}
	for _, ua := range rec.ua {
		if !strings.Contains(ua, "packer-plugin-amigate/1.2.3") {
			t.Fatalf("User-Agent %q does not name the plugin", ua)
		}
	}
}

// A source assume_role is used for every call of the source.
func TestSessionAssumesTheSourceRole(t *testing.T) {
	_, url := start(t)
	ctx := context.Background()
	sess, err := New(ctx, Settings{Region: "us-east-1", AccessKey: "SIM444455556666", SecretKey: "x", Endpoint: url,
		AssumeRole: AssumeRole{RoleARN: "arn:aws:iam::111122223333:role/amigate", SessionName: "pipeline"}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := sts.NewFromConfig(sess.Source("us-east-1")).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || !strings.HasSuffix(*id.Arn, "assumed-role/amigate/pipeline") {
		t.Fatalf("identity: %v %v", err, id)
	}
}
