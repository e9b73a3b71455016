package reliability_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/awsim"
	"github.com/amigate/packer-plugin-amigate/internal/keylock"
)

// started is an amigate process running.
type started struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan error
}

func (w *world) start(t *testing.T, env []string, args ...string) *started {
	t.Helper()
	p := &started{cmd: exec.Command(binary, args...), done: make(chan error, 1)}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	return p
}

// wait waits at most d for the process and returns its exit code, or -1
// when it did not exit in time (it is then killed).
func (p *started) wait(d time.Duration) int {
	select {
	case err := <-p.done:
		if exit, ok := err.(*exec.ExitError); ok {
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return exit.ExitCode()
		}
		return 0
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
		return -1
	}
}

// testLaunchArgs are a gate run that test-launches a clone of the target's
// group: the run that has the most to clean up.
func (w *world) testLaunchArgs(account string) []string {
	return w.checkArgs(account, "--test-launch", "asg", "--launch-timeout", "2m", "--grant-wait", "0s")
}

// runTime is how long an uninterrupted test-launching run takes, so that
// signals can land anywhere in one.
func runTime(t *testing.T) time.Duration {
	t.Helper()
	w := newWorld(t, 1)
	w.sim.SetFaults(awsim.Faults{LatencyMS: signalLatencyMS})
	r := w.amigate(t, w.env(t), w.testLaunchArgs(w.targets[0])...)
	if r.code != 0 {
		t.Fatalf("an uninterrupted run: exit %d: %s", r.code, r.stderr)
	}
	return r.took
}

// signalLatencyMS slows every call so that a run lasts about a second.
const signalLatencyMS = 40

// Ctrl-C (SIGINT) or SIGTERM at a random moment of a run: the run stops
// promptly, and nothing it made is left in AWS (test-launch group,
// instance, launch template version, key policy lock).
func TestInterruptedRunsLeaveNothing(t *testing.T) {
	n := size(24, 4)
	signals := []os.Signal{os.Interrupt, syscall.SIGTERM}
	d := runTime(t)
	var left, late, stopped int
	var exitTimes []time.Duration
	codes := map[int]int{}
	for i := range n {
		w := newWorld(t, 1)
		w.sim.SetFaults(awsim.Faults{LatencyMS: signalLatencyMS})
		p := w.start(t, w.env(t), w.testLaunchArgs(w.targets[0])...)
		time.Sleep(time.Duration(rand.Int64N(int64(d))))
		sig := signals[i%2]
		sent := time.Now()
		_ = p.cmd.Process.Signal(sig)
		code := p.wait(time.Minute)
		exitTimes = append(exitTimes, time.Since(sent))
		codes[code]++
		if code == -1 {
			late++
			t.Errorf("run %d: still running a minute after %v", i, sig)
		}
		if code == 3 {
			stopped++
		}
		// A request the run had sent when it stopped may still land in
		// AWS; what it makes must have been cleaned up too.
		time.Sleep(5 * signalLatencyMS * time.Millisecond)
		w.sim.SetFaults(awsim.Faults{})
		if l := w.leftovers(t); len(l) > 0 {
			left += len(l)
			t.Errorf("run %d (%v after %v): left %v\n%s", i, sig, sent, l, lastLines(p.stderr.String()))
		}
	}
	report("SIGINT/SIGTERM at random in a %v run: %d runs (%d stopped mid-run, exit codes %v): %d resources left, %d not exited within 1 min; exit after the signal p50 %v max %v",
		d.Round(10*time.Millisecond), n, stopped, codes, left, late, percentile(exitTimes, 0.5).Round(time.Millisecond), percentile(exitTimes, 1).Round(time.Millisecond))
}

