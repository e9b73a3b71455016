package keylock

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/amigate/packer-plugin-amigate/internal/awsim"
	"github.com/amigate/packer-plugin-amigate/internal/awsim/simtest"
)

const owner = "444455556666"

type world struct {
	sim    *awsim.Server
	kms    *kms.Client
	keyARN string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	sim := awsim.New()
	url := simtest.Serve(t, sim)
	kc := kms.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("SIM"+owner, "x", "")})
	out, err := kc.CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	return &world{sim: sim, kms: kc, keyARN: aws.ToString(out.KeyMetadata.Arn)}
}

func (w *world) locker(run string) *Locker {
	return &Locker{KMS: w.kms, KeyARN: w.keyARN, RunID: run, minBackoff: 5 * time.Millisecond, maxBackoff: 20 * time.Millisecond}
}

// lockAliases are the names of the lock's aliases that exist.
func (w *world) lockAliases(t *testing.T) []string {
	t.Helper()
	out, err := w.kms.ListAliases(context.Background(), &kms.ListAliasesInput{KeyId: aws.String(w.keyARN)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range out.Aliases {
		if n := aws.ToString(a.AliasName); strings.HasPrefix(n, Prefix) {
			names = append(names, strings.TrimPrefix(n, Name(w.keyARN)))
		}
	}
	return names
}

func TestOneHolderAtATime(t *testing.T) {
	w := newWorld(t)
	w.sim.SetFaults(awsim.Faults{Service: "kms", LatencyMS: 5})
	var inside, most, done atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lk, err := w.locker(string(rune('a' + i))).Acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(20 * time.Millisecond)
			inside.Add(-1)
			if err := lk.Release(context.Background()); err != nil {
				t.Error(err)
			}
			done.Add(1)
		}()
	}
	wg.Wait()
	if most.Load() != 1 || done.Load() != 8 {
		t.Fatalf("%d holders at once at most, %d of 8 done; want 1 and 8", most.Load(), done.Load())
	}
	if left := w.lockAliases(t); len(left) != 0 {
		t.Fatalf("aliases left after every release: %v", left)
	}
}

