// Package keylock serialises the writers of a KMS key policy with KMS
// aliases. KMS has no conditional PutKeyPolicy, so two runs that read,
// plan and put at the same time lose one another's statements. CreateAlias,
// though, fails with AlreadyExistsException when the name is taken in the
// account and Region (AWS KMS API Reference, CreateAlias): one alias name
// per key is a lock that needs no infrastructure but the key itself.
//
// The lock is a lease, judged by AWS's clock (the alias's CreationDate and
// the Date of KMS's answers): a lock older than Lease is stale, and another
// run may take it over. A holder acts on the key only within Hold of asking
// for the lock, by its own clocks (monotonic and wall), and every request
// it signs is void five minutes after its signing time (SigV4); since Hold,
// those five minutes and the clock skew the SDK leaves uncorrected stay
// under Lease, nothing a holder sends can land after its lock could have
// been taken over. DESIGN.md §1.4 gives the argument in full.
//
// Aliases, for a key whose id is KEY:
//
//	alias/amigate/lock/KEY                      the lock
//	alias/amigate/lock/KEY/owner/RUN            who holds it (made right after)
//	alias/amigate/lock/KEY/takeover/MILLIS      the one run taking over the
//	                                            stale lock created at MILLIS
//	alias/amigate/lock/KEY/takeover/MILLIS-N    the one run taking over that
//	                                            lock after N takeovers of it
//	                                            stalled (their runs died)
package keylock

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
)

// Prefix starts the name of every alias of amigate's locks.
const Prefix = "alias/amigate/lock/"

// The protocol's times. Every writer of a key must use the same Lease.
const (
	// Lease is how long a lock is honoured, by AWS's clock, before another
	// run may take it over: more than Hold, plus the five minutes SigV4
	// accepts a signed request, plus the four minutes of clock skew the SDK
	// leaves uncorrected (2 + 5 + 4 = 11 minutes), with room to spare.
	Lease = 15 * time.Minute
	// Hold is how long after asking for the lock a holder may still send
	// a request that changes the key policy or the lock.
	Hold = 2 * time.Minute
	// DefaultWait is how long Acquire waits for a lock held by another run:
	// more than Lease, so a lock left by a run killed hard is taken over
	// before the wait ends.
	DefaultWait = 20 * time.Minute
)

// KMS is what the lock calls.
type KMS interface {
	CreateAlias(context.Context, *kms.CreateAliasInput, ...func(*kms.Options)) (*kms.CreateAliasOutput, error)
	DeleteAlias(context.Context, *kms.DeleteAliasInput, ...func(*kms.Options)) (*kms.DeleteAliasOutput, error)
	ListAliases(context.Context, *kms.ListAliasesInput, ...func(*kms.Options)) (*kms.ListAliasesOutput, error)
}

// Locker takes the policy lock of one key.
type Locker struct {
	KMS KMS
	// KeyARN is the key whose policy is written; every lock alias names it.
	KeyARN string
	// RunID names the holder in the owner alias.
	RunID string
	// Wait bounds Acquire; 0 means DefaultWait.
	Wait time.Duration
	// Say reports waiting and takeovers.
	Say func(string)

	// lease and hold replace Lease and Hold in this package's tests.
	lease, hold time.Duration
	// minBackoff and maxBackoff bound the pause between two tries.
	minBackoff, maxBackoff time.Duration
}

// Name is the lock alias of a key.
func Name(keyARN string) string { return Prefix + keyID(keyARN) }

func keyID(keyARN string) string { return keyARN[strings.LastIndexByte(keyARN, '/')+1:] }

func (l *Locker) name() string                { return Name(l.KeyARN) }
func (l *Locker) ownerName(run string) string { return l.name() + "/owner/" + run }

// takeoverName is the n-th token for taking over the lock created at.
func (l *Locker) takeoverName(at time.Time, n int) string {
	name := l.name() + "/takeover/" + strconv.FormatInt(at.UnixMilli(), 10)
	if n > 0 {
		name += "-" + strconv.Itoa(n)
	}
	return name
}

func (l *Locker) leaseTime() time.Duration { return or(l.lease, Lease) }
func (l *Locker) holdTime() time.Duration  { return or(l.hold, Hold) }

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (l *Locker) say(s string) {
	if l.Say != nil {
		l.Say(s)
	}
}