// SIGKILL at a random moment: nothing of the run's own cleanup runs. A
// lease later (by the simulator's clock), either `amigate cleanup` removes
// what it left (its key policy lock through the takeover protocol), or the
// next run takes the lock over. Either way the next run is green and
// nothing is left.
func TestKilledRunsAreRecovered(t *testing.T) {
	n := size(10, 2)
	d := runTime(t)
	var left, blocked, tookOver int
	for i := range n {
		w := newWorld(t, 1)
		acct := w.targets[0]
		w.sim.SetFaults(awsim.Faults{LatencyMS: signalLatencyMS})
		p := w.start(t, w.env(t), w.testLaunchArgs(acct)...)
		time.Sleep(time.Duration(rand.Int64N(int64(d))))
		_ = p.cmd.Process.Kill()
		p.wait(time.Minute)
		// A request the run had sent may still land: let it, before the
		// clock is moved on below.
		time.Sleep(5 * signalLatencyMS * time.Millisecond)
		w.sim.SetFaults(awsim.Faults{})
		cleanup := []string{"cleanup", "--older-than", "1ms", "--region", region, "--target", acct, "--target-role", acct + "=" + roleARN(acct)}
		var next result
		// A lease on, any lock the killed run held is stale.
		w.sim.Advance(keylock.Lease + time.Minute)
		if i%2 == 0 {
			if r := w.amigate(t, w.env(t), cleanup...); r.code != 0 {
				t.Fatalf("run %d: cleanup exit %d: %s", i, r.code, r.stderr)
			}
			next = w.amigate(t, w.env(t), w.checkArgs(acct, "--lock-timeout", "30s")...)
		} else {
			next = w.amigate(t, w.env(t), w.checkArgs(acct, "--lock-timeout", "30s")...)
			if bytes.Contains([]byte(next.stderr), []byte("took over the stale key policy lock")) {
				tookOver++
			}
			if r := w.amigate(t, w.env(t), cleanup...); r.code != 0 {
				t.Fatalf("run %d: cleanup exit %d: %s", i, r.code, r.stderr)
			}
		}
		if next.code != 0 {
			blocked++
			t.Errorf("run %d: the run after the killed one: exit %d: %s", i, next.code, lastLines(next.stderr))
		}
		if l := w.leftovers(t); len(l) > 0 {
			left += len(l)
			t.Errorf("run %d: left after cleanup: %v", i, l)
		}
	}
	report("SIGKILL at random, then cleanup or a lease later: %d runs: %d resources left, %d next runs not green (%s)", n, left, blocked,
		fmt.Sprintf("%d stale locks taken over", tookOver))
}

// SIGKILL while the run holds the key policy lock: with no cleanup, the
// next run that must patch the key (for another target) takes the lock
// over once it is a lease old, and is green.
func TestKilledWhileHoldingTheLock(t *testing.T) {
	n := size(5, 1)
	tookOver, green := 0, 0
	for i := range n {
		w := newWorld(t, 2)
		killed, acct := w.targets[0], w.targets[1]
		// Slow KMS so that the run holds the lock long enough to be caught.
		w.sim.SetFaults(awsim.Faults{Service: "kms", LatencyMS: 300})
		p := w.start(t, w.env(t), w.checkArgs(killed)...)
		deadline := time.Now().Add(30 * time.Second)
		for !w.holdsLock(t) {
			if time.Now().After(deadline) {
				t.Fatalf("run %d never took the lock: %s", i, p.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = p.cmd.Process.Kill()
		p.wait(time.Minute)
		time.Sleep(5 * 300 * time.Millisecond) // requests in flight land
		w.sim.SetFaults(awsim.Faults{})
		w.sim.Advance(keylock.Lease + time.Minute)
		next := w.amigate(t, w.env(t), w.checkArgs(acct, "--lock-timeout", "30s")...)
		if next.code == 0 {
			green++
		} else {
			t.Errorf("run %d: the run after the killed holder: exit %d: %s", i, next.code, lastLines(next.stderr))
		}
		if bytes.Contains([]byte(next.stderr), []byte("took over the stale key policy lock")) {
			tookOver++
		} else {
			t.Errorf("run %d: the next run did not take the stale lock over: %s", i, next.stderr)
		}
		if err := w.launchable(acct); err != nil {
			t.Errorf("run %d: %v", i, err)
		}
		if w.holdsLock(t) {
			t.Errorf("run %d: the lock is still held after the next run", i)
		}
	}
	report("SIGKILL while holding the key policy lock, next run a lease later: %d runs: %d took the stale lock over, %d green", n, tookOver, green)
}

// holdsLock reports whether the golden key's policy lock exists.
func (w *world) holdsLock(t *testing.T) bool {
	t.Helper()
	for _, l := range w.leftovers(t) {
		if l == "alias "+keylock.Name(w.keyARN) {
			return true
		}
	}
	return false
}
