package reliability_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/amigate/packer-plugin-amigate/internal/awsim"
)

// Runs under 10 % throttling and 2 % internal errors on every call of every
// service. Four builds gate at once, one of them for a target that no
// patch can fix (an explicit Deny), so a wrong verdict either way shows:
// the three others must be green and launchable, the fourth red with
// KEY_POLICY_DENIES, and no run may give up (exit 3).
func TestVerdictsUnderThrottlingAndErrors(t *testing.T) {
	const k = 4
	rounds := size(25, 3)
	var wrong, given, retried, calls int
	var failures []string
	for round := range rounds {
		denied := targetAccount(k - 1)
		w := newWorld(t, k, denied)
		w.sim.SetFaults(awsim.Faults{ThrottleRate: 0.10, ErrorRate: 0.02})
		results := make([]result, k)
		var wg sync.WaitGroup
		for i, acct := range w.targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = w.amigate(t, w.env(t), w.checkArgs(acct)...)
			}()
		}
		wg.Wait()
		w.sim.SetFaults(awsim.Faults{})
		for _, c := range w.sim.Calls() {
			calls++
			if c.ErrorCode == "Throttling" || c.ErrorCode == "ThrottlingException" || c.ErrorCode == "RequestLimitExceeded" || c.Status >= 500 {
				retried++
			}
		}
		for i, acct := range w.targets {
			r := results[i]
			switch {
			case r.code == 3:
				given++
				failures = append(failures, fmt.Sprintf("round %d: %s gave up: %s", round, acct, lastLines(r.stderr)))
			case acct == denied && (r.code != 1 || !strings.Contains(r.stderr, "KEY_POLICY_DENIES")):
				wrong++
				failures = append(failures, fmt.Sprintf("round %d: %s (denied by the key policy) exit %d: %s", round, acct, r.code, lastLines(r.stderr)))
			case acct != denied && r.code != 0:
				wrong++
				failures = append(failures, fmt.Sprintf("round %d: %s exit %d: %s", round, acct, r.code, lastLines(r.stderr)))
			case acct != denied:
				if err := w.launchable(acct); err != nil {
					wrong++
					failures = append(failures, fmt.Sprintf("round %d: green but %v", round, err))
				}
			}
		}
	}
	report("faults (10%% throttling, 2%% 5xx, every service): %d runs: %d wrong verdicts, %d given up; %d of %d calls failed and were retried",
		rounds*k, wrong, given, retried, calls)
	for _, f := range failures {
		t.Error(f)
	}
}
