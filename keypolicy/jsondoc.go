package keypolicy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// node is a JSON value of a policy document, read in one pass: what kind
// of value it is, where it is in the document, and what it holds. A
// document is parsed into nodes once and statements are built from them,
// so no byte is decoded twice.
type node struct {
	// kind is the value's first byte: '{', '[', '"', 't', 'f', 'n', or
	// '-' and '0'–'9' for a number.
	kind       byte
	start, end int // the value's bytes in the document

	// text is a string's value, or a number's or boolean's literal.
	text string
	// members are an object's, in document order; a name written twice
	// keeps its last value, in its first place, as encoding/json does.
	members []member
	// items are an array's elements.
	items []node
}

type member struct {
	name  string
	value node
}

// isNull reports a JSON null.
func (n *node) isNull() bool { return n.kind == 'n' }

// source is the value as written, shortened for an error message.
func (n *node) source(doc []byte) string {
	return truncate(string(doc[n.start:n.end]), 40)
}

// readDocument parses data, which must be valid JSON (checkJSON), into
// nodes.
func readDocument(data []byte) (node, error) {
	r := docReader{data: data}
	r.space()
	n := r.value()
	return n, r.err
}

// docReader walks a document already known to be valid JSON, so it checks
// its syntax no more.
type docReader struct {
	data []byte
	i    int
	err  error // the first string that did not decode
}

func (r *docReader) space() {
	for r.i < len(r.data) {
		switch r.data[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

func (r *docReader) value() node {
	n := node{kind: r.data[r.i], start: r.i}
	switch n.kind {
	case '{':
		r.i++
		r.space()
		for r.data[r.i] != '}' {
			name := r.string()
			r.space()
			r.i++ // :
			r.space()
			v := r.value()
			n.setMember(name, v)
			r.space()
			if r.data[r.i] == ',' {
				r.i++
				r.space()
			}
		}
		r.i++
	case '[':
		r.i++
		r.space()
		for r.data[r.i] != ']' {
			n.items = append(n.items, r.value())
			r.space()
			if r.data[r.i] == ',' {
				r.i++
				r.space()
			}
		}
		r.i++
	case '"':
		n.text = r.string()
	default: // true, false, null, a number: up to the next delimiter
		for r.i < len(r.data) && !isDelimiter(r.data[r.i]) {
			r.i++
		}
		n.text = string(r.data[n.start:r.i])
	}
	n.end = r.i
	return n
}

func (n *node) setMember(name string, v node) {
	for i := range n.members {
		if n.members[i].name == name {
			n.members[i].value = v
			return
		}
	}
	n.members = append(n.members, member{name, v})
}

// string reads a string and returns its value.
func (r *docReader) string() string {
	start := r.i
	for r.i++; ; r.i++ {
		r.i += bytes.IndexByte(r.data[r.i:], '"')
		escapes := 0
		for k := r.i - 1; r.data[k] == '\\'; k-- {
			escapes++
		}
		if escapes%2 == 0 {
			break // not an escaped quote
		}
	}
	r.i++
	raw := r.data[start:r.i]
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1])
	}
	// Escapes, or bytes that are not UTF-8 (replaced with U+FFFD):
	// encoding/json decodes them as AWS's parser does.
	var s string
	if err := json.Unmarshal(raw, &s); err != nil && r.err == nil {
		r.err = fmt.Errorf("the string at byte %d: %w", start, err)
	}
	return s
}

func isDelimiter(b byte) bool {
	switch b {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}