// Lock is a lock held.
type Lock struct {
	l *Locker
	// asked is when the winning CreateAlias was sent: the lease started
	// no earlier, so Hold measured from here is conservative. askedWall is
	// the same instant on the wall clock alone, which, unlike the
	// monotonic clock, goes on while the machine is suspended.
	asked, askedWall time.Time
	// Waited is how long Acquire took.
	Waited time.Duration
	// TookOver is set when a stale lock was taken over on the way.
	TookOver bool
	// recorded is closed once the owner alias is made (or failed).
	recorded chan struct{}
}

// HeldError is a lock another run held for longer than the wait.
type HeldError struct {
	Key, Alias string
	// Owner is the run holding it ("" when its owner alias is missing).
	Owner  string
	Since  time.Time
	Waited time.Duration
	// Expires is when the lock becomes stale and another run may take it
	// over.
	Expires time.Time
}

func (e *HeldError) Error() string {
	who := "another run"
	if e.Owner != "" {
		who = "run " + e.Owner
	}
	msg := fmt.Sprintf("the key policy lock of %s (alias %s) is held by %s since %s; waited %s", e.Key, e.Alias, who,
		e.Since.UTC().Format(time.RFC3339), e.Waited.Round(time.Second))
	return msg + fmt.Sprintf("; it expires at %s, when the next run takes it over (amigate cleanup removes expired locks)",
		e.Expires.UTC().Format(time.RFC3339))
}

// Acquire takes the lock, waiting with back-off while another run holds
// it and taking over a stale one, for at most Wait.
func (l *Locker) Acquire(ctx context.Context) (*Lock, error) {
	start := time.Now()
	wait := or(l.Wait, DefaultWait)
	backoff := or(l.minBackoff, 200*time.Millisecond)
	var lastOwner string
	var lastSince time.Time
	tookOver := false
	// A waiting run polls with ListAliases (500 a second per account and
	// Region) and tries CreateAlias (5 a second) only when the lock is
	// gone, so runs that wait do not spend the quota the next holder's
	// CreateAlias needs.
	for tryCreate := true; ; {
		if tryCreate {
			asked := time.Now()
			err := l.create(ctx, l.name())
			if err == nil {
				lk := &Lock{l: l, asked: asked, askedWall: asked.Round(0), Waited: time.Since(start), TookOver: tookOver, recorded: make(chan struct{})}
				// The holder is named while the caller starts its work.
				go lk.recordOwner(ctx)
				if ctx.Err() != nil { // stopped while the lock was being taken
					return nil, errors.Join(fmt.Errorf("take the key policy lock %s: %w", l.name(), ctx.Err()), lk.Release(ctx))
				}
				return lk, nil
			}
			if !isCode(err, "AlreadyExistsException") {
				return nil, fmt.Errorf("take the key policy lock %s: %w", l.name(), err)
			}
		}
		st, err := l.read(ctx)
		if err != nil {
			return nil, err
		}
		if st.lock == nil {
			// Released since, or made so recently that ListAliases (which
			// is eventually consistent) does not show it yet: try again
			// after a pause, within the wait.
			if time.Since(start) >= wait {
				return nil, fmt.Errorf("take the key policy lock %s: waited %s; CreateAlias says it exists and ListAliases does not show it", l.name(), time.Since(start).Round(time.Second))
			}
			if err := sleep(ctx, jitter(or(l.minBackoff, 200*time.Millisecond))); err != nil {
				return nil, fmt.Errorf("wait for the key policy lock %s: %w", l.name(), err)
			}
			tryCreate = true
			continue
		}
		if st.age() >= l.leaseTime() {
			took, err := l.takeOver(ctx, st)
			if err != nil {
				return nil, err
			}
			if took {
				tookOver, tryCreate = true, true
				continue
			}
		}
		l.collectGarbage(ctx, st, st.now)
		if owner := st.owner(); owner != lastOwner || !st.lock.created.Equal(lastSince) {
			lastOwner, lastSince = owner, st.lock.created
			l.say(fmt.Sprintf("waiting for the key policy lock of %s: held by %s since %s", l.KeyARN, orRun(owner), st.lock.created.UTC().Format(time.RFC3339)))
		}
		waited := time.Since(start)
		if waited >= wait {
			return nil, &HeldError{Key: l.KeyARN, Alias: l.name(), Owner: st.owner(), Since: st.lock.created, Waited: waited,
				Expires: st.lock.created.Add(l.leaseTime())}
		}
		if err := sleep(ctx, min(jitter(backoff), wait-waited)); err != nil {
			return nil, fmt.Errorf("wait for the key policy lock %s: %w", l.name(), err)
		}
		backoff = min(2*backoff, or(l.maxBackoff, 2*time.Second))
		tryCreate = false
	}
}

