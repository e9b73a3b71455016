package report

import (
	"strings"
	"testing"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/gate"
)

// In a log, a long step gets a line when it starts, one per tenth done, one
// after 10 s without a new tenth, and one when it ends; a short step none.
func TestProgressLinesInALogEveryTenthAndEveryTenSeconds(t *testing.T) {
	var lines []string
	clock := time.Unix(0, 0)
	p := NewProgressLines(func(l string) { lines = append(lines, l) })
	p.now = func() time.Time { return clock }

	p.Status(gate.Status{Step: "inspect", Total: 5})
	for i := 1; i <= 5; i++ {
		p.Status(gate.Status{Step: "inspect", Done: i, Total: 5})
	}
	if len(lines) != 0 {
		t.Fatalf("a step of 5 units printed %q", lines)
	}
	p.Status(gate.Status{Step: "apply", Total: 2000})
	for i := 1; i <= 2000; i++ {
		if i == 150 {
			clock = clock.Add(11 * time.Second) // a slow stretch
		}
		failing := 0
		if i > 1000 {
			failing = 3
		}
		p.Status(gate.Status{Step: "apply", Done: i, Total: 2000, Failing: failing})
	}
	// start, 150 (10 s passed), then each tenth 200..2000
	if len(lines) != 12 {
		t.Fatalf("%d lines:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if lines[0] != "amigate: apply 0/2000 (0%), 0 target(s) failing so far" ||
		lines[1] != "amigate: apply 150/2000 (7%), 0 target(s) failing so far" ||
		lines[11] != "amigate: apply 2000/2000 (100%), 3 target(s) failing so far" {
		t.Fatalf("lines:\n%s", strings.Join(lines, "\n"))
	}
}
