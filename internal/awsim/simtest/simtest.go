// Package simtest runs the simulated AWS for the tests of other packages.
package simtest

import (
	"bytes"
	"context"
	"testing"

	"github.com/amigate/packer-plugin-amigate/example"
	"github.com/amigate/packer-plugin-amigate/internal/awsim"
)

// Serve starts s on a free port of 127.0.0.1 until the test ends, and
// returns its endpoint URL.
func Serve(tb testing.TB, s *awsim.Server) string {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	url, err := s.Start(ctx, "127.0.0.1:0")
	if err != nil {
		cancel()
		tb.Fatalf("start the simulated AWS: %v", err)
	}
	tb.Cleanup(func() { cancel(); _ = s.Close() })
	return url
}

// ExampleWorld is a simulator (not started) holding example/sim-world.json:
// the first reference write-up's two accounts and the golden AMI.
func ExampleWorld(tb testing.TB) *awsim.Server {
	tb.Helper()
	s := awsim.New()
	if err := s.LoadWorld(bytes.NewReader(example.SimWorld)); err != nil {
		tb.Fatalf("load example/sim-world.json: %v", err)
	}
	return s
}
