package reliability_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/awsim"
)

// K builds gate one AMI on one key at the same moment, each for its own
// target account and Auto Scaling group. Every run must be green, and every
// target must be able to launch afterwards (shared, in the key policy, with
// its grant), with the key policy's own statement untouched.
func TestConcurrentGates(t *testing.T) {
	for _, k := range []int{4, 8} {
		for _, latency := range []int{0, 50} {
			trials := size(20, map[int]int{4: 1, 8: 2}[k])
			t.Run(fmt.Sprintf("K=%d latency=%dms", k, latency), func(t *testing.T) {
				var (
					green, red, given, lost, altered int
					waits, walls                     []time.Duration
					failures                         []string
				)
				for trial := range trials {
					w := newWorld(t, k)
					w.sim.SetFaults(awsim.Faults{Service: "kms", LatencyMS: latency})
					results := make([]result, k)
					dir := t.TempDir()
					start := time.Now()
					var wg sync.WaitGroup
					for i, acct := range w.targets {
						wg.Add(1)
						go func() {
							defer wg.Done()
							results[i] = w.amigate(t, w.env(t), w.checkArgs(acct, "--report", filepath.Join(dir, acct+".json"))...)
						}()
					}
					wg.Wait()
					walls = append(walls, time.Since(start))
					w.sim.SetFaults(awsim.Faults{})
					for i, acct := range w.targets {
						r := results[i]
						switch r.code {
						case 0:
							green++
							if err := w.launchable(acct); err != nil {
								lost++
								failures = append(failures, fmt.Sprintf("trial %d: green but %v", trial, err))
							}
						case 1:
							red++ // nothing is wrong with any target: a red is false
							failures = append(failures, fmt.Sprintf("trial %d: %s red: %s", trial, acct, lastLines(r.stderr)))
						default:
							given++
							failures = append(failures, fmt.Sprintf("trial %d: %s exit %d: %s", trial, acct, r.code, lastLines(r.stderr)))
						}
						waits = append(waits, lockWait(t, filepath.Join(dir, acct+".json")))
					}
					if !strings.Contains(w.policyText(t), w.ownerStatement) {
						altered++
						failures = append(failures, fmt.Sprintf("trial %d: the owner's statement was altered", trial))
					}
					if left := w.leftovers(t); len(left) > 0 {
						failures = append(failures, fmt.Sprintf("trial %d: left behind %v", trial, left))
					}
				}
				report("concurrent K=%d kms latency %2d ms: %2d trials, %3d runs: %3d green, %d false red, %d exit 3, %d lost, %d statements altered; lock wait p50 %v max %v; trial wall p50 %v",
					k, latency, trials, trials*k, green, red, given, lost, altered,
					percentile(waits, 0.5).Round(time.Millisecond), percentile(waits, 1).Round(time.Millisecond), percentile(walls, 0.5).Round(10*time.Millisecond))
				for _, f := range failures {
					t.Error(f)
				}
			})
		}
	}
}

// lockWait reads how long a run waited for the key policy lock.
func lockWait(t *testing.T, reportFile string) time.Duration {
	t.Helper()
	data, err := os.ReadFile(reportFile)
	if err != nil {
		return 0
	}
	var rep struct {
		Changes struct {
			KeyPolicies []struct {
				LockWaitMS int64 `json:"lock_wait_ms"`
			} `json:"key_policies"`
		} `json:"changes"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report %s: %v", reportFile, err)
	}
	var d time.Duration
	for _, kp := range rep.Changes.KeyPolicies {
		d += time.Duration(kp.LockWaitMS) * time.Millisecond
	}
	return d
}

// lastLines is the end of a run's progress, for a failure message.
func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-3):], " | ")
}
