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
	"strings"
	"sync"
)

// A record is decoded only when its bytes hold both of these: most records
// are not KMS's, and most KMS calls succeed (no errorCode).
var (
	kmsSource    = []byte("kms.amazonaws.com")
	errorCodeKey = []byte(`"errorCode"`)
)

// readSize is how much of a file is read at a time; a worker holds one
// such buffer, one gzip window and the record being read.
const readSize = 256 << 10

// Scan streams one CloudTrail log file ({"Records":[...]}, as delivered to
// S3, gzipped or not: gzip is recognised by its magic bytes) and calls fn
// for each denial on a launch path. Only one record is held in memory at a
// time. An empty input has no records; anything else that is not a
// CloudTrail log, or is cut short, is an error.
func Scan(r io.Reader, fn func(Denial) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var in io.Reader = br
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return decompressError(err)
		}
		defer zr.Close()
		in = gunzipErrors{zr}
	}
	return records(in, func(rec []byte, at int64) error {
		if !bytes.Contains(rec, kmsSource) || !bytes.Contains(rec, errorCodeKey) {
			return nil
		}
		d, ok, err := ParseRecord(rec)
		if err != nil {
			return fmt.Errorf("the record at byte %d: %w", at, err)
		}
		if !ok {
			return nil
		}
		return fn(d)
	})
}

// gunzipErrors says that a read error came from decompressing.
type gunzipErrors struct{ r io.Reader }

func (g gunzipErrors) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	return n, decompressError(err)
}

func decompressError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("decompress: the gzip stream is cut short: %w", err)
	}
	return fmt.Errorf("decompress: %w", err)
}

// errNotCloudTrail is a file that is not a CloudTrail log.
var errNotCloudTrail = errors.New(`not a CloudTrail log file (want {"Records": [...]})`)

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// records splits a CloudTrail document into its records, the objects of
// its top-level "Records" array, and calls fn with each and its offset
// (the slice is only valid during the call). It tracks strings and
// escapes, so that braces inside values do not count, but does not
// otherwise validate the JSON: a record is decoded, and so checked, only
// when it may be a KMS denial. It reports a document that is cut short,
// that is not an object with a "Records" array of objects, or that is
// followed by more data.
func records(r io.Reader, fn func(rec []byte, at int64) error) error {
	var (
		buf        = make([]byte, readSize)
		spill      []byte // the start of a record cut by the end of a chunk
		spilled    bool
		recStart   int64  // the record's offset in the document
		key        []byte // the last string read at depth 1: a member name
		depth      int
		inString   bool
		escaped    bool // the previous chunk ended on a backslash in a string
		keyOpen    bool // the string being read is at depth 1
		started    bool
		inRecords  bool // inside the top-level "Records" array
		sawRecords bool
		recording  bool
		offset     int64 // of the chunk in the document
	)
	at := func(i int) string { return fmt.Sprintf("at byte %d", offset+int64(i)) }
	for {
		var (
			n   int
			err error
		)
		if offset == 0 {
			// enough to see a byte order mark
			if n, err = io.ReadAtLeast(r, buf, len(utf8BOM)); err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
		} else {
			n, err = r.Read(buf)
		}
		if err != nil && err != io.EOF {
			return err
		}
		chunk := buf[:n]
		i, start := 0, 0
		if offset == 0 && bytes.HasPrefix(chunk, utf8BOM) {
			i = len(utf8BOM)
		}
		if escaped && len(chunk) > 0 {
			escaped, i = false, 1
		}
		bs := -1 // the next backslash at or after i (len(chunk): none); -1 not looked for
		for i < len(chunk) {
			if inString {
				// Jump to the closing quote, minding escapes; both searches
				// are vectorised, and the backslash one is reused.
				q := bytes.IndexByte(chunk[i:], '"')
				if q < 0 {
					q = len(chunk)
				} else {
					q += i
				}
				if bs < i {
					if bs = bytes.IndexByte(chunk[i:], '\\'); bs < 0 {
						bs = len(chunk)
					} else {
						bs += i
					}
				}
				if bs < q {
					if keyOpen {
						key = appendKey(key, chunk[i:bs+1])
					}
					if i = bs + 2; i > len(chunk) {
						escaped = true
					}
					continue
				}
				if keyOpen {
					key = appendKey(key, chunk[i:q])
				}
				if q == len(chunk) {
					break // the string goes on in the next chunk
				}
				inString, keyOpen = false, false
				i = q + 1
				continue
			}
			switch b := chunk[i]; b {
			case ' ', '\t', '\n', '\r':
			case '"':
				switch {
				case depth == 0:
					return outside(started, at(i))
				case depth == 2 && inRecords:
					return fmt.Errorf("a record that is not an object %s", at(i))
				case depth == 1:
					keyOpen, key = true, key[:0]
				}
				inString = true
			case '{':
				switch {
				case depth == 0 && started:
					return outside(started, at(i))
				case depth == 0:
					started = true
				case depth == 1 && string(key) == "Records":
					return errNotCloudTrail
				case depth == 2 && inRecords:
					recording, start, spilled, recStart = true, i, false, offset+int64(i)
				}
				depth++
			case '[':
				switch {
				case depth == 0:
					return outside(started, at(i))
				case depth == 1 && string(key) == "Records":
					inRecords, sawRecords = true, true
				case depth == 2 && inRecords:
					return fmt.Errorf("a record that is not an object %s", at(i))
				}
				depth++
			case '}', ']':
				if depth == 0 {
					return outside(started, at(i))
				}
				depth--
				switch {
				case depth == 2 && recording:
					recording = false
					rec := chunk[start : i+1]
					if spilled {
						spill = append(spill, rec...)
						rec = spill
					}
					if err := fn(rec, recStart); err != nil {
						return err
					}
				case depth == 1:
					inRecords = false
				case depth == 0 && !sawRecords:
					return errNotCloudTrail
				}
			default:
				if depth == 0 {
					return outside(started, at(i))
				}
				if depth == 2 && inRecords && b != ',' {
					return fmt.Errorf("a record that is not an object %s", at(i))
				}
			}
			i++
		}
		if recording {
			if !spilled {
				spill, spilled = spill[:0], true
			}
			spill = append(spill, chunk[start:]...)
		}
		offset += int64(n)
		if err == io.EOF {
			if started && (depth != 0 || inString) {
				return fmt.Errorf("the JSON is cut short %s", at(0))
			}
			return nil
		}
	}
}

