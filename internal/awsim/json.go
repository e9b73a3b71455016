package awsim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// The JSON 1.1 protocol (X-Amz-Target) of KMS, CloudTrail and Organizations.

// jsonTargets maps X-Amz-Target prefixes to services.
var jsonTargets = map[string]string{
	"TrentService":        "kms",
	"CloudTrail_20131101": "cloudtrail",
	"com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101": "cloudtrail",
	"AWSOrganizationsV20161128":                              "organizations",
}

// jsonOps are the JSON-protocol operations, by service.
var jsonOps = map[string]map[string]jsonOp{
	"kms":           kmsOps,
	"cloudtrail":    cloudTrailOps,
	"organizations": organizationsOps,
}

// jsonOp is an operation of a JSON-protocol service, and whether it
// changes state.
type jsonOp struct {
	mutating bool
	handle   func(s *Server, c caller, in map[string]json.RawMessage) (any, error)
}

func (s *Server) serveJSON(w http.ResponseWriter, r *http.Request, c caller) {
	target := r.Header.Get("X-Amz-Target")
	// The service prefix may itself contain dots (boto3 sends
	// com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents).
	i := strings.LastIndexByte(target, '.')
	prefix, action := target[:max(i, 0)], target[i+1:]
	service := jsonTargets[prefix]
	op, ok := jsonOps[service][action]
	if !ok {
		writeJSONError(w, errorf(http.StatusBadRequest, "UnknownOperationException", "unknown operation %s", target))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	in := map[string]json.RawMessage{}
	if err == nil && len(body) > 0 {
		// An operation without input may come with no body at all.
		err = json.Unmarshal(body, &in)
	}
	if err != nil {
		e := errorf(http.StatusBadRequest, "SerializationException", "the request body is not a JSON object")
		s.record(c, service, action, op.mutating, e)
		writeJSONError(w, e)
		return
	}
	if s.throttle(w, c, service, action, nil) {
		return
	}
	s.mu.Lock()
	out, err := op.handle(s, c, in)
	s.mu.Unlock()
	// A DryRun call checks and changes nothing.
	s.record(c, service, action, op.mutating && !dryRun(in), err)
	if err != nil {
		writeJSONError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

// dryRun reports whether a KMS request asks only to be checked (the
// DryRun parameter of CreateGrant and the cryptographic operations).
func dryRun(in map[string]json.RawMessage) bool {
	var v bool
	return json.Unmarshal(in["DryRun"], &v) == nil && v
}

func writeJSONError(w http.ResponseWriter, err error) {
	ae, ok := err.(*apiError)
	if !ok {
		ae = errorf(http.StatusInternalServerError, "KMSInternalException", "%v", err)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", ae.code)
	w.WriteHeader(ae.status)
	body := map[string]string{"__type": ae.code, "message": ae.message}
	if ae.reason != "" {
		body["Reason"] = ae.reason // Organizations' InvalidInputException and ConstraintViolationException
	}
	_ = json.NewEncoder(w).Encode(body)
}

// str reads a string parameter; required ones fail with ValidationException.
func str(in map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := in[name]
	if !ok {
		if required {
			return "", errorf(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", lowerFirst(name))
		}
		return "", nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", errorf(http.StatusBadRequest, "SerializationException", "%s must be a string", name)
	}
	if required && v == "" {
		return "", errorf(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value '' at '%s' failed to satisfy constraint: Member must have length greater than or equal to 1", lowerFirst(name))
	}
	return v, nil
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
