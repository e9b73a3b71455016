// Package launch test-launches an AMI in a target account, the way the
// target will run it: a temporary clone of one of its Auto Scaling groups,
// or a plain instance. Every resource is registered for deletion before it
// is created, and deleted on success, failure, timeout, panic or
// cancellation.
package launch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Tags every resource of a test launch carries, so that `amigate cleanup`
// can find what a run killed hard left behind.
const (
	TagRunID     = "amigate:run-id"
	TagCreatedBy = "amigate:created-by"
	TagCreatedAt = "amigate:created-at"
	CreatedBy    = "amigate"
)

// CleanupTimeout bounds a cleanup that runs after the run's context ended.
const CleanupTimeout = 5 * time.Minute

// Cleanup is the list of deletions a test launch owes. Steps are added
// before the resource they delete is created, run in reverse order, and
// forgotten once they succeed, so Run may be called again.
type Cleanup struct {
	mu    sync.Mutex
	steps []step
}

type step struct {
	what string
	fn   func(context.Context) error
}

// Add registers a deletion; fn must succeed when the resource does not
// exist (it may never have been created).
func (c *Cleanup) Add(what string, fn func(context.Context) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.steps = append(c.steps, step{what, fn})
}

// Pending lists the deletions not yet done.
func (c *Cleanup) Pending() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.steps))
	for i, s := range c.steps {
		out[i] = s.what
	}
	return out
}

// Run runs every pending deletion, last registered first, with a context
// that outlives ctx's cancellation but not CleanupTimeout: a cancelled run
// still cleans up. It tries every step and returns their errors joined.
func (c *Cleanup) Run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CleanupTimeout)
	defer cancel()
	c.mu.Lock()
	steps := c.steps
	c.steps = nil
	c.mu.Unlock()
	var errs []error
	var failed []step
	for i := len(steps) - 1; i >= 0; i-- {
		if err := steps[i].fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("clean up %s: %w", steps[i].what, err))
			failed = append([]step{steps[i]}, failed...)
		}
	}
	if len(failed) > 0 {
		c.mu.Lock()
		c.steps = append(failed, c.steps...)
		c.mu.Unlock()
	}
	return errors.Join(errs...)
}
