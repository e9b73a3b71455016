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
	if !errors.As(err, &he) || he.Owner != "run-a" || !strings.Contains(err.Error(), "held by run run-a") || !strings.Contains(err.Error(), "it expires at") {
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

// lockCreated is when the key's lock alias was made.
func (w *world) lockCreated(t *testing.T) time.Time {
	t.Helper()
	out, err := w.kms.ListAliases(context.Background(), &kms.ListAliasesInput{KeyId: aws.String(w.keyARN)})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range out.Aliases {
		if aws.ToString(a.AliasName) == Name(w.keyARN) {
			return aws.ToTime(a.CreationDate)
		}
	}
	t.Fatal("no lock")
	return time.Time{}
}

// A run killed in the middle of a takeover (its token made, the stale lock
// not yet deleted) blocks the lock for one more lease: then the next token
// admits one waiting run in its place.
func TestStalledTakeoverIsTakenOverALeaseLater(t *testing.T) {
	w := newWorld(t)
	if _, err := w.locker("killed").Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.sim.Advance(Lease + time.Minute)
	l := w.locker("waiting")
	if _, err := w.kms.CreateAlias(context.Background(), &kms.CreateAliasInput{AliasName: aws.String(l.takeoverName(w.lockCreated(t), 0)), TargetKeyId: aws.String(w.keyARN)}); err != nil {
		t.Fatal(err)
	}
	l.Wait = 50 * time.Millisecond
	var he *HeldError
	if _, err := l.Acquire(context.Background()); !errors.As(err, &he) {
		t.Fatalf("Acquire while another run's takeover may still be going: %v, want a HeldError", err)
	}
	w.sim.Advance(Lease + time.Minute)
	lk, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatalf("Acquire a lease after the takeover stalled: %v", err)
	}
	if !lk.TookOver {
		t.Fatal("the lock was not taken over")
	}
	if err := lk.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// amigate cleanup takes a stale lock over through the same tokens as a
// waiting run: a run that saw the stale lock before the sweep deleted it
// cannot then delete the lock a third run took since (found by review: the
// sweep used to delete the stale lock without a token, and the waiting
// run's takeover then deleted its successor's live lock).
func TestSweepAndAWaitingRunTakeOverOnce(t *testing.T) {
	w := newWorld(t)
	if _, err := w.locker("killed").Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.sim.Advance(Lease + time.Minute)
	b := w.locker("b")
	seen, err := b.read(context.Background()) // b sees the stale lock...
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Sweep(context.Background(), w.kms, time.Now().Add(time.Hour), false); err != nil { // ...cleanup removes it...
		t.Fatal(err)
	}
	c, err := w.locker("c").Acquire(context.Background()) // ...c takes the lock...
	if err != nil {
		t.Fatal(err)
	}
	took, err := b.takeOver(context.Background(), seen) // ...and b goes on with what it saw.
	if err != nil {
		t.Fatal(err)
	}
	if took {
		t.Fatal("b took over a lock the sweep had already taken over")
	}
	d := w.locker("d")
	d.Wait = 50 * time.Millisecond
	if _, err := d.Acquire(context.Background()); err == nil {
		t.Fatal("MUTUAL EXCLUSION BROKEN: d holds the lock while c still holds it")
	}
	if err := c.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A sweep leaves a lock younger than the lease (its holder may still act,
// whatever the cutoff), and tombstones younger than three leases.
func TestSweepLeavesWhatMayStillBeInUse(t *testing.T) {
	w := newWorld(t)
	holder, err := w.locker("holder").Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	<-holder.recorded
	found, err := Sweep(context.Background(), w.kms, time.Now().Add(time.Hour), false)
	if err != nil || len(found) != 0 {
		t.Fatalf("sweep of a live lock: %v %+v, want nothing", err, found)
	}
	w.sim.Advance(Lease + time.Minute)
	found, err = Sweep(context.Background(), w.kms, time.Now().Add(time.Hour), false)
	if err != nil || len(found) != 2 || !found[0].Deleted || !found[1].Deleted {
		t.Fatalf("sweep of a stale lock: %v %+v, want it and its owner deleted", err, found)
	}
	if left := w.lockAliases(t); len(left) != 1 || !strings.HasPrefix(left[0], "/takeover/") {
		t.Fatalf("after the sweep: %v, want the tombstone only", left)
	}
	w.sim.Advance(2 * Lease)
	if found, err := Sweep(context.Background(), w.kms, time.Now().Add(time.Hour), false); err != nil || len(found) != 0 {
		t.Fatalf("sweep of a tombstone two leases old: %v %+v, want it kept", err, found)
	}
	w.sim.Advance(Lease + time.Minute)
	if found, err := Sweep(context.Background(), w.kms, time.Now().Add(time.Hour), false); err != nil || len(found) != 1 || !found[0].Deleted {
		t.Fatalf("sweep of a tombstone three leases old: %v %+v, want it deleted", err, found)
	}
}

// The holder's budget is counted on the wall clock too: a machine
// suspended while holding the lock (its monotonic clock stood still) sends
// nothing more on waking.
func TestBudgetCountsTheWallClock(t *testing.T) {
	w := newWorld(t)
	lk, err := w.locker("suspended").Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	<-lk.recorded
	lk.askedWall = lk.askedWall.Add(-Hold) // as if the machine slept through it
	if lk.Left() != 0 {
		t.Fatalf("budget left %v after sleeping past it", lk.Left())
	}
	ctx, cancel := lk.Context(context.Background())
	defer cancel()
	if ctx.Err() == nil {
		t.Fatal("the holder's context outlived its budget")
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
