package awsim

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AWS's request quotas, as the simulator enforces them when they are
// switched on (SetQuotas, POST /_sim/quotas). Each quota is a token bucket
// per account and Region (per account alone for the global IAM and
// Organizations): a request takes a token or is throttled with the
// service's own error. The account charged is always the caller's, the
// account of the credentials that signed the request: KMS's "Request
// quotas" page says so of cross-account requests in as many words ("AWS
// KMS throttles the account that makes the requests, not the account that
// owns the KMS key"), EC2, STS and Auto Scaling count per calling account
// and Region, and no page says otherwise.
//
// This table is the simulator's reading of AWS's documents, written apart
// from the client's (internal/awsapi), so that a test can hold one against
// the other.

// Where each figure comes from.
const (
	sourceKMS   = `AWS KMS Developer Guide, "Request quotas"`
	sourceEC2   = `Amazon EC2 Developer Guide, "Request throttling for the Amazon EC2 API"`
	sourceSTS   = `IAM User Guide, "IAM and AWS STS quotas"`
	sourceTrail = `AWS CloudTrail API Reference, "LookupEvents"`
	// AWS publishes no figure for these; the simulator's is a choice.
	sourceIAM  = `not published; per-API token buckets (AWS Security Blog, "How to monitor and query IAM resources at scale – Part 2")`
	sourceASG  = `not published; one bucket for every Amazon EC2 Auto Scaling API (AWS Knowledge Center, "Why are my Amazon EC2 Auto Scaling API calls throttled?")`
	sourceOrgs = `not published (AWS Organizations User Guide, "Quotas for AWS Organizations", lists none)`
)

// QuotaRule is one request quota: the token bucket a call counts against.
type QuotaRule struct {
	// Service is the SigV4 signing name ("kms", "ec2", "sts", "iam",
	// "autoscaling", "cloudtrail", "organizations").
	Service string `json:"service"`
	// Action is the operation; EC2 also has pseudo-actions for the
	// second bucket some calls draw from: "DescribeSnapshots (unfiltered)"
	// (a call with neither a filter nor pagination) and
	// "RunInstances (instances)" (one token per instance).
	Action string `json:"action"`
	// Group names the bucket; actions of one group share it.
	Group string `json:"group"`
	// Rate is the refill rate (tokens per second), Burst the bucket's size.
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
	// Global: one bucket per account for every Region (IAM,
	// Organizations).
	Global bool `json:"global,omitempty"`
	// Published is false where AWS publishes no figure.
	Published bool   `json:"published"`
	Source    string `json:"source"`
}

// Suffixes of EC2's pseudo-actions (QuotaRule.Action).
const (
	// Unfiltered is the bucket of DescribeInstances, DescribeSnapshots,
	// DescribeVolumes, ... called with neither a filter nor pagination.
	Unfiltered = " (unfiltered)"
	// Instances is the resource bucket of RunInstances, StartInstances,
	// StopInstances and TerminateInstances: a token per instance.
	Instances = " (instances)"
)

type quota struct {
	rate      float64
	burst     int
	group     string // "" means the action itself
	published bool
}

// kmsQuotas: the per-second request quota of each operation. KMS counts
// requests per second; as a bucket that is a burst of one second's worth.
// The cryptographic operations share one quota, which varies by Region
// (5,500, 10,000 or more per second); the lowest is kept.
var kmsQuotas = map[string]quota{
	"CancelKeyDeletion":    {5, 5, "", true},
	"CreateAlias":          {5, 5, "", true},
	"CreateGrant":          {50, 50, "", true},
	"CreateKey":            {5, 5, "", true},
	"DeleteAlias":          {15, 15, "", true},
	"DescribeKey":          {2000, 2000, "", true},
	"DisableKey":           {5, 5, "", true},
	"EnableKey":            {5, 5, "", true},
	"GetKeyPolicy":         {1000, 1000, "", true},
	"GetKeyRotationStatus": {1000, 1000, "", true},
	"ListAliases":          {500, 500, "", true},
	"ListGrants":           {100, 100, "", true},
	"ListKeyPolicies":      {100, 100, "", true},
	"ListKeys":             {500, 500, "", true},
	"ListResourceTags":     {2000, 2000, "", true},
	"ListRetirableGrants":  {100, 100, "", true},
	"PutKeyPolicy":         {15, 15, "", true},
	"RetireGrant":          {30, 30, "", true},
	"RevokeGrant":          {30, 30, "", true},
	"ScheduleKeyDeletion":  {15, 15, "", true},
	"TagResource":          {10, 10, "", true},
	"UntagResource":        {5, 5, "", true},
	"UpdateAlias":          {5, 5, "", true},
	"UpdateKeyDescription": {5, 5, "", true},
}