func TestWaitingEndsWithTheHolderNamed(t *testing.T) {
	w := newWorld(t)
	held, err := w.locker("run-a").Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	<-held.recorded // the owner alias is made while the holder works
	if got := w.lockAliases(t); strings.Join(got, " ") != " /owner/run-a" {
		t.Fatalf("lock aliases %q, want the lock and its owner", got)
	}
	var said []string
	l := w.locker("run-b")
	l.Wait, l.Say = 100*time.Millisecond, func(s string) { said = append(said, s) }
	_, err = l.Acquire(context.Background())
	var he *HeldError
	if !errors.As(err, &he) || he.Owner != "run-a" || !strings.Contains(err.Error(), "held by run run-a") || !strings.Contains(err.Error(), "aws kms delete-alias --alias-name "+Name(w.keyARN)) {
		t.Fatalf("Acquire of a held lock: %v, want a HeldError naming run-a and the fix", err)
	}
	if he.Expires.Sub(he.Since) != Lease {
		t.Fatalf("expires %v after it was taken, want the lease %v", he.Expires.Sub(he.Since), Lease)
	}
	if len(said) != 1 || !strings.Contains(said[0], "waiting for the key policy lock") {
		t.Fatalf("progress %q, want one waiting line", said)
	}
	if err := held.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A run killed hard leaves its lock; once it is a lease old by AWS's
// clock, the next runs take it over, one of them only, and still one at a
// time.
func TestStaleLockIsTakenOverOnce(t *testing.T) {
	w := newWorld(t)
	killed, err := w.locker("killed").Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	<-killed.recorded
	w.sim.Advance(Lease + time.Minute)
	var mu sync.Mutex
	var said []string
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := w.locker(string(rune('a' + i)))
			l.Say = func(s string) { mu.Lock(); said = append(said, s); mu.Unlock() }
			lk, err := l.Acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			if n := inside.Add(1); n > most.Load() {
				most.Store(n)
			}
			time.Sleep(10 * time.Millisecond)
			inside.Add(-1)
			if err := lk.Release(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	took := 0
	for _, s := range said {
		if strings.HasPrefix(s, "took over the stale key policy lock") {
			took++
			if !strings.Contains(s, "held by run killed") {
				t.Errorf("takeover line %q does not name the killed run", s)
			}
		}
	}
	if took != 1 || most.Load() != 1 {
		t.Fatalf("%d takeovers, %d holders at once; want 1 and 1 (progress: %q)", took, most.Load(), said)
	}
	left := w.lockAliases(t)
	if len(left) != 1 || !strings.HasPrefix(left[0], "/takeover/") {
		t.Fatalf("aliases left %v, want only the takeover's tombstone", left)
	}
}

// What killed runs leave is collected by the runs that wait: an owner
// alias a lease old that names no holder, and a tombstone three leases old.
func TestLeftoversAreCollected(t *testing.T) {
	w := newWorld(t)
	if _, err := w.locker("killed").Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.sim.Advance(Lease + time.Minute)
	taker, err := w.locker("taker").Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := taker.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	stray := w.locker("").ownerName("crashed-between-deletes")
	if _, err := w.kms.CreateAlias(context.Background(), &kms.CreateAliasInput{AliasName: aws.String(stray), TargetKeyId: aws.String(w.keyARN)}); err != nil {
		t.Fatal(err)
	}
	w.sim.Advance(3*Lease + time.Minute)
	holder, err := w.locker("holder").Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waiter := w.locker("waiter")
	waiter.Wait = 30 * time.Millisecond
	if _, err := waiter.Acquire(context.Background()); err == nil {
		t.Fatal("acquired a held lock")
	}
	if got := strings.Join(w.lockAliases(t), " "); got != " /owner/holder" {
		t.Fatalf("aliases %q, want only the holder's (tombstone and stray owner collected)", got)
	}
	if err := holder.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestReleaseAfterCancelStillDeletes(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	lk, err := w.locker("run").Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel() // Ctrl-C
	if err := lk.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if left := w.lockAliases(t); len(left) != 0 {
		t.Fatalf("aliases left after a release on a cancelled context: %v", left)
	}
}

// Past its budget a holder sends nothing more: its lock may be stale by
// then, and deleting it could delete another run's.
func TestHolderSendsNothingPastItsBudget(t *testing.T) {
	w := newWorld(t)
	l := w.locker("slow")
	l.hold = 50 * time.Millisecond
	var said []string
	l.Say = func(s string) { said = append(said, s) }
	lk, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	ctx, cancel := lk.Context(context.Background())
	defer cancel()
	if ctx.Err() == nil {
		t.Fatal("the holder's context outlived its budget")
	}
	if err := lk.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if left := w.lockAliases(t); len(left) != 2 || len(said) != 1 || !strings.Contains(said[0], "left to expire") {
		t.Fatalf("after the budget: aliases %v, progress %q; want the lock left to expire", left, said)
	}
}

func TestStalledTakeoverIsNamed(t *testing.T) {
	w := newWorld(t)
	if _, err := w.locker("killed").Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.sim.Advance(Lease + time.Minute)
	out, err := w.kms.ListAliases(context.Background(), &kms.ListAliasesInput{KeyId: aws.String(w.keyARN)})
	if err != nil {
		t.Fatal(err)
	}
	var created time.Time
	for _, a := range out.Aliases {
		if aws.ToString(a.AliasName) == Name(w.keyARN) {
			created = aws.ToTime(a.CreationDate)
		}
	}
	// A run took the takeover alias and was killed before it finished.
	l := w.locker("waiting")
	if _, err := w.kms.CreateAlias(context.Background(), &kms.CreateAliasInput{AliasName: aws.String(l.takeoverName(created)), TargetKeyId: aws.String(w.keyARN)}); err != nil {
		t.Fatal(err)
	}
	w.sim.Advance(Lease + time.Minute)
	l.Wait = 50 * time.Millisecond
	_, err = l.Acquire(context.Background())
	var he *HeldError
	if !errors.As(err, &he) || !he.Stuck || !strings.Contains(err.Error(), "amigate cleanup") {
		t.Fatalf("Acquire behind a stalled takeover: %v, want a stuck HeldError pointing at cleanup", err)
	}
}

func TestAcquireFailsAtOnceOnOtherErrors(t *testing.T) {
	w := newWorld(t)
	l := w.locker("run")
	l.KeyARN = "arn:aws:kms:us-east-1:" + owner + ":key/00000000-0000-0000-0000-000000000000"
	start := time.Now()
	_, err := l.Acquire(context.Background())
	if err == nil || !strings.Contains(err.Error(), "NotFoundException") || !strings.Contains(err.Error(), Name(l.KeyARN)) || time.Since(start) > time.Second {
		t.Fatalf("Acquire on a key that does not exist: %v after %v, want the error at once", err, time.Since(start))
	}
}

// cancelOnCreate stops the run (as Ctrl-C does) while its CreateAlias is on
// its way: KMS applies the request, and a caller whose context is cancelled
// by then sees only the cancellation.
type cancelOnCreate struct {
	KMS
	cancel context.CancelFunc
}

func (c cancelOnCreate) CreateAlias(ctx context.Context, in *kms.CreateAliasInput, opts ...func(*kms.Options)) (*kms.CreateAliasOutput, error) {
	c.cancel()
	out, err := c.KMS.CreateAlias(context.WithoutCancel(ctx), in, opts...)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return out, err
}

// A run stopped while its CreateAlias is in flight still learns whether it
// got the lock, and releases it: no lock is left held by no one.
func TestStoppedWhileTakingTheLockLeavesNoLock(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	l := w.locker("stopped")
	l.KMS = cancelOnCreate{KMS: w.kms, cancel: cancel}
	if _, err := l.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire stopped midway: %v, want context.Canceled", err)
	}
	if left := w.lockAliases(t); len(left) != 0 {
		t.Fatalf("aliases left by a run stopped while taking the lock: %v", left)
	}
}
