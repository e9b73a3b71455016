package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/amigate/packer-plugin-amigate/internal/gate"
)

func TestProgressBarShowsDoneTotalAndFailing(t *testing.T) {
	for _, tc := range []struct {
		s    gate.Status
		want string
	}{
		{gate.Status{Step: "apply", Done: 0, Total: 10}, "apply       [>         ] 0/10  0 failing"},
		{gate.Status{Step: "apply", Done: 5, Total: 10, Failing: 2}, "apply       [=====>    ] 5/10  2 failing"},
		{gate.Status{Step: "verify", Done: 10, Total: 10}, "verify      [==========] 10/10  0 failing"},
		{gate.Status{Step: "inspect"}, "inspect     [>         ] 0/0  0 failing"},
	} {
		if got := progressBar(tc.s, 10); got != tc.want {
			t.Errorf("progressBar(%+v) = %q, want %q", tc.s, got, tc.want)
		}
	}
}

// On a terminal the run's lines print above the bar, which is redrawn in
// place and cleared at the end; elsewhere no control characters are
// written.
func TestProgressViewKeepsLinesAboveTheBar(t *testing.T) {
	var out bytes.Buffer
	v := newProgressView(&out)
	v.tty = true
	v.Status(gate.Status{Step: "apply", Total: 4})
	v.Say("✔ created grant")
	v.Status(gate.Status{Step: "apply", Done: 4, Total: 4})
	v.Close()
	got := out.String()
	if !strings.Contains(got, "\r\033[K✔ created grant\n") || !strings.HasSuffix(got, "\r\033[K") || !strings.Contains(got, "4/4") {
		t.Fatalf("terminal output %q", got)
	}

	out.Reset()
	v = newProgressView(&out)
	v.Status(gate.Status{Step: "apply", Total: 40})
	v.Say("✔ created grant")
	v.Close()
	if strings.ContainsAny(out.String(), "\r\033") || !strings.Contains(out.String(), "amigate: apply 0/40") {
		t.Fatalf("log output %q", out.String())
	}
}