// kmsCryptographic share "Cryptographic operations (symmetric) request
// rate".
var kmsCryptographic = []string{"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateMac", "GenerateRandom", "ReEncrypt", "VerifyMac"}

const kmsCryptoGroup = "cryptographic operations (symmetric)"

// ec2Quotas: EC2 gives each API action its own bucket, sized by its
// category (non-mutating 100/20 per second, mutating 50/5,
// resource-intensive 50/5) unless the action is listed with figures of
// its own ("uncategorized actions").
var ec2Quotas = map[string]quota{
	// Uncategorized actions the simulator serves.
	"CopyImage":                   {1, 100, "", true},
	"CreateLaunchTemplateVersion": {5, 100, "", true},
	"CreateSnapshot":              {5, 100, "", true},
	"CreateTags":                  {10, 100, "", true},
	"CreateVolume":                {5, 100, "", true},
	"DeleteSnapshot":              {5, 100, "", true},
	"DeleteTags":                  {10, 100, "", true},
	"DeleteVolume":                {5, 100, "", true},
	"DeregisterImage":             {5, 100, "", true},
	"ModifyImageAttribute":        {5, 100, "", true},
	"ModifyLaunchTemplate":        {5, 100, "", true},
	"ModifySnapshotAttribute":     {5, 100, "", true},
	"RunInstances":                {2, 5, "", true},
	"StartInstances":              {2, 5, "", true},
	"TerminateInstances":          {5, 100, "", true},
	// Resource-intensive actions.
	"AuthorizeSecurityGroupIngress": {5, 50, "", true},
	"CreateKeyPair":                 {5, 50, "", true},
	"RevokeSecurityGroupIngress":    {5, 50, "", true},
}

// ec2Unfiltered are the non-mutating actions that, called with neither a
// filter nor pagination, draw from a smaller bucket (50, 10 per second).
var ec2Unfiltered = map[string]bool{
	"DescribeInstances": true, "DescribeInstanceStatus": true, "DescribeNetworkInterfaces": true,
	"DescribeSecurityGroups": true, "DescribeSnapshots": true, "DescribeSpotInstanceRequests": true, "DescribeVolumes": true,
}

// ec2Instances are the resource buckets: tokens are instances.
var ec2Instances = map[string]quota{
	"RunInstances":       {2, 1000, "", true},
	"StartInstances":     {2, 1000, "", true},
	"StopInstances":      {20, 1000, "", true},
	"TerminateInstances": {20, 1000, "", true},
}

// ec2Category is the bucket of an action that is not listed: its
// category's, by the action's name.
func ec2Category(action string) quota {
	for _, p := range []string{"Describe", "Get", "List", "Search"} {
		if strings.HasPrefix(action, p) {
			return quota{20, 100, "", true}
		}
	}
	return quota{5, 50, "", true}
}

// The remaining services, each with a quota for every action unless listed.
var (
	// STS: 600 requests per second per account and Region, shared by
	// AssumeRole, GetCallerIdentity, GetSessionToken and the rest. The
	// burst is not published: one second's worth.
	stsQuota = quota{600, 600, "STS requests", true}
	// CloudTrail: LookupEvents two per second per account and Region.
	trailQuotas = map[string]quota{"LookupEvents": {2, 2, "", true}}
	// Auto Scaling: one bucket for every API per account and Region.
	asgQuota = quota{10, 20, "Auto Scaling API", false}
	// IAM (global): a bucket per API; reads faster than writes, and the
	// policy simulator slowest.
	iamQuotas = map[string]quota{"SimulatePrincipalPolicy": {5, 5, "", false}}
	iamRead   = quota{20, 20, "", false}
	iamWrite  = quota{10, 10, "", false}
	// Organizations (global): a bucket per API.
	orgsQuota = quota{5, 5, "", false}
)

