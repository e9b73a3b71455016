// Package awsim is a local, multi-account AWS for the encrypted-AMI launch
// path, reached by the real SDKs over HTTP (DESIGN §3.2). It models AWS from
// AWS's documentation, independently of package keypolicy, so the two can
// be tested against each other.
//
// Credentials: the access key id "SIM" followed by a 12-digit account id
// acts as that account's root (any secret). The region and the service come
// from the SigV4 credential scope; signatures are not checked.
package awsim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the simulated AWS. Its zero value is not usable: call New.
type Server struct {
	mu    sync.Mutex
	world *world
	calls []Call

	httpServer *http.Server
	listener   net.Listener
	// clockOffset is added to the wall clock (POST /_sim/clock): tests
	// make time pass, e.g. for a lock to go stale, without waiting.
	clockOffset atomic.Int64

	faults map[string]Faults
	// quotas are AWS's request quotas, when switched on (quotas.go).
	quotas quotaState
	// lookups holds, per account and region, the times of recent
	// LookupEvents calls, which CloudTrail throttles at 2 per second.
	lookups map[string][]time.Time

	// retryBackoff is how long Auto Scaling waits before it launches again
	// for a group below its desired capacity.
	retryBackoff time.Duration
}

// Call is one API call, as GET /_sim/calls lists it.
type Call struct {
	Time      time.Time `json:"time"`
	Service   string    `json:"service"`
	Action    string    `json:"action"`
	Account   string    `json:"account"`
	Region    string    `json:"region"`
	Mutating  bool      `json:"mutating"`
	Status    int       `json:"status"`
	ErrorCode string    `json:"error_code,omitempty"`
}

// New returns a simulator with an empty world.
func New() *Server {
	return &Server{world: newWorld(), retryBackoff: 10 * time.Second}
}

// now is the simulator's clock: the wall clock, moved on by Advance.
func (s *Server) now() time.Time {
	return time.Now().Add(time.Duration(s.clockOffset.Load()))
}

// Advance moves the simulator's clock forward by d: creation dates,
// response Date headers, grant propagation and CloudTrail delivery all
// follow it.
func (s *Server) Advance(d time.Duration) {
	s.clockOffset.Add(int64(d))
}

// Start listens on addr (a loopback address; "127.0.0.1:0" picks a free
// port) and serves until ctx ends or Close is called. It returns the
// endpoint URL.
func (s *Server) Start(ctx context.Context, addr string) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", fmt.Errorf("listen address %q: the simulator listens on loopback only", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.listener = ln
	s.httpServer = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.httpServer.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = s.Close()
	}()
	return "http://" + ln.Addr().String(), nil
}

// Close stops the server.
func (s *Server) Close() error {
	if s.httpServer == nil {
		return nil
	}
	// Requests in flight get a moment to finish. Connections a client
	// opened but never used would hold Shutdown for five seconds (net/http
	// counts them as idle only after that), so they are then closed.
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	if err := s.httpServer.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
		return s.httpServer.Close()
	} else if err != nil {
		return err
	}
	return nil
}

// SetRetryBackoff sets how long Auto Scaling waits before launching again
// for a group below its desired capacity (10 s by default; tests use 0).
func (s *Server) SetRetryBackoff(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryBackoff = d
}

// Calls returns a copy of the call log.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Reset empties the world and the call log.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.world = newWorld()
	s.calls = nil
	s.faults = nil
	s.lookups = nil
	s.SetQuotas(QuotaSettings{})
}

// caller is who makes a request: an account's root, or an assumed role.
type caller struct {
	account string
	region  string
	service string
	// arn is the principal: arn:aws:iam::ACCOUNT:root, or an assumed-role
	// session ARN.
	arn string
	// roleARN is the role behind an assumed-role session.
	roleARN string
	// sourceIP is the address the request came from.
	sourceIP string
}

var credentialRE = regexp.MustCompile(`Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request`)

// apiError is an error as AWS returns it.
type apiError struct {
	status  int
	code    string
	message string
	// reason is the Reason member some JSON errors carry (Organizations'
	// InvalidInputException, ConstraintViolationException).
	reason string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.serveAdmin(w, r)
		return
	}
	// AWS's answers carry its clock; the SDKs read it (clock skew, and
	// amigate's lock ages), so it follows the simulator's clock.
	w.Header().Set("Date", s.now().UTC().Format(http.TimeFormat))
	c, err := s.identify(r)
	if err != nil {
		writeQueryError(w, "", err)
		return
	}
	if e := s.refuseSuspended(c); e != nil {
		s.record(c, c.service, requestAction(r), false, e)
		writeServiceError(w, c.service, e)
		return
	}
	if s.injectFault(w, c) {
		return
	}
	switch {
	case r.Header.Get("X-Amz-Target") != "":
		s.serveJSON(w, r, c)
	default:
		s.serveQuery(w, r, c)
	}
}

// identify reads the caller from the SigV4 Authorization header.
func (s *Server) identify(r *http.Request) (caller, error) {
	m := credentialRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return caller{}, errorf(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token")
	}
	akid, region, service := m[1], m[2], m[3]
	c := caller{region: region, service: service}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		c.sourceIP = host
	}
	if acct, ok := strings.CutPrefix(akid, "SIM"); ok && validAccount(acct) {
		c.account = acct
		c.arn = "arn:aws:iam::" + acct + ":root"
		return c, nil
	}
	s.mu.Lock()
	sess, ok := s.world.sessions[akid]
	s.mu.Unlock()
	if !ok {
		return caller{}, errorf(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
	}
	c.account, c.arn, c.roleARN = sess.account, sess.arn, sess.roleARN
	return c, nil
}

// requestAction names the operation of a request that is not served, for
// the call log: the X-Amz-Target's operation, or the query's Action.
func requestAction(r *http.Request) string {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		return t[strings.LastIndexByte(t, '.')+1:]
	}
	return r.FormValue("Action")
}

// validAccount reports whether s is an account id: 12 digits.
func validAccount(s string) bool { return len(s) == 12 && isDigits(s) }

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// record appends a call to the log.
func (s *Server) record(c caller, service, action string, mutating bool, err error) {
	call := Call{Time: s.now().UTC(), Service: service, Action: action, Account: c.account, Region: c.region, Mutating: mutating, Status: http.StatusOK}
	var ae *apiError
	if errors.As(err, &ae) {
		call.Status, call.ErrorCode = ae.status, ae.code
	}
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
}

func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/_sim/reset" && r.Method == http.MethodPost:
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/_sim/faults" && r.Method == http.MethodPost:
		s.serveFaults(w, r)
	case r.URL.Path == "/_sim/quotas" && (r.Method == http.MethodPost || r.Method == http.MethodGet):
		s.serveQuotas(w, r)
	case r.URL.Path == "/_sim/clock" && r.Method == http.MethodPost:
		var req struct {
			AdvanceSeconds float64 `json:"advance_seconds"`
		}
		d := json.NewDecoder(r.Body)
		d.DisallowUnknownFields()
		if err := d.Decode(&req); err != nil || req.AdvanceSeconds <= 0 {
			http.Error(w, `want {"advance_seconds": N} with N > 0`, http.StatusBadRequest)
			return
		}
		s.Advance(time.Duration(req.AdvanceSeconds * float64(time.Second)))
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/_sim/calls" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		calls := s.Calls()
		if calls == nil {
			calls = []Call{} // an empty list, not null
		}
		_ = json.NewEncoder(w).Encode(calls)
	default:
		http.NotFound(w, r)
	}
}

func newID(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
