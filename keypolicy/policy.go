package keypolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// MaxPolicySize is KMS's limit on a key policy document, in bytes.
const MaxPolicySize = 32 * 1024

// Effect of a statement.
type Effect string

// The two effects a statement can have.
const (
	Allow Effect = "Allow"
	Deny  Effect = "Deny"
)

// Policy is a parsed key (or identity) policy document.
type Policy struct {
	Version    string
	ID         string
	Statements []Statement

	// singleStatement records that Statement was written as an object.
	singleStatement bool
	// raw is the document as parsed; spans locate each statement in it, and
	// list the Statement value itself, so a patch can leave every byte of the
	// statements it does not own untouched.
	raw       []byte
	spans     [][2]int
	listSpan  [2]int
	hasList   bool
	hasFields []string
}

// Statement is one statement of a policy.
type Statement struct {
	Sid    string
	Effect Effect

	// Exactly one of Principal and NotPrincipal is set in a resource policy;
	// neither in an identity policy.
	Principal    *Principal
	NotPrincipal *Principal

	// Action or NotAction (Not* when NotAction is true), likewise Resource.
	Action      Values
	NotAction   bool
	Resource    Values
	NotResource bool

	Conditions []Condition

	// actions holds Action lower-cased: action names are case-insensitive.
	actions []string
}

// Values is a policy element that AWS accepts as a string or a list.
type Values struct {
	Items []string
	// List records that the element was written as a JSON list.
	List bool
}

func (v Values) present() bool { return v.Items != nil }

// Principal is the Principal or NotPrincipal element.
type Principal struct {
	// Any is the bare "*" form.
	Any           bool
	AWS           Values
	Service       Values
	Federated     Values
	CanonicalUser Values

	aws []awsPrincipal // AWS, parsed once
}

// Condition is one (operator, key, values) triple of a Condition block.
type Condition struct {
	// Operator is the operator as written, with its qualifiers, e.g.
	// "ForAllValues:StringEqualsIfExists".
	Operator string
	// Key is the condition key as written.
	Key    string
	Values Values

	op       operator
	set      setQualifier
	ifExists bool
	key      string // lower-cased: condition keys are case-insensitive
}

// SyntaxError is a policy document that is not valid JSON.
type SyntaxError struct {
	Line, Column int
	Msg          string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// Parse parses a policy document in any shape AWS accepts.
func Parse(data []byte) (*Policy, error) {
	if err := checkJSON(data); err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, errors.New("policy document must be a JSON object")
	}
	p := &Policy{raw: append([]byte(nil), data...)}
	for k, v := range top {
		switch k {
		case "Version":
			if err := json.Unmarshal(v, &p.Version); err != nil {
				return nil, errors.New(`policy element "Version" must be a string`)
			}
			if p.Version != "2012-10-17" && p.Version != "2008-10-17" {
				return nil, fmt.Errorf(`policy element "Version" is %q, not a policy language version (2012-10-17 or 2008-10-17)`, p.Version)
			}
		case "Id":
			if err := json.Unmarshal(v, &p.ID); err != nil {
				return nil, errors.New(`policy element "Id" must be a string`)
			}
		case "Statement":
		default:
			return nil, fmt.Errorf("unknown policy element %q", k)
		}
		p.hasFields = append(p.hasFields, k)
	}
	stmts, ok := top["Statement"]
	if !ok {
		return nil, errors.New("policy has no Statement")
	}
	raws, err := p.locateStatements(data)
	if err != nil {
		return nil, err
	}
	for i, raw := range raws {
		s, err := parseStatement(raw)
		if err != nil {
			return nil, fmt.Errorf("statement %d: %w", i, err)
		}
		p.Statements = append(p.Statements, s)
	}
	p.singleStatement = len(bytes.TrimSpace(stmts)) > 0 && bytes.TrimSpace(stmts)[0] == '{'
	return p, nil
}