// quotaOf returns the quota of a call, and whether there is one.
func quotaOf(service, action string) (q quota, global bool, source string, ok bool) {
	defer func() {
		if q.group == "" {
			q.group = action
		}
	}()
	switch service {
	case "kms":
		for _, a := range kmsCryptographic {
			if a == action {
				return quota{5500, 5500, kmsCryptoGroup, true}, false, sourceKMS, true
			}
		}
		if q, ok := kmsQuotas[action]; ok {
			return q, false, sourceKMS, true
		}
		// Most management operations are 5 per second.
		return quota{5, 5, "", true}, false, sourceKMS, true
	case "ec2":
		if base, ok := strings.CutSuffix(action, Unfiltered); ok && ec2Unfiltered[base] {
			return quota{10, 50, "", true}, false, sourceEC2, true
		}
		if base, ok := strings.CutSuffix(action, Instances); ok {
			q, ok := ec2Instances[base]
			return q, false, sourceEC2, ok
		}
		if q, ok := ec2Quotas[action]; ok {
			return q, false, sourceEC2, true
		}
		return ec2Category(action), false, sourceEC2, true
	case "sts":
		return stsQuota, false, sourceSTS, true
	case "cloudtrail":
		q, ok := trailQuotas[action]
		return q, false, sourceTrail, ok
	case "autoscaling":
		return asgQuota, false, sourceASG, true
	case "iam":
		if q, ok := iamQuotas[action]; ok {
			return q, true, sourceIAM, true
		}
		if strings.HasPrefix(action, "Get") || strings.HasPrefix(action, "List") {
			return iamRead, true, sourceIAM, true
		}
		return iamWrite, true, sourceIAM, true
	case "organizations":
		return orgsQuota, true, sourceOrgs, true
	}
	return quota{}, false, "", false
}

// Quota returns AWS's request quota of a call (unscaled): the bucket it
// draws from, the refill rate per second and the bucket's size. An EC2
// call with neither a filter nor pagination to an action listed as such
// also draws from action+Unfiltered, and a call that starts or stops
// instances from action+Instances, a token per instance. A rate of 0
// means no quota is modelled.
func Quota(service, action string) (group string, rate float64, burst int) {
	q, _, _, ok := quotaOf(service, action)
	if !ok {
		return "", 0, 0
	}
	return q.group, q.rate, q.burst
}

// QuotaTable lists the quotas of the operations the simulator serves (its
// operation tables) and of those the quota tables name, EC2's
// pseudo-actions included, sorted by service and action. Every operation
// amigate calls is served, so none is added by hand. The slice is a copy.
func QuotaTable() []QuotaRule {
	actions := map[string]map[string]bool{}
	add := func(service, action string) {
		if actions[service] == nil {
			actions[service] = map[string]bool{}
		}
		actions[service][action] = true
	}
	for service, ops := range jsonOps {
		for a := range ops {
			add(service, a)
		}
	}
	for a := range kmsQuotas {
		add("kms", a)
	}
	for _, a := range kmsCryptographic {
		add("kms", a)
	}
	for a := range ec2Ops {
		add("ec2", a)
	}
	for a := range ec2Quotas {
		add("ec2", a)
	}
	for a := range ec2Unfiltered {
		add("ec2", a)
		add("ec2", a+Unfiltered)
	}
	for a := range ec2Instances {
		add("ec2", a)
		add("ec2", a+Instances)
	}
	for service, ops := range queryOps {
		for a := range ops {
			add(service, a)
		}
	}
	var out []QuotaRule
	for service, set := range actions {
		for a := range set {
			q, global, source, ok := quotaOf(service, a)
			if !ok {
				continue
			}
			out = append(out, QuotaRule{Service: service, Action: a, Group: q.group, Rate: q.rate, Burst: q.burst,
				Global: global, Published: q.published, Source: source})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Action < out[j].Action
	})
	return out
}

// QuotaSettings switch the simulator's request quotas.
type QuotaSettings struct {
	Enabled bool `json:"enabled"`
	// Scale multiplies every rate and every bucket's size (at least one
	// token); 0 means 1. A test scales the quotas down to see at a few
	// calls what AWS does at many, in the same time.
	Scale float64 `json:"scale,omitempty"`
}

// quotaState is the buckets of a simulator with quotas on.
type quotaState struct {
	mu       sync.Mutex
	settings QuotaSettings
	buckets  map[bucketKey]*bucket
}

type bucketKey struct {
	service, group, account, region string
}

// bucket is a token bucket; it starts full.
type bucket struct {
	tokens float64
	last   time.Time
}

