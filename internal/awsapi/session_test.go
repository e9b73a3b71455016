package awsapi

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// flaky fails the first n attempts of every call with code (throttling or
// an internal error), then lets the simulator answer.
type flaky struct {
	sim      *awsim.Server
	n        int
	status   int
	code     string
	mu       sync.Mutex
	attempts int
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	f.mu.Lock()
	f.attempts++
	fail := f.attempts <= f.n
	f.mu.Unlock()
	if fail {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(`{"__type":"` + f.code + `","message":"injected"}`))
		return
	}
	f.sim.ServeHTTP(w, req)
}

// The default retry budget rides out long runs of throttling and internal
// errors (the SDK's standard 3 attempts do not), and never retries an
// error that retrying cannot fix.
func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name       string
		failures   int
		status     int
		code       string
		maxRetries int
		wantOK     bool
		attempts   int
	}{
		{"throttled 6 times in a row", 6, 400, "ThrottlingException", 0, true, 7},
		{"KMS internal error 9 times in a row", 9, 500, "KMSInternalException", 0, true, 10},
		{"throttled past the budget", 10, 400, "ThrottlingException", 0, false, 10},
		{"max_retries = 2", 5, 400, "ThrottlingException", 2, false, 3},
		{"access denied is not retried", 1, 400, "AccessDeniedException", 0, false, 1},
		{"validation is not retried", 1, 400, "ValidationException", 0, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &flaky{sim: awsim.New(), n: tc.failures, status: tc.status, code: tc.code}
			srv := httptest.NewServer(f)
			t.Cleanup(srv.Close)
			t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "config"))
			sess, err := New(context.Background(), Settings{Region: "us-east-1", AccessKey: "SIM444455556666", SecretKey: "x", Endpoint: srv.URL,
				MaxRetries: tc.maxRetries, RetryMaxBackoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			_, err = kms.NewFromConfig(sess.Source("us-east-1")).ListAliases(context.Background(), &kms.ListAliasesInput{})
			if (err == nil) != tc.wantOK || f.attempts != tc.attempts {
				t.Fatalf("after %d attempts: %v; want ok=%v after %d", f.attempts, err, tc.wantOK, tc.attempts)
			}
		})
	}
}

// The gate's calls in flight to one host — every service and region, when
// an endpoint override or the simulator answers them all — keep their
// connections: a second wave opens none.
func TestConnectionsAreReused(t *testing.T) {
	sim := awsim.New()
	// Every call is in flight while the others start, in both waves.
	sim.SetFaults(awsim.Faults{LatencyMS: 300})
	srv := httptest.NewUnstartedServer(sim)
	var mu sync.Mutex
	opened := 0
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			mu.Lock()
			opened++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "config"))
	sess, err := New(context.Background(), Settings{Region: "us-east-1", AccessKey: "SIM444455556666", SecretKey: "x", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	regions := []string{"us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2"}
	wave := func() {
		var wg sync.WaitGroup
		for _, region := range regions {
			c := kms.NewFromConfig(sess.Source(region))
			for range MaxConcurrency {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := c.ListAliases(context.Background(), &kms.ListAliasesInput{}); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		wg.Wait()
	}
	wave()
	mu.Lock()
	first := opened
	mu.Unlock()
	wave()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d calls in flight: %d connections opened, then %d more", len(regions)*MaxConcurrency, first, opened-first)
	// The second wave may open what the first did not need (a call of it
	// that finished early left its connection to another), never more:
	// with too small an idle pool, connections are closed and opened again.
	if inFlight := len(regions) * MaxConcurrency; opened > inFlight {
		t.Fatalf("%d connections opened for %d calls in flight at most", opened, inFlight)
	}
}
