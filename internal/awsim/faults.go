package awsim

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"time"
)

// Faults are injected by POST /_sim/faults, globally or for one service.
type Faults struct {
	// Service limits the faults to one service ("kms", "ec2", ...); empty
	// means every service.
	Service      string  `json:"service,omitempty"`
	LatencyMS    int     `json:"latency_ms"`
	ThrottleRate float64 `json:"throttle_rate"`
	ErrorRate    float64 `json:"error_rate"`
	// GrantDelayMS is how long a new grant takes to become usable, as
	// KMS's eventual consistency does (up to about five minutes in AWS).
	GrantDelayMS int `json:"grant_delay_ms"`
	// TrailDelayMS is how long CloudTrail takes to deliver an event to
	// LookupEvents (minutes in AWS).
	TrailDelayMS int `json:"trail_delay_ms"`
}

// SetFaults replaces the faults of f.Service (or the global ones).
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults == nil {
		s.faults = map[string]Faults{}
	}
	s.faults[f.Service] = f
}

// faultsFor returns the faults that apply to a service.
func (s *Server) faultsFor(service string) Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.faults[service]; ok {
		return f
	}
	return s.faults[""]
}

// grantDelay is how long new grants take to become usable.
func (s *Server) grantDelay() time.Duration {
	f, ok := s.faults["kms"]
	if !ok {
		f = s.faults[""]
	}
	return time.Duration(f.GrantDelayMS) * time.Millisecond
}

// trailDelay is how long events take to show in LookupEvents; the caller
// holds s.mu.
func (s *Server) trailDelay() time.Duration {
	f, ok := s.faults["cloudtrail"]
	if !ok {
		f = s.faults[""]
	}
	return time.Duration(f.TrailDelayMS) * time.Millisecond
}

// injectFault applies latency, then maybe a throttling or internal error,
// in the service's own error shape. It reports whether the request was
// answered.
func (s *Server) injectFault(w http.ResponseWriter, c caller) bool {
	f := s.faultsFor(c.service)
	if f.LatencyMS > 0 {
		time.Sleep(time.Duration(f.LatencyMS) * time.Millisecond)
	}
	var err *apiError
	switch r := rand.Float64(); {
	case r < f.ThrottleRate:
		err = throttling(c.service)
	case r < f.ThrottleRate+f.ErrorRate:
		err = errorf(http.StatusInternalServerError, internalCode(c.service), "We encountered an internal error. Please try again.")
	default:
		return false
	}
	s.record(c, c.service, "", false, err)
	writeServiceError(w, c.service, err)
	return true
}

// throttling is the error a service answers a throttled call with (over
// its quota, or an injected fault), as AWS's SDKs recognise it as a
// throttle: EC2's RequestLimitExceeded (503), KMS's and CloudTrail's
// ThrottlingException (400), Organizations' TooManyRequestsException
// (400), STS's, IAM's and Auto Scaling's Throttling (400).
func throttling(service string) *apiError {
	switch service {
	case "ec2":
		return errorf(http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded.")
	case "kms":
		return errorf(http.StatusBadRequest, "ThrottlingException", "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.")
	case "cloudtrail":
		return errorf(http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
	case "organizations":
		return errorf(http.StatusBadRequest, "TooManyRequestsException", "You have sent too many requests in too short a period of time. The quota helps protect against denial-of-service attacks. Try again later.")
	default:
		return errorf(http.StatusBadRequest, "Throttling", "Rate exceeded")
	}
}

func internalCode(service string) string {
	switch service {
	case "ec2":
		return "InternalError"
	case "kms":
		return "KMSInternalException"
	case "cloudtrail":
		return "InternalServerError"
	case "organizations":
		return "ServiceException"
	default:
		return "InternalFailure"
	}
}

func writeServiceError(w http.ResponseWriter, service string, err error) {
	switch service {
	case "ec2":
		writeEC2Error(w, err)
	case "kms", "cloudtrail", "organizations":
		writeJSONError(w, err)
	default:
		writeQueryError(w, service, err)
	}
}

func (s *Server) serveFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil || f.ThrottleRate < 0 || f.ErrorRate < 0 || f.ThrottleRate+f.ErrorRate > 1 || f.LatencyMS < 0 || f.GrantDelayMS < 0 {
		http.Error(w, `want {"service": "", "latency_ms": 0, "throttle_rate": 0..1, "error_rate": 0..1, "grant_delay_ms": 0}`, http.StatusBadRequest)
		return
	}
	s.SetFaults(f)
	w.WriteHeader(http.StatusNoContent)
}