// SetQuotas switches AWS's request quotas on or off (they are off in a
// new simulator and after Reset) and empties the buckets' history: every
// bucket starts full.
func (s *Server) SetQuotas(q QuotaSettings) {
	if q.Scale <= 0 {
		q.Scale = 1
	}
	s.quotas.mu.Lock()
	defer s.quotas.mu.Unlock()
	s.quotas.settings = q
	s.quotas.buckets = nil
}

// Quotas returns the current quota settings.
func (s *Server) Quotas() QuotaSettings {
	s.quotas.mu.Lock()
	defer s.quotas.mu.Unlock()
	return s.quotas.settings
}

// draw is one bucket a request takes tokens from.
type draw struct {
	action string // the table's action: the operation or a pseudo-action
	tokens float64
}

// throttle takes the tokens a call needs, or answers it with the
// service's throttling error (recorded in the call log) and reports
// true. EC2's form tells the unfiltered and per-instance buckets apart.
func (s *Server) throttle(w http.ResponseWriter, c caller, service, action string, form url.Values) bool {
	s.quotas.mu.Lock()
	on, scale := s.quotas.settings.Enabled, s.quotas.settings.Scale
	s.quotas.mu.Unlock()
	if !on {
		return false
	}
	draws := []draw{{action, 1}}
	if service == "ec2" {
		if ec2Unfiltered[action] && unfiltered(form) {
			draws[0].action = action + Unfiltered
		}
		if _, ok := ec2Instances[action]; ok {
			n := float64(len(indexed(form, "InstanceId")))
			if action == "RunInstances" {
				n, _ = strconv.ParseFloat(form.Get("MaxCount"), 64)
			}
			draws = append(draws, draw{action + Instances, max(n, 1)})
		}
	}
	if s.take(c, service, draws, scale, time.Now()) {
		return false
	}
	err := throttling(service)
	s.record(c, service, action, false, err)
	writeServiceError(w, service, err)
	return true
}

// take takes every draw's tokens from its bucket at now, or none when one
// of them is short. Buckets refill by the wall clock, not the simulator's
// (Advance does not refill them).
func (s *Server) take(c caller, service string, draws []draw, scale float64, now time.Time) bool {
	s.quotas.mu.Lock()
	defer s.quotas.mu.Unlock()
	if s.quotas.buckets == nil {
		s.quotas.buckets = map[bucketKey]*bucket{}
	}
	type taking struct {
		b      *bucket
		tokens float64
	}
	var takes []taking
	for _, d := range draws {
		q, global, _, ok := quotaOf(service, d.action)
		if !ok {
			continue
		}
		rate, size := q.rate*scale, math.Max(1, math.Floor(float64(q.burst)*scale))
		k := bucketKey{service: service, group: q.group, account: c.account, region: c.region}
		if global {
			k.region = ""
		}
		b, ok := s.quotas.buckets[k]
		if !ok {
			b = &bucket{tokens: size, last: now}
			s.quotas.buckets[k] = b
		}
		b.tokens = math.Min(size, b.tokens+rate*now.Sub(b.last).Seconds())
		b.last = now
		n := min(d.tokens, size)
		if b.tokens < n {
			return false
		}
		takes = append(takes, taking{b, n})
	}
	for _, t := range takes {
		t.b.tokens -= t.tokens
	}
	return true
}

// unfiltered reports whether an EC2 Describe call names neither a filter
// nor a page: AWS then counts it against the smaller bucket.
func unfiltered(form url.Values) bool {
	if form.Get("MaxResults") != "" || form.Get("NextToken") != "" {
		return false
	}
	for k := range form {
		if strings.HasPrefix(k, "Filter.") {
			return false
		}
	}
	return true
}

// serveQuotas answers POST /_sim/quotas (settings) and GET /_sim/quotas
// (settings and table).
func (s *Server) serveQuotas(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "application/json")
		q := s.Quotas()
		if q.Scale == 0 {
			q.Scale = 1
		}
		_ = json.NewEncoder(w).Encode(struct {
			QuotaSettings
			Table []QuotaRule `json:"table"`
		}{q, QuotaTable()})
		return
	}
	var q QuotaSettings
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(&q); err != nil || q.Scale < 0 {
		http.Error(w, `want {"enabled": true, "scale": 1} (scale > 0, default 1)`, http.StatusBadRequest)
		return
	}
	s.SetQuotas(q)
	w.WriteHeader(http.StatusNoContent)
}