func orRun(owner string) string {
	if owner == "" {
		return "another run"
	}
	return "run " + owner
}

// create makes an alias naming the key. The call is not cut short when ctx
// is cancelled (Ctrl-C): AWS may still apply a request whose answer never
// came back, and a lock made that way would be held by no one until it
// expired. So the answer is awaited, for at most createWait.
func (l *Locker) create(ctx context.Context, name string) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createWait)
	defer cancel()
	_, err := l.KMS.CreateAlias(cctx, &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(l.KeyARN)})
	return err
}

// createWait bounds a CreateAlias (retries included) that a cancelled run
// still waits for.
const createWait = 30 * time.Second

// recordOwner names the holder, for the messages of the runs that wait.
// The lock holds without it, so a failure is only reported.
func (lk *Lock) recordOwner(ctx context.Context) {
	defer close(lk.recorded)
	l := lk.l
	if l.RunID == "" {
		return
	}
	ctx, cancel := lk.Context(context.WithoutCancel(ctx))
	defer cancel()
	if _, err := l.KMS.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(l.ownerName(l.RunID)), TargetKeyId: aws.String(l.KeyARN)}); err != nil {
		l.say(fmt.Sprintf("! could not record run %s as the holder of the key policy lock of %s: %v", l.RunID, l.KeyARN, err))
	}
}

// Context bounds ctx by the end of the holder's budget: what is not sent
// by then is not sent at all. The budget is counted on the monotonic and
// the wall clock, whichever has run further (a suspended machine's
// monotonic clock stands still while AWS's runs on).
func (lk *Lock) Context(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithDeadline(ctx, time.Now().Add(lk.Left()))
}

// Left is what remains of the holder's budget; a holder checks it again
// right before each request that changes the key policy.
func (lk *Lock) Left() time.Duration {
	now := time.Now()
	spent := max(now.Sub(lk.asked), now.Round(0).Sub(lk.askedWall))
	return max(lk.l.holdTime()-spent, 0)
}

// Release deletes the lock (and its owner alias), even when ctx is
// cancelled: a run stopped by Ctrl-C releases it too. Past the holder's
// budget it leaves the lock to expire instead, since by then the lock may
// no longer be its own to delete.
func (lk *Lock) Release(ctx context.Context) error {
	l := lk.l
	ctx, cancel := lk.Context(context.WithoutCancel(ctx))
	defer cancel()
	if ctx.Err() != nil {
		l.say(fmt.Sprintf("! held the key policy lock of %s past its %s budget: it is left to expire within %s", l.KeyARN, l.holdTime(), l.leaseTime()))
		return nil
	}
	<-lk.recorded
	owner := make(chan struct{})
	go func() { // side by side with the lock's own deletion
		defer close(owner)
		if l.RunID == "" {
			return
		}
		if _, err := l.KMS.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(l.ownerName(l.RunID))}); err != nil && !isCode(err, "NotFoundException") {
			l.say(fmt.Sprintf("! could not delete the owner alias %s: %v", l.ownerName(l.RunID), err))
		}
	}()
	defer func() { <-owner }()
	if _, err := l.KMS.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(l.name())}); err != nil && !isCode(err, "NotFoundException") {
		return fmt.Errorf("release the key policy lock %s (other runs wait until it expires, within %s; aws kms delete-alias --alias-name %s frees it now): %w",
			l.name(), l.leaseTime(), l.name(), err)
	}
	return nil
}

// state is the lock's aliases as ListAliases shows them, and AWS's time.
type state struct {
	lock      *entry
	owners    map[string]entry // by run
	takeovers map[string]entry // by name
	now       time.Time        // AWS's clock
}

type entry struct {
	name    string
	created time.Time
}

func (st *state) age() time.Duration { return st.now.Sub(st.lock.created) }

