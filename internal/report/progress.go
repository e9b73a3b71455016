package report

import (
	"fmt"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/gate"
)

// ProgressLines turns a run's Status into plain progress lines for logs (CI,
// Packer's UI), where a redrawn bar would be noise: one line when a step
// with many units starts, then one each time another tenth of it is done or
// 10 s have passed, and one when it ends. Steps of few units, which their own
// lines already describe, print nothing.
type ProgressLines struct {
	say func(string)
	// now is the clock (tests move it).
	now func() time.Time

	step      string
	tenth     int
	printed   time.Time
	announced bool
}

// minUnits is the size from which a step's progress is worth lines.
const minUnits = 20

// NewProgressLines prints through say.
func NewProgressLines(say func(string)) *ProgressLines {
	return &ProgressLines{say: say, now: time.Now}
}

// Status takes how far the run is. It is not safe for concurrent use (the
// gate never calls its StatusFunc concurrently).
func (p *ProgressLines) Status(s gate.Status) {
	if s.Step != p.step {
		p.step, p.tenth, p.announced = s.Step, 0, false
	}
	if s.Total < minUnits {
		return
	}
	tenth := s.Done * 10 / s.Total
	switch {
	case !p.announced:
		p.announced = true
	case tenth > p.tenth:
	case p.now().Sub(p.printed) >= 10*time.Second:
	default:
		return
	}
	p.tenth, p.printed = tenth, p.now()
	p.say(fmt.Sprintf("amigate: %s %d/%d (%d%%), %d target(s) failing so far", s.Step, s.Done, s.Total, s.Done*100/s.Total, s.Failing))
}
