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

// The policy language versions (IAM User Guide, "IAM JSON policy elements:
// Version"). A policy without Version is read as VersionOld.
const (
	VersionCurrent = "2012-10-17"
	VersionOld     = "2008-10-17"
)

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
	raw      []byte
	spans    [][2]int
	listSpan [2]int
	hasList  bool
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
	// multiValued: key is multivalued (multiValuedKeys), so a condition
	// without ForAnyValue:/ForAllValues: does not match it.
	multiValued bool
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
	doc, err := readDocument(data)
	if err != nil {
		return nil, err
	}
	if doc.kind != '{' {
		return nil, errors.New("policy document must be a JSON object")
	}
	p := &Policy{raw: append([]byte(nil), data...)}
	var stmts *node
	for i := range doc.members {
		k, v := doc.members[i].name, &doc.members[i].value
		var err error
		switch k {
		case "Version":
			if p.Version, err = stringValue(v, data); err == nil && p.Version != VersionCurrent && p.Version != VersionOld {
				err = fmt.Errorf("%q is not a policy language version (2012-10-17 or 2008-10-17)", p.Version)
			}
		case "Id":
			p.ID, err = stringValue(v, data)
		case "Statement":
			stmts = v
		default:
			return nil, fmt.Errorf("unknown policy element %q", k)
		}
		if err != nil {
			return nil, fmt.Errorf("policy element %q: %w", k, err)
		}
	}
	if stmts == nil {
		return nil, errors.New("policy has no Statement")
	}
	p.listSpan = [2]int{stmts.start, stmts.end}
	var list []node
	switch stmts.kind {
	case '{':
		p.singleStatement = true
		list = []node{*stmts}
	case '[':
		p.hasList = true
		list = stmts.items
	default:
		return nil, errors.New("Statement must be an object or a list of objects")
	}
	for i := range list {
		s, err := parseStatement(&list[i], data)
		if err != nil {
			return nil, fmt.Errorf("statement %d: %w", i, err)
		}
		p.Statements = append(p.Statements, s)
		p.spans = append(p.spans, [2]int{list[i].start, list[i].end})
	}
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
		// The document is valid; what follows it is not.
		off := int(d.InputOffset())
		off += len(data[off:]) - len(bytes.TrimLeft(data[off:], " \t\r\n"))
		line, col := lineCol(data, off)
		return &SyntaxError{Line: line, Column: col, Msg: "unexpected data after the document"}
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