// owner is the run that recorded itself first after the lock was made.
func (st *state) owner() string {
	best, bestAt := "", time.Time{}
	for run, e := range st.owners {
		if !e.created.Before(st.lock.created) && (best == "" || e.created.Before(bestAt)) {
			best, bestAt = run, e.created
		}
	}
	return best
}

// forCurrentLock reports whether a takeover token names the current lock.
func (st *state) forCurrentLock(name string, l *Locker) bool {
	if st.lock == nil {
		return false
	}
	base := l.takeoverName(st.lock.created, 0)
	return name == base || strings.HasPrefix(name, base+"-")
}

// read lists the key's aliases.
func (l *Locker) read(ctx context.Context) (*state, error) {
	st := newState()
	pages := kms.NewListAliasesPaginator(l.KMS, &kms.ListAliasesInput{KeyId: aws.String(l.KeyARN)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the key policy lock %s: %w", l.name(), err)
		}
		if t, ok := awsmiddleware.GetServerTime(page.ResultMetadata); ok {
			st.now = t
		}
		for _, a := range page.Aliases {
			st.add(l.name(), aws.ToString(a.AliasName), aws.ToTime(a.CreationDate))
		}
	}
	if st.now.IsZero() {
		st.now = time.Now()
	}
	return st, nil
}

func newState() *state {
	return &state{owners: map[string]entry{}, takeovers: map[string]entry{}}
}

// add files one alias of the lock named lock.
func (st *state) add(lock, name string, created time.Time) {
	e := entry{name: name, created: created}
	switch rest, ok := strings.CutPrefix(name, lock); {
	case !ok:
	case rest == "":
		st.lock = &e
	case strings.HasPrefix(rest, "/owner/"):
		st.owners[strings.TrimPrefix(rest, "/owner/")] = e
	case strings.HasPrefix(rest, "/takeover/"):
		st.takeovers[name] = e
	}
}

// takeOver removes a stale lock, once: a takeover token named for the
// lock's creation admits one run, and is left behind as a tombstone so
// that a run that saw the same stale lock cannot take over its successor.
// A token older than the lease belongs to a run that died taking over (a
// run deletes the lock within Hold of making its token); the next token,
// MILLIS-1, MILLIS-2, ..., then admits one run in its place. It reports
// whether the stale lock is gone.
func (l *Locker) takeOver(ctx context.Context, st *state) (bool, error) {
	asked := time.Now()
	// A takeover, once begun, is finished even if the run is stopped:
	// half done, it would leave the stale lock for no one to take over.
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), asked.Add(l.holdTime()))
	defer cancel()
	token := ""
	for n := 0; token == ""; n++ {
		name := l.takeoverName(st.lock.created, n)
		e, taken := st.takeovers[name]
		switch {
		case !taken:
			token = name
		case st.now.Sub(e.created) < l.leaseTime():
			return false, nil // another run is taking it over
		}
	}
	_, err := l.KMS.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(token), TargetKeyId: aws.String(l.KeyARN)})
	if isCode(err, "AlreadyExistsException") {
		return false, nil // another run takes it over
	}
	if err != nil {
		return false, fmt.Errorf("take over the stale key policy lock %s: %w", l.name(), err)
	}
	// Only this run may delete this lock now, and it is still the stale
	// one: its holder sends nothing after its budget, the runs that made
	// the earlier tokens died a lease ago, and no run creates a lock
	// while one exists.
	if _, err := l.KMS.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(l.name())}); err != nil && !isCode(err, "NotFoundException") {
		return false, fmt.Errorf("take over the stale key policy lock %s: %w", l.name(), err)
	}
	owner := st.owner()
	if owner != "" {
		if _, err := l.KMS.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(l.ownerName(owner))}); err != nil && !isCode(err, "NotFoundException") {
			l.say(fmt.Sprintf("! could not delete the stale owner alias %s: %v", l.ownerName(owner), err))
		}
	}
	l.say(fmt.Sprintf("took over the stale key policy lock of %s (held by %s since %s, past its %s lease)",
		l.KeyARN, orRun(owner), st.lock.created.UTC().Format(time.RFC3339), l.leaseTime()))
	return true, nil
}

