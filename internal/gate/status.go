package gate

import "sync"

// Status is how far a run is, for a progress line on long runs: the step,
// how many of its units of work are done (a unit is one target's work in
// one region, a grant, an image shared, a key patched, a test launch), and
// how many targets were found failing so far. The report stays complete;
// a Status only says how far the run is.
type Status struct {
	Step    string
	Done    int
	Total   int
	Failing int
}

// StatusFunc receives a Status whenever a unit of work ends and when a step
// starts. It is never called concurrently.
type StatusFunc func(Status)

// tracker counts the units of the current step and the failing targets.
type tracker struct {
	mu      sync.Mutex
	fn      StatusFunc
	st      Status
	failing map[string]bool
}

// start begins a step of total units.
func (t *tracker) start(step string, total int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.st.Step, t.st.Done, t.st.Total = step, 0, total
	t.emit()
}

// add grows the current step by n units, found as it goes.
func (t *tracker) add(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.st.Total += n
	t.emit()
}

// done ends one unit of the current step.
func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.st.Done = min(t.st.Done+1, t.st.Total)
	t.emit()
}

// fail records that a target fails; it counts once however often it is
// found failing.
func (t *tracker) fail(account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failing == nil {
		t.failing = map[string]bool{}
	}
	if t.failing[account] {
		return
	}
	t.failing[account] = true
	t.st.Failing = len(t.failing)
	t.emit()
}

// emit hands the status over; the caller holds mu, which also keeps the
// callback from being called concurrently.
func (t *tracker) emit() {
	if t.fn != nil {
		t.fn(t.st)
	}
}
