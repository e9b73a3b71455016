package trail

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// kmsSource is looked for in a record's bytes before it is decoded: most
// records are not KMS's.
var kmsSource = []byte(`"kms.amazonaws.com"`)

// Scan streams one CloudTrail log file ({"Records":[...]}, as delivered to
// S3, gzipped or not) and calls fn for each denial on a launch path. Only
// one record is held in memory at a time. An empty input has no records.
func Scan(r io.Reader, fn func(Denial) error) error {
	br := bufio.NewReaderSize(r, 256<<10)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 256<<10)
	}
	return records(br, func(rec []byte) error {
		if !bytes.Contains(rec, kmsSource) {
			return nil
		}
		d, ok, err := ParseRecord(rec)
		if err != nil || !ok {
			return err
		}
		return fn(d)
	})
}

// errNotCloudTrail is a file that is not a CloudTrail log.
var errNotCloudTrail = errors.New(`not a CloudTrail log file (want {"Records": [...]})`)

// records splits a CloudTrail document into its records: the objects two
// levels down ({"Records":[ {...}, ... ]}). It tracks strings and escapes,
// so braces inside values do not count, and reports a truncated document.
func records(br *bufio.Reader, fn func([]byte) error) error {
	var (
		rec       []byte
		depth     int
		inString  bool
		escaped   bool
		started   bool
		recording bool
	)
	for {
		chunk, err := br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) && !errors.Is(err, io.EOF) {
			return err
		}
		start := 0
		for i := 0; i < len(chunk); i++ {
			b := chunk[i]
			if inString {
				if escaped {
					escaped = false
					continue
				}
				// Jump to the next quote or backslash.
				j := bytes.IndexAny(chunk[i:], `"\`)
				if j < 0 {
					break // the string goes on in the next chunk
				}
				i += j
				if chunk[i] == '\\' {
					escaped = true
				} else {
					inString = false
				}
				continue
			}
			switch b {
			case ' ', '\t', '\n', '\r':
			case '"':
				inString = true
			case '{', '[':
				if !started {
					if b != '{' {
						return errNotCloudTrail
					}
					started = true
				}
				if b == '{' && depth == 2 {
					recording, start, rec = true, i, rec[:0]
				}
				depth++
			case '}', ']':
				depth--
				if depth < 0 {
					return errors.New("unbalanced JSON")
				}
				if depth == 2 && recording {
					rec = append(rec, chunk[start:i+1]...)
					recording = false
					if err := fn(rec); err != nil {
						return err
					}
				}
			default:
				if !started {
					return errNotCloudTrail
				}
			}
		}
		if recording {
			rec = append(rec, chunk[start:]...)
		}
		if errors.Is(err, io.EOF) {
			if started && (depth != 0 || inString) {
				return errors.New("truncated JSON")
			}
			return nil
		}
	}
}

// ScanPaths scans files and directories (recursively: every .json and
// .json.gz file), several files at a time, and calls fn, one call at a
// time, for each denial. An error names the file.
func ScanPaths(ctx context.Context, paths []string, fn func(path string, d Denial) error) error {
	files, err := logFiles(paths)
	if err != nil {
		return err
	}
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	take := func() (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if first != nil || next == len(files) || ctx.Err() != nil {
			return "", false
		}
		next++
		return files[next-1], true
	}
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
		}
	}
	for range min(runtime.GOMAXPROCS(0), len(files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				name, ok := take()
				if !ok {
					return
				}
				if err := scanFile(name, func(d Denial) error {
					mu.Lock()
					defer mu.Unlock()
					return fn(name, d)
				}); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

func scanFile(name string, fn func(Denial) error) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	if err := Scan(f, fn); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// logFiles lists the .json and .json.gz files under the paths, sorted; a
// path named explicitly is scanned whatever its name.
func logFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(path, ".json") || strings.HasSuffix(path, ".json.gz")) {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}