// checkJSON reports a syntax error with its line and column.
func checkJSON(data []byte) error {
	if json.Valid(data) {
		return nil
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(data))
	err := d.Decode(&v)
	if err == nil {
		if _, tokErr := d.Token(); tokErr == nil {
			off := int(d.InputOffset())
			line, col := lineCol(data, off)
			return &SyntaxError{Line: line, Column: col, Msg: "unexpected data after the document"}
		}
		return nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// Offset counts the bytes read, the offending one included.
		line, col := lineCol(data, max(int(se.Offset)-1, 0))
		return &SyntaxError{Line: line, Column: col, Msg: se.Error()}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		line, col := lineCol(data, len(data))
		return &SyntaxError{Line: line, Column: col, Msg: "unexpected end of input"}
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

func lineCol(data []byte, off int) (int, int) {
	if off > len(data) {
		off = len(data)
	}
	line, col := 1, 1
	for _, b := range data[:off] {
		if b == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// locateStatements finds the Statement value and the span of each statement
// in the original text.
func (p *Policy) locateStatements(data []byte) ([]json.RawMessage, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	if _, err := d.Token(); err != nil { // {
		return nil, err
	}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return nil, err
		}
		if tok != "Statement" {
			continue
		}
		end := int(d.InputOffset())
		start := end - len(raw)
		p.listSpan = [2]int{start, end}
		switch raw[0] {
		case '{':
			p.spans = [][2]int{{start, end}}
			return []json.RawMessage{raw}, nil
		case '[':
			p.hasList = true
			return p.locateListElements(raw, start)
		default:
			return nil, errors.New("Statement must be an object or a list of objects")
		}
	}
	return nil, errors.New("policy has no Statement")
}

func (p *Policy) locateListElements(list json.RawMessage, base int) ([]json.RawMessage, error) {
	d := json.NewDecoder(bytes.NewReader(list))
	if _, err := d.Token(); err != nil { // [
		return nil, err
	}
	var out []json.RawMessage
	for d.More() {
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return nil, err
		}
		end := int(d.InputOffset())
		p.spans = append(p.spans, [2]int{base + end - len(raw), base + end})
		out = append(out, raw)
	}
	return out, nil
}

func parseStatement(raw json.RawMessage) (Statement, error) {
	var s Statement
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return s, errors.New("must be a JSON object")
	}
	var hasAction, hasResource bool
	for k, v := range fields {
		var err error
		switch k {
		case "Sid":
			err = json.Unmarshal(v, &s.Sid)
		case "Effect":
			var e string
			if err = json.Unmarshal(v, &e); err == nil {
				if e != string(Allow) && e != string(Deny) {
					return s, fmt.Errorf("Effect %q must be \"Allow\" or \"Deny\"", e)
				}
				s.Effect = Effect(e)
			}
		case "Principal":
			s.Principal, err = parsePrincipal(v)
		case "NotPrincipal":
			s.NotPrincipal, err = parsePrincipal(v)
		case "Action", "NotAction":
			if hasAction {
				return s, errors.New("has both Action and NotAction")
			}
			hasAction, s.NotAction = true, k == "NotAction"
			s.Action, err = parseValues(v)
		case "Resource", "NotResource":
			if hasResource {
				return s, errors.New("has both Resource and NotResource")
			}
			hasResource, s.NotResource = true, k == "NotResource"
			s.Resource, err = parseValues(v)
		case "Condition":
			s.Conditions, err = parseConditions(v)
		default:
			return s, fmt.Errorf("unknown statement element %q", k)
		}
		if err != nil {
			return s, fmt.Errorf("%s: %w", k, err)
		}
	}
	switch {
	case s.Effect == "":
		return s, errors.New("has no Effect")
	case !hasAction:
		return s, errors.New("has no Action or NotAction")
	case s.Principal != nil && s.NotPrincipal != nil:
		return s, errors.New("has both Principal and NotPrincipal")
	}
	if !hasResource {
		// KMS key policies require Resource; identity policies too. Missing
		// means the statement can match nothing, which is how we treat it.
		s.Resource = Values{Items: []string{}}
	}
	s.actions = make([]string, len(s.Action.Items))
	for i, a := range s.Action.Items {
		s.actions[i] = strings.ToLower(a)
	}
	return s, nil
}

// parseValues reads a string, or a list of strings (booleans and numbers are
// accepted and kept as their JSON text, as AWS does for condition values).
func parseValues(v json.RawMessage) (Values, error) {
	v = bytes.TrimSpace(v)
	if len(v) > 0 && v[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(v, &items); err != nil {
			return Values{}, err
		}
		out := Values{Items: make([]string, 0, len(items)), List: true}
		for _, it := range items {
			s, err := scalar(it)
			if err != nil {
				return Values{}, err
			}
			out.Items = append(out.Items, s)
		}
		return out, nil
	}
	s, err := scalar(v)
	if err != nil {
		return Values{}, err
	}
	return Values{Items: []string{s}}, nil
}

func scalar(v json.RawMessage) (string, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "", errors.New("empty value")
	}
	switch v[0] {
	case '"':
		var s string
		err := json.Unmarshal(v, &s)
		return s, err
	case 't', 'f':
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return "", err
		}
		if b {
			return "true", nil
		}
		return "false", nil
	case '{', '[', 'n':
		return "", fmt.Errorf("want a string or a list of strings, got %s", truncate(string(v), 40))
	default:
		var n json.Number
		if err := json.Unmarshal(v, &n); err != nil {
			return "", err
		}
		return n.String(), nil
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func parsePrincipal(v json.RawMessage) (*Principal, error) {
	v = bytes.TrimSpace(v)
	if len(v) > 0 && v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, err
		}
		if s != "*" {
			return nil, fmt.Errorf("%q: a string principal must be \"*\"; use {\"AWS\": ...}", s)
		}
		return &Principal{Any: true}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, errors.New(`must be "*" or an object such as {"AWS": ...}`)
	}
	p := &Principal{}
	for k, raw := range m {
		vals, err := parseValues(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		switch k {
		case "AWS":
			p.AWS = vals
		case "Service":
			p.Service = vals
		case "Federated":
			p.Federated = vals
		case "CanonicalUser":
			p.CanonicalUser = vals
		default:
			return nil, fmt.Errorf("unknown principal type %q", k)
		}
	}
	p.compile()
	return p, nil
}