// appendKey keeps enough of a member name to tell "Records" from the rest.
func appendKey(key, b []byte) []byte {
	return append(key, b[:min(len(b), max(0, 16-len(key)))]...)
}

// outside is an error for something found outside the top-level object.
func outside(started bool, where string) error {
	if started {
		return fmt.Errorf("more data after the JSON document %s", where)
	}
	return errNotCloudTrail
}

// ScanPaths scans files and directories (recursively: every .json and
// .json.gz file, except the digest files under CloudTrail-Digest), several
// files at a time, and calls fn, one call at a time, for each denial. A
// file named explicitly is scanned whatever its name; a path given twice,
// or inside a folder also given, is scanned once. Directories are walked
// as the files are scanned, so memory does not grow with their number. It
// returns how many files it read; an error names the file.
func ScanPaths(ctx context.Context, paths []string, fn func(path string, d Denial) error) (int, error) {
	roots, err := distinctRoots(paths)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	files := make(chan string)
	var walkErr error
	go func() {
		defer close(files)
		walkErr = walk(ctx, roots, files)
	}()
	var (
		mu    sync.Mutex // serialises fn and guards first and read
		first error
		read  int
		wg    sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range files {
				if ctx.Err() != nil {
					continue // drain: the walk stops at the cancel
				}
				err := scanFile(ctx, name, func(d Denial) error {
					mu.Lock()
					defer mu.Unlock()
					return fn(name, d)
				})
				mu.Lock()
				read++
				if err != nil && first == nil {
					first = err
				}
				mu.Unlock()
				if err != nil {
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	switch {
	case first != nil:
		return read, first
	case walkErr != nil && !errors.Is(walkErr, context.Canceled):
		return read, walkErr
	}
	return read, context.Cause(ctx) // the caller's cancel, if any
}

// root is a path to scan, and whether it is a folder.
type root struct {
	path string
	dir  bool
}

// distinctRoots checks that the paths exist and drops those another one
// covers.
func distinctRoots(paths []string) ([]root, error) {
	var roots []root
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		roots = append(roots, root{abs, info.IsDir()})
	}
	var out []root
	for i, r := range roots {
		covered := false
		for j, o := range roots {
			inside := o.dir && strings.HasPrefix(r.path, strings.TrimSuffix(o.path, string(filepath.Separator))+string(filepath.Separator))
			if inside || (o.path == r.path && j < i) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, r)
		}
	}
	return out, nil
}

// walk sends the log files under the roots.
func walk(ctx context.Context, roots []root, files chan<- string) error {
	send := func(name string) error {
		select {
		case files <- name:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, r := range roots {
		if !r.dir {
			if err := send(r.path); err != nil {
				return err
			}
			continue
		}
		err := filepath.WalkDir(r.path, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "CloudTrail-Digest" {
					return filepath.SkipDir // hashes of the logs, not events
				}
				return nil
			}
			if !strings.HasSuffix(path, ".json") && !strings.HasSuffix(path, ".json.gz") {
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				if info, err := os.Stat(path); err != nil || !info.Mode().IsRegular() {
					return nil // a dangling link, or one to a folder (not followed)
				}
			}
			return send(path)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func scanFile(ctx context.Context, name string, fn func(Denial) error) error {
	f, err := os.Open(name)
	if err != nil {
		return err // names the file
	}
	defer f.Close()
	if err := Scan(ctxReader{ctx, f}, fn); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// ctxReader stops reading when the context is done, so that a large file
// does not outlive a cancel.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
