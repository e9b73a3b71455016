package keypolicy

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// operator is a condition operator's base comparison; negated operators
// (StringNotEquals, NotIpAddress, ...) share their positive form's compare.
type operator struct {
	name    string
	kind    opKind
	negated bool
}

type opKind int

const (
	opStringEquals opKind = iota
	opStringEqualsIgnoreCase
	opStringLike
	opNumericEquals
	opNumericLessThan
	opNumericLessThanEquals
	opNumericGreaterThan
	opNumericGreaterThanEquals
	opDateEquals
	opDateLessThan
	opDateLessThanEquals
	opDateGreaterThan
	opDateGreaterThanEquals
	opBool
	opBinaryEquals
	opIPAddress
	opArnLike
	opNull
)

type setQualifier int

const (
	setNone setQualifier = iota
	setAnyValue
	setAllValues
)

// operators lists every documented condition operator (IAM User Guide,
// "IAM JSON policy elements: Condition operators"). Lookup is
// case-insensitive.
var operators = map[string]operator{}

func init() {
	for _, o := range []operator{
		{"StringEquals", opStringEquals, false},
		{"StringNotEquals", opStringEquals, true},
		{"StringEqualsIgnoreCase", opStringEqualsIgnoreCase, false},
		{"StringNotEqualsIgnoreCase", opStringEqualsIgnoreCase, true},
		{"StringLike", opStringLike, false},
		{"StringNotLike", opStringLike, true},
		{"NumericEquals", opNumericEquals, false},
		{"NumericNotEquals", opNumericEquals, true},
		{"NumericLessThan", opNumericLessThan, false},
		{"NumericLessThanEquals", opNumericLessThanEquals, false},
		{"NumericGreaterThan", opNumericGreaterThan, false},
		{"NumericGreaterThanEquals", opNumericGreaterThanEquals, false},
		{"DateEquals", opDateEquals, false},
		{"DateNotEquals", opDateEquals, true},
		{"DateLessThan", opDateLessThan, false},
		{"DateLessThanEquals", opDateLessThanEquals, false},
		{"DateGreaterThan", opDateGreaterThan, false},
		{"DateGreaterThanEquals", opDateGreaterThanEquals, false},
		{"Bool", opBool, false},
		{"BinaryEquals", opBinaryEquals, false},
		{"IpAddress", opIPAddress, false},
		{"NotIpAddress", opIPAddress, true},
		{"ArnEquals", opArnLike, false},
		{"ArnLike", opArnLike, false},
		{"ArnNotEquals", opArnLike, true},
		{"ArnNotLike", opArnLike, true},
		{"Null", opNull, false},
	} {
		operators[strings.ToLower(o.name)] = o
	}
}

func parseOperator(name string) (operator, setQualifier, bool, error) {
	rest := name
	set := setNone
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		switch strings.ToLower(rest[:i]) {
		case "foranyvalue":
			set = setAnyValue
		case "forallvalues":
			set = setAllValues
		default:
			return operator{}, 0, false, fmt.Errorf("unknown condition qualifier %q in %q (want ForAnyValue: or ForAllValues:)", rest[:i], name)
		}
		rest = rest[i+1:]
	}
	lower := strings.ToLower(rest)
	if o, ok := operators[lower]; ok {
		return o, set, false, nil
	}
	if base, ok := strings.CutSuffix(lower, "ifexists"); ok {
		if o, ok := operators[base]; ok && o.kind != opNull {
			return o, set, true, nil
		}
	}
	return operator{}, 0, false, fmt.Errorf("unknown condition operator %q", name)
}

// validate checks the policy values once, at parse time, so evaluation never
// meets a malformed literal.
func (c *Condition) validate() error {
	for _, v := range c.Values.Items {
		if hasVariable(v) && c.op.kind != opStringEquals && c.op.kind != opStringEqualsIgnoreCase &&
			c.op.kind != opStringLike && c.op.kind != opArnLike {
			continue
		}
		var err error
		switch c.op.kind {
		case opNumericEquals, opNumericLessThan, opNumericLessThanEquals, opNumericGreaterThan, opNumericGreaterThanEquals:
			_, err = strconv.ParseFloat(v, 64)
		case opDateEquals, opDateLessThan, opDateLessThanEquals, opDateGreaterThan, opDateGreaterThanEquals:
			_, err = parseDate(v)
		case opBool, opNull:
			if !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
				err = fmt.Errorf("%q is not true or false", v)
			}
		case opBinaryEquals:
			_, err = base64.StdEncoding.DecodeString(v)
		case opIPAddress:
			_, err = parseCIDR(v)
		}
		if err != nil {
			return fmt.Errorf("bad value %q: %w", v, err)
		}
	}
	return nil
}