func parseStatement(n *node, doc []byte) (Statement, error) {
	var s Statement
	if n.kind != '{' {
		return s, errors.New("must be a JSON object")
	}
	var hasAction, hasResource bool
	for i := range n.members {
		k, v := n.members[i].name, &n.members[i].value
		var err error
		switch k {
		case "Sid":
			s.Sid, err = stringValue(v, doc)
		case "Effect":
			var e string
			if e, err = stringValue(v, doc); err == nil {
				if e != string(Allow) && e != string(Deny) {
					return s, fmt.Errorf("Effect %q must be \"Allow\" or \"Deny\"", e)
				}
				s.Effect = Effect(e)
			}
		case "Principal":
			s.Principal, err = parsePrincipal(v, doc)
		case "NotPrincipal":
			s.NotPrincipal, err = parsePrincipal(v, doc)
		case "Action", "NotAction":
			if hasAction {
				return s, errors.New("has both Action and NotAction")
			}
			hasAction, s.NotAction = true, k == "NotAction"
			s.Action, err = parseValues(v, doc)
		case "Resource", "NotResource":
			if hasResource {
				return s, errors.New("has both Resource and NotResource")
			}
			hasResource, s.NotResource = true, k == "NotResource"
			s.Resource, err = parseValues(v, doc)
		case "Condition":
			s.Conditions, err = parseConditions(v, doc)
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

// stringValue reads an element that must be a string (null reads as "").
func stringValue(n *node, doc []byte) (string, error) {
	switch n.kind {
	case '"':
		return n.text, nil
	case 'n':
		return "", nil
	}
	return "", fmt.Errorf("want a string, got %s", n.source(doc))
}

// parseValues reads a string, or a list of strings (booleans and numbers are
// accepted and kept as their JSON text, as AWS does for condition values).
func parseValues(n *node, doc []byte) (Values, error) {
	if n.kind != '[' {
		s, err := scalar(n, doc)
		if err != nil {
			return Values{}, err
		}
		return Values{Items: []string{s}}, nil
	}
	out := Values{Items: make([]string, 0, len(n.items)), List: true}
	for i := range n.items {
		s, err := scalar(&n.items[i], doc)
		if err != nil {
			return Values{}, err
		}
		out.Items = append(out.Items, s)
	}
	return out, nil
}

func scalar(n *node, doc []byte) (string, error) {
	switch n.kind {
	case '{', '[', 'n':
		return "", fmt.Errorf("want a string or a list of strings, got %s", n.source(doc))
	}
	return n.text, nil // a string, or the literal of a boolean or a number
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func parsePrincipal(n *node, doc []byte) (*Principal, error) {
	switch n.kind {
	case '"':
		if n.text != "*" {
			return nil, fmt.Errorf("%q: a string principal must be \"*\"; use {\"AWS\": ...}", n.text)
		}
		return &Principal{Any: true}, nil
	case '{', 'n':
	default:
		return nil, errors.New(`must be "*" or an object such as {"AWS": ...}`)
	}
	p := &Principal{}
	for i := range n.members {
		k := n.members[i].name
		vals, err := parseValues(&n.members[i].value, doc)
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

func parseConditions(n *node, doc []byte) ([]Condition, error) {
	errShape := errors.New("must be an object of operator → {key: values}")
	if n.kind != '{' && !n.isNull() {
		return nil, errShape
	}
	var out []Condition
	for i := range n.members {
		opName, keys := n.members[i].name, &n.members[i].value
		if keys.kind != '{' && !keys.isNull() {
			return nil, errShape
		}
		op, set, ifExists, err := parseOperator(opName)
		if err != nil {
			return nil, err
		}
		for j := range keys.members {
			key := keys.members[j].name
			vals, err := parseValues(&keys.members[j].value, doc)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", opName, key, err)
			}
			c := Condition{Operator: opName, Values: vals, op: op, set: set, ifExists: ifExists}
			c.setKey(key)
			if err := c.validate(); err != nil {
				return nil, fmt.Errorf("%s %s: %w", opName, key, err)
			}
			out = append(out, c)
		}
	}
	sortConditions(out)
	return out, nil
}

// setKey sets the condition's key, as written, and what follows from it:
// the key lower-cased, and whether it is multivalued. Parsing and the
// planner's statements build conditions with it.
func (c *Condition) setKey(key string) {
	c.Key, c.key = key, strings.ToLower(key)
	c.multiValued = multiValuedKeys[c.key]
}

// sortConditions orders conditions by operator and key, so that the
// output of Marshal does not depend on the order a document gives, and a
// statement amigate builds renders as it reads back.
func sortConditions(cs []Condition) {
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Operator != cs[j].Operator {
			return cs[i].Operator < cs[j].Operator
		}
		return cs[i].Key < cs[j].Key
	})
}

// ValidateKeyPolicy checks what KMS requires of a key policy beyond the
// policy grammar: every statement names who it applies to with Principal or
// NotPrincipal (AWS KMS Developer Guide, "Key policies": Principal is
// required). KMS refuses a key policy without one
// (MalformedPolicyDocumentException); such a statement applies to no one,
// so it can never be what lets a target use the key.
func ValidateKeyPolicy(p *Policy) error {
	for i := range p.Statements {
		s := &p.Statements[i]
		switch {
		case s.Principal == nil && s.NotPrincipal == nil:
			return fmt.Errorf("statement %s has neither Principal nor NotPrincipal: KMS refuses such a key policy (MalformedPolicyDocumentException), and it applies to no one", s.name(i))
		case s.Principal != nil && s.Principal.empty(), s.NotPrincipal != nil && s.NotPrincipal.empty():
			return fmt.Errorf("statement %s names no principal in its Principal or NotPrincipal: KMS refuses such a key policy (MalformedPolicyDocumentException)", s.name(i))
		}
	}
	return nil
}

// name is the statement as an error message names it: its Sid and its
// position, or its position alone.
func (s *Statement) name(index int) string {
	if s.Sid != "" {
		return fmt.Sprintf("%q (#%d)", s.Sid, index)
	}
	return fmt.Sprintf("#%d", index)
}

func (p *Principal) empty() bool {
	return !p.Any && len(p.AWS.Items)+len(p.Service.Items)+len(p.Federated.Items)+len(p.CanonicalUser.Items) == 0
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
			for first := i; i < len(s.Conditions) && s.Conditions[i].Operator == op; i++ {
				if i > first {
					b.WriteString(",")
				}
				writeString(b, s.Conditions[i].Key)
				b.WriteString(":")
				s.Conditions[i].Values.marshalTo(b)
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