// collectGarbage deletes what crashed runs left, made before cutoff:
// owner aliases older than the lease that name no current holder, and
// takeover tombstones of locks that are gone, once they are three leases
// old (by then no run can still be acting on having seen that lock: a run
// sends within Hold of looking, and AWS refuses a request signed more than
// five minutes before). It returns what it deleted.
func (l *Locker) collectGarbage(ctx context.Context, st *state, cutoff time.Time) []entry {
	var old []entry
	for _, e := range l.garbage(st, cutoff) {
		if _, err := l.KMS.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(e.name)}); err != nil && !isCode(err, "NotFoundException") {
			l.say(fmt.Sprintf("! could not delete the leftover lock alias %s: %v", e.name, err))
			continue
		}
		old = append(old, e)
	}
	return old
}

// garbage is what collectGarbage deletes.
func (l *Locker) garbage(st *state, cutoff time.Time) []entry {
	current := ""
	if st.lock != nil {
		current = st.owner()
	}
	var out []entry
	for run, e := range st.owners {
		if run != current && st.now.Sub(e.created) >= l.leaseTime() && e.created.Before(cutoff) {
			out = append(out, e)
		}
	}
	for name, e := range st.takeovers {
		if !st.forCurrentLock(name, l) && st.now.Sub(e.created) >= 3*l.leaseTime() && e.created.Before(cutoff) {
			out = append(out, e)
		}
	}
	return out
}

func isCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}

// jitter picks a pause in [d/2, d), so waiting runs do not retry in step.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64(d/2)))
	if err != nil {
		return d
	}
	return d/2 + time.Duration(n.Int64())
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Leftover is a lock alias a sweep found.
type Leftover struct {
	Alias   string
	RunID   string // for an owner alias
	Created time.Time
	Deleted bool
}

// Sweep deletes (unless dryRun) the lock aliases of every key of the
// account and Region that runs killed hard left, made before cutoff: it
// takes over each lock past its lease through the same takeover tokens as
// a waiting run (never a lock younger than the lease: its holder may still
// act), and collects stale owner aliases and tombstones as waiting runs do.
func Sweep(ctx context.Context, c KMS, cutoff time.Time, dryRun bool) ([]Leftover, error) {
	states := map[string]*state{} // by key id
	var now time.Time
	pages := kms.NewListAliasesPaginator(c, &kms.ListAliasesInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list the key policy locks: %w", err)
		}
		if t, ok := awsmiddleware.GetServerTime(page.ResultMetadata); ok {
			now = t
		}
		for _, a := range page.Aliases {
			name, key := aws.ToString(a.AliasName), aws.ToString(a.TargetKeyId)
			if !strings.HasPrefix(name, Prefix) || key == "" {
				continue
			}
			if states[key] == nil {
				states[key] = newState()
			}
			states[key].add(Name(key), name, aws.ToTime(a.CreationDate))
		}
	}
	if now.IsZero() {
		now = time.Now()
	}
	var found []Leftover
	keys := make([]string, 0, len(states))
	for k := range states {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		st := states[key]
		st.now = now
		l := &Locker{KMS: c, KeyARN: key}
		if st.lock != nil && st.age() >= l.leaseTime() && st.lock.created.Before(cutoff) {
			lock := Leftover{Alias: st.lock.name, Created: st.lock.created}
			took := false
			if !dryRun {
				var err error
				if took, err = l.takeOver(ctx, st); err != nil {
					return found, err
				}
			}
			if took || dryRun { // the lock goes, and the name of its holder with it
				lock.Deleted = took
				found = append(found, lock)
				if owner := st.owner(); owner != "" {
					found = append(found, Leftover{Alias: l.ownerName(owner), RunID: owner, Created: st.owners[owner].created, Deleted: took})
					delete(st.owners, owner)
				}
				st.lock = nil
			}
		}
		var garbage []entry
		if dryRun {
			garbage = l.garbage(st, cutoff)
		} else {
			garbage = l.collectGarbage(ctx, st, cutoff)
		}
		for _, e := range garbage {
			lf := Leftover{Alias: e.name, Created: e.created, Deleted: !dryRun}
			if _, run, ok := strings.Cut(strings.TrimPrefix(e.name, Prefix), "/owner/"); ok {
				lf.RunID = run
			}
			found = append(found, lf)
		}
	}
	return found, nil
}