// conditionResult is the outcome of one condition.
type conditionResult int

const (
	condFalse conditionResult = iota
	condTrue
	// condUndecided: the outcome depends on a value the request's
	// Undecidable names, directly or through a policy variable.
	condUndecided
)

func (r conditionResult) not() conditionResult {
	switch r {
	case condTrue:
		return condFalse
	case condFalse:
		return condTrue
	}
	return r
}

// Sentinels a policy value is replaced with once its policy variables are
// resolved: nullValue for a variable the request does not carry, which
// matches nothing; undecidedValue for one whose key is undecidable, which
// may match or not.
const (
	nullValue      = "\uE003"
	undecidedValue = "\uE004"
)

// eval evaluates the condition against the request context (keys
// lower-cased). Missing keys follow AWS: false, except for ...IfExists,
// ForAllValues: and negated operators, which are true; an empty set of
// values is no value (IAM User Guide, "Single-valued vs. multivalued
// context keys": ForAllValues: true, ForAnyValue: false). A key the
// request's Undecidable names is evaluated for every value it may take.
// Variables the request does not carry are added to r.Unknown (r may be
// nil). When the result is condUndecided, the Undecided (its Statement
// unset) says why.
func (c *Condition) eval(ctx map[string][]string, sc *scope, r *Result) (conditionResult, Undecided) {
	if sc.und != nil {
		if vals, ok := sc.und.Values(c.key); ok {
			return c.evalUndecidable(vals, ctx, sc, r)
		}
	}
	vals := ctx[c.key]
	return c.evalValues(vals, len(vals) > 0, false, ctx, sc, r)
}

// evalUndecidable evaluates the condition on an undecidable key that may
// take any of vals (nil: any value, or none): decided only when it comes
// out the same for each. Undecided, it is so because of the key, even
// where a value's case or a variable leaves one of them open too: writing
// those otherwise would not decide it.
func (c *Condition) evalUndecidable(vals []string, ctx map[string][]string, sc *scope, r *Result) (conditionResult, Undecided) {
	byKey := Undecided{Reason: UndecidedByKey, Key: c.Key}
	if vals == nil {
		return condUndecided, byKey
	}
	if c.op.kind == opNull {
		// The key is present: only how a value is written can leave it
		// open.
		return c.evalValues(nil, true, false, ctx, sc, r)
	}
	res := condUndecided
	for i := range vals {
		got, _ := c.evalValues(vals[i:i+1], true, strings.Contains(vals[i], "*"), ctx, sc, r)
		switch {
		case got == condUndecided:
			return condUndecided, byKey
		case i == 0:
			res = got
		case got != res:
			return condUndecided, byKey
		}
	}
	return res, byKey
}

// evalValues evaluates the condition on the request's values for its key;
// pattern says they are patterns in which '*' stands for any text (the
// values an undecidable key may take).
func (c *Condition) evalValues(vals []string, present, pattern bool, ctx map[string][]string, sc *scope, r *Result) (conditionResult, Undecided) {
	if c.op.kind == opNull {
		res := condFalse
		for _, want := range c.Values.Items {
			if strings.EqualFold(want, "true") == !present {
				if !lowerBool(want) {
					res = condUndecided
					continue
				}
				return condTrue, Undecided{}
			}
		}
		return res, c.undecided(UndecidedByBoolCase, "")
	}
	if !present {
		// ForAnyValue: over no values is false even with ...IfExists: AWS
		// applies IfExists to each value inside the set test.
		if c.set == setAnyValue {
			return condFalse, Undecided{}
		}
		if c.ifExists || c.set == setAllValues || (c.op.negated && c.set == setNone) {
			return condTrue, Undecided{}
		}
		return condFalse, Undecided{}
	}
	// A multivalued key needs ForAnyValue: or ForAllValues: (see
	// multiValuedKeys); what AWS makes of a condition without one is not
	// documented, so it is undecided: an Allow on it does not count, a
	// Deny on it does.
	if c.set == setNone && c.multiValued {
		return condUndecided, c.undecided(UndecidedByNoSetOperator, "")
	}
	policy, variable := c.Values.Items, ""
	if sc.variables {
		policy, variable = c.resolve(ctx, sc, r)
	}
	var why UndecidedReason // of the first undecided value
	switch c.set {
	case setAllValues:
		res := condTrue
		for _, rv := range vals {
			switch m, w := c.satisfied(rv, pattern, policy); m {
			case condFalse:
				return condFalse, Undecided{}
			case condUndecided:
				res = condUndecided
				why = cmp.Or(why, w)
			}
		}
		return res, c.undecided(why, variable)
	case setAnyValue:
		res := condFalse
		for _, rv := range vals {
			switch m, w := c.satisfied(rv, pattern, policy); m {
			case condTrue:
				return condTrue, Undecided{}
			case condUndecided:
				res = condUndecided
				why = cmp.Or(why, w)
			}
		}
		return res, c.undecided(why, variable)
	default:
		// Several values for a key AWS documents as single-valued (no
		// request carries them): the operator matches when any value
		// matches, its negation when none does.
		res := condFalse
		for _, rv := range vals {
			if m, w := c.matchOne(rv, pattern, policy); m == condTrue {
				res, why = condTrue, 0
				break
			} else if m == condUndecided {
				res = condUndecided
				why = cmp.Or(why, w)
			}
		}
		if c.op.negated {
			res = res.not()
		}
		return res, c.undecided(why, variable)
	}
}

