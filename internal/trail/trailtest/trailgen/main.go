// Command trailgen writes generated CloudTrail log files (.json.gz, in
// CloudTrail's S3 layout) for the offline diagnosis benchmark
// (scripts/bench-diagnose.sh).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/amigate/packer-plugin-amigate/internal/trail/trailtest"
)

func main() {
	dir := flag.String("dir", "", "directory to write into")
	mb := flag.Int64("mb", 1024, "uncompressed megabytes to write")
	records := flag.Int("records", 5000, "records per file")
	every := flag.Int("every", 1000, "one denial every N records")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "trailgen: -dir is required")
		os.Exit(2)
	}
	files, denials, err := trailtest.WriteTree(*dir, *mb<<20, *records, *every, 1)
	if err != nil {
		fmt.Fprintln(os.Stderr, "trailgen:", err)
		os.Exit(1)
	}
	fmt.Printf("%d files, %d denials\n", len(files), denials)
}