func parseConditions(v json.RawMessage) ([]Condition, error) {
	var block map[string]map[string]json.RawMessage
	if err := json.Unmarshal(v, &block); err != nil {
		return nil, errors.New("must be an object of operator → {key: values}")
	}
	var out []Condition
	for opName, keys := range block {
		op, set, ifExists, err := parseOperator(opName)
		if err != nil {
			return nil, err
		}
		for key, raw := range keys {
			vals, err := parseValues(raw)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", opName, key, err)
			}
			c := Condition{Operator: opName, Key: key, Values: vals, op: op, set: set, ifExists: ifExists, key: strings.ToLower(key)}
			if err := c.validate(); err != nil {
				return nil, fmt.Errorf("%s %s: %w", opName, key, err)
			}
			out = append(out, c)
		}
	}
	// Map order is random; a stable order keeps marshal output stable.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Operator != out[j].Operator {
			return out[i].Operator < out[j].Operator
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}

// Label names a statement for people: its Sid, or its position.
func (s *Statement) Label(index int) string {
	if s.Sid != "" {
		return s.Sid
	}
	return fmt.Sprintf("#%d", index)
}

// Marshal renders the policy as indented JSON, in a canonical element order.
func (p *Policy) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{")
	if p.Version != "" {
		b.WriteString(`"Version":`)
		writeString(&b, p.Version)
		b.WriteString(",")
	}
	if p.ID != "" {
		b.WriteString(`"Id":`)
		writeString(&b, p.ID)
		b.WriteString(",")
	}
	b.WriteString(`"Statement":`)
	if p.singleStatement && len(p.Statements) == 1 {
		p.Statements[0].marshalTo(&b)
	} else {
		b.WriteString("[")
		for i := range p.Statements {
			if i > 0 {
				b.WriteString(",")
			}
			p.Statements[i].marshalTo(&b)
		}
		b.WriteString("]")
	}
	b.WriteString("}")
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return nil, fmt.Errorf("marshal policy: %w", err)
	}
	return out.Bytes(), nil
}

// MarshalJSON renders the statement compactly, in canonical element order.
func (s *Statement) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	s.marshalTo(&b)
	return b.Bytes(), nil
}

func (s *Statement) marshalTo(b *bytes.Buffer) {
	b.WriteString("{")
	if s.Sid != "" {
		b.WriteString(`"Sid":`)
		writeString(b, s.Sid)
		b.WriteString(",")
	}
	b.WriteString(`"Effect":`)
	writeString(b, string(s.Effect))
	if s.Principal != nil {
		b.WriteString(`,"Principal":`)
		s.Principal.marshalTo(b)
	}
	if s.NotPrincipal != nil {
		b.WriteString(`,"NotPrincipal":`)
		s.NotPrincipal.marshalTo(b)
	}
	if s.NotAction {
		b.WriteString(`,"NotAction":`)
	} else {
		b.WriteString(`,"Action":`)
	}
	s.Action.marshalTo(b)
	if s.Resource.present() && (len(s.Resource.Items) > 0 || s.Resource.List) {
		if s.NotResource {
			b.WriteString(`,"NotResource":`)
		} else {
			b.WriteString(`,"Resource":`)
		}
		s.Resource.marshalTo(b)
	}
	if len(s.Conditions) > 0 {
		b.WriteString(`,"Condition":{`)
		for i := 0; i < len(s.Conditions); {
			op := s.Conditions[i].Operator
			if i > 0 {
				b.WriteString(",")
			}
			writeString(b, op)
			b.WriteString(":{")
			for j := i; j < len(s.Conditions) && s.Conditions[j].Operator == op; j++ {
				if j > i {
					b.WriteString(",")
				}
				writeString(b, s.Conditions[j].Key)
				b.WriteString(":")
				s.Conditions[j].Values.marshalTo(b)
				i = j + 1
			}
			b.WriteString("}")
		}
		b.WriteString("}")
	}
	b.WriteString("}")
}

func (p *Principal) marshalTo(b *bytes.Buffer) {
	if p.Any {
		b.WriteString(`"*"`)
		return
	}
	b.WriteString("{")
	first := true
	for _, f := range []struct {
		name string
		v    Values
	}{{"AWS", p.AWS}, {"CanonicalUser", p.CanonicalUser}, {"Federated", p.Federated}, {"Service", p.Service}} {
		if !f.v.present() {
			continue
		}
		if !first {
			b.WriteString(",")
		}
		first = false
		writeString(b, f.name)
		b.WriteString(":")
		f.v.marshalTo(b)
	}
	b.WriteString("}")
}

func (v Values) marshalTo(b *bytes.Buffer) {
	if len(v.Items) == 1 && !v.List {
		writeString(b, v.Items[0])
		return
	}
	b.WriteString("[")
	for i, s := range v.Items {
		if i > 0 {
			b.WriteString(",")
		}
		writeString(b, s)
	}
	b.WriteString("]")
}

func writeString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a string always marshals
	b.Write(enc)
}