// undecided is what leaves the condition undecided for the reason: it
// names the undecidable variable (of the condition's values) or the
// condition's key. With no reason (a decided result), it is empty.
func (c *Condition) undecided(reason UndecidedReason, variable string) Undecided {
	switch reason {
	case 0:
		return Undecided{}
	case UndecidedByVariable:
		return Undecided{Reason: reason, Key: variable}
	}
	return Undecided{Reason: reason, Key: c.Key}
}

// satisfied reports whether one request value satisfies the operator: for
// a negated operator, when it matches none of the policy values.
func (c *Condition) satisfied(rv string, pattern bool, policy []string) (conditionResult, UndecidedReason) {
	m, why := c.matchOne(rv, pattern, policy)
	if c.op.negated {
		return m.not(), why
	}
	return m, why
}

// matchOne reports whether a request value matches any of the policy
// values under the operator's positive form; undecided, it says why: a
// policy value whose variable is undecidable, a request value given as a
// pattern (its key is undecidable), or a Bool value not in lower case.
func (c *Condition) matchOne(rv string, pattern bool, policy []string) (conditionResult, UndecidedReason) {
	res, why := condFalse, UndecidedReason(0)
	for _, pv := range policy {
		var m conditionResult
		var w UndecidedReason
		switch {
		case pv == undecidedValue:
			m, w = condUndecided, UndecidedByVariable
		case pattern:
			m, w = comparePattern(c.op.kind, rv, pv), UndecidedByKey
		case compare(c.op.kind, rv, pv):
			m = condTrue
			if c.op.kind == opBool && !lowerBool(pv) {
				m, w = condUndecided, UndecidedByBoolCase
			}
		}
		if m == condTrue {
			return condTrue, 0
		}
		if m == condUndecided && res != condUndecided {
			res, why = condUndecided, w
		}
	}
	return res, why
}

// lowerBool reports whether a Bool or Null value is written "true" or
// "false". AWS writes the values it compares in lower case and does not
// say whether Bool (or Null) ignores case (IAM User Guide, "IAM JSON
// policy elements: Condition operators", Boolean condition operators), so
// a value such as "True" that matches only when case is ignored leaves
// the condition undecided.
func lowerBool(v string) bool { return v == "true" || v == "false" }

// multiValuedKeys are the condition keys whose request value is a set
// (IAM User Guide, "AWS global condition context keys", Value type
// "Multivalued"; Service Authorization Reference, AWS KMS, type
// "ArrayOfString"), lower-cased. AWS says a multivalued key requires a
// set operator (IAM User Guide, "Single-valued vs. multivalued context
// keys"); a condition on one without ForAnyValue: or ForAllValues: does
// not match when the key is present, whether the operator is negated or
// not. @cloud-copilot/iam-simulate evaluates it so, a reading its authors
// confirmed with AWS IAM. A missing key follows the missing-key rules.
var multiValuedKeys = map[string]bool{
	"aws:principalorgpaths":         true,
	"aws:resourceorgpaths":          true,
	"aws:sourceorgpaths":            true,
	"aws:tagkeys":                   true,
	"aws:calledvia":                 true,
	"aws:principalservicenameslist": true,
	"kms:grantoperations":           true,
	"kms:encryptioncontextkeys":     true,
	"kms:resourcealiases":           true,
}

// IsMultiValued reports whether the condition key (any case) is
// multivalued: its request value is a set (see multiValuedKeys).
func IsMultiValued(key string) bool { return multiValuedKeys[strings.ToLower(key)] }

// resolve substitutes policy variables in the condition's values; only the
// string and ARN operators take variables. A value whose variable the
// request does not carry becomes nullValue (and the variable goes to
// r.Unknown), one whose variable is undecidable undecidedValue; the first
// such variable is returned too.
func (c *Condition) resolve(ctx map[string][]string, sc *scope, r *Result) (policy []string, undecidedVariable string) {
	switch c.op.kind {
	case opStringEquals, opStringEqualsIgnoreCase, opStringLike, opArnLike:
	default:
		return c.Values.Items, ""
	}
	var out []string
	for i, v := range c.Values.Items {
		if !hasVariable(v) {
			continue
		}
		if out == nil {
			out = append([]string(nil), c.Values.Items...)
		}
		sub, missing, undecided := substitute(v, ctx, sc.und, c.op.kind == opStringLike || c.op.kind == opArnLike)
		switch {
		case undecided != "":
			out[i] = undecidedValue
			if undecidedVariable == "" {
				undecidedVariable = undecided
			}
		case missing != "":
			out[i] = nullValue
			r.addUnknown(missing)
		default:
			out[i] = sub
		}
	}
	if out == nil {
		return c.Values.Items, ""
	}
	return out, undecidedVariable
}

// comparePattern compares a request value given as a pattern q, in which
// '*' stands for any text, with a policy value: condTrue when every value
// q stands for matches, condFalse when none does, else condUndecided.
func comparePattern(kind opKind, q, pv string) conditionResult {
	if pv == nullValue {
		return condFalse
	}
	switch kind {
	case opStringEquals:
		if wildcardMatch(q, pv) {
			return condUndecided
		}
		return condFalse
	case opStringEqualsIgnoreCase:
		if wildcardMatch(strings.ToLower(q), strings.ToLower(pv)) {
			return condUndecided
		}
		return condFalse
	case opStringLike:
		return globRelation(pv, q)
	case opArnLike:
		pp := strings.SplitN(pv, ":", 6)
		qp := strings.SplitN(q, ":", 6)
		if len(pp) != 6 || len(qp) != 6 {
			if pv == "*" {
				return condTrue
			}
			return condUndecided
		}
		res := condTrue
		for i := range pp {
			switch globRelation(pp[i], qp[i]) {
			case condFalse:
				return condFalse
			case condUndecided:
				res = condUndecided
			}
		}
		return res
	}
	return condUndecided
}

// globRelation relates a policy pattern p to a value pattern q: condTrue
// when p matches every value q stands for, condFalse when it matches none.
func globRelation(p, q string) conditionResult {
	switch {
	case globCovers(p, q):
		return condTrue
	case !globsMeet(p, q):
		return condFalse
	}
	return condUndecided
}

func compare(kind opKind, request, policy string) bool {
	switch kind {
	case opStringEquals:
		return request == policy
	case opStringEqualsIgnoreCase:
		return strings.EqualFold(request, policy)
	case opStringLike:
		return wildcardMatch(policy, request)
	case opNumericEquals, opNumericLessThan, opNumericLessThanEquals, opNumericGreaterThan, opNumericGreaterThanEquals:
		r, err1 := strconv.ParseFloat(request, 64)
		p, err2 := strconv.ParseFloat(policy, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		return ordered(kind-opNumericEquals, r < p, r == p)
	case opDateEquals, opDateLessThan, opDateLessThanEquals, opDateGreaterThan, opDateGreaterThanEquals:
		r, err1 := parseDate(request)
		p, err2 := parseDate(policy)
		if err1 != nil || err2 != nil {
			return false
		}
		return ordered(kind-opDateEquals, r.Before(p), r.Equal(p))
	case opBool:
		return strings.EqualFold(request, policy)
	case opBinaryEquals:
		r, err1 := base64.StdEncoding.DecodeString(request)
		p, err2 := base64.StdEncoding.DecodeString(policy)
		return err1 == nil && err2 == nil && bytes.Equal(r, p)
	case opIPAddress:
		ip, err := netip.ParseAddr(request)
		if err != nil {
			return false
		}
		pfx, err := parseCIDR(policy)
		return err == nil && pfx.Contains(ip.Unmap())
	case opArnLike:
		return arnLike(policy, request)
	}
	return false
}

// ordered maps the five ordered comparisons (equals, <, <=, >, >=), given as
// an offset from the Equals kind, to their truth.
func ordered(offset opKind, less, equal bool) bool {
	switch offset {
	case 0:
		return equal
	case 1:
		return less
	case 2:
		return less || equal
	case 3:
		return !less && !equal
	default:
		return !less
	}
}

func parseDate(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04Z07:00", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 date or epoch time", s)
}

func parseCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// arnLike matches an ARN against a pattern component by component: the
// first five colons separate partition, service, region and account, and
// '*' in one component does not cross into another.
func arnLike(pattern, arn string) bool {
	pp := strings.SplitN(pattern, ":", 6)
	ap := strings.SplitN(arn, ":", 6)
	if len(pp) != 6 || len(ap) != 6 {
		return pattern == "*"
	}
	for i := range pp {
		if !wildcardMatch(pp[i], ap[i]) {
			return false
		}
	}
	return true
}
