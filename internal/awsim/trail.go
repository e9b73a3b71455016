package awsim

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// trailEvent is one CloudTrail management event.
type trailEvent struct {
	id, name, source, username, region string
	time                               time.Time
	resources                          []string
	document                           string // the CloudTrailEvent JSON
}

// recordKMSDenial records the AccessDenied KMS event AWS logs in the
// caller's account when EC2 (or Auto Scaling through EC2) cannot use a key
// for a launch, shaped like the one in the first reference write-up.
func (s *Server) recordKMSDenial(c caller, k *key, action, volumeID, invokedBy string) {
	name := strings.TrimPrefix(action, "kms:")
	identity := map[string]any{"type": "Root", "arn": c.arn, "accountId": c.account}
	username := "root"
	if c.roleARN != "" {
		sessionName := c.arn[strings.LastIndexByte(c.arn, '/')+1:]
		roleName := c.roleARN[strings.LastIndexByte(c.roleARN, '/')+1:]
		identity = map[string]any{
			"type": "AssumedRole", "principalId": "AROAEXAMPLE:" + sessionName, "arn": c.arn, "accountId": c.account,
			"sessionContext": map[string]any{"sessionIssuer": map[string]any{
				"type": "Role", "arn": c.roleARN, "accountId": c.account, "userName": roleName,
			}},
		}
		username = sessionName
	}
	if invokedBy == "" {
		invokedBy = "ec2.amazonaws.com"
	}
	identity["invokedBy"] = invokedBy
	params := map[string]any{"keyId": k.arn}
	if volumeID != "" && action != "kms:CreateGrant" {
		params["encryptionContext"] = map[string]string{"aws:ebs:id": volumeID}
	}
	id := newUUID()
	now := s.now().UTC()
	doc, _ := json.Marshal(map[string]any{
		"eventVersion": "1.08", "userIdentity": identity, "eventTime": now.Format(time.RFC3339), "eventSource": "kms.amazonaws.com",
		"eventName": name, "awsRegion": c.region, "sourceIPAddress": invokedBy, "userAgent": invokedBy,
		"errorCode":         "AccessDenied",
		"errorMessage":      "The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access.",
		"requestParameters": params, "eventID": id, "readOnly": true, "eventType": "AwsApiCall", "managementEvent": true,
		"recipientAccountId": c.account, "eventCategory": "Management",
		"resources": []map[string]string{{"accountId": k.account, "type": "AWS::KMS::Key", "ARN": k.arn}},
	})
	s.world.trail[c.account] = append(s.world.trail[c.account], trailEvent{
		id: id, name: name, source: "kms.amazonaws.com", username: username, region: c.region, time: now,
		resources: []string{k.arn}, document: string(doc),
	})
}

// cloudTrailLookupEvents answers LookupEvents: one lookup attribute at most,
// newest first, in the caller's account and region.
func (s *Server) cloudTrailLookupEvents(c caller, in map[string]json.RawMessage) (any, error) {
	if s.lookups == nil {
		s.lookups = map[string][]time.Time{}
	}
	now := s.now()
	// Two per second per account and Region.
	who := c.account + "/" + c.region
	recent := s.lookups[who][:0]
	for _, t := range s.lookups[who] {
		if now.Sub(t) < time.Second {
			recent = append(recent, t)
		}
	}
	if len(recent) >= 2 {
		s.lookups[who] = recent
		return nil, throttling("cloudtrail")
	}
	s.lookups[who] = append(recent, now)
	var attrs []struct{ AttributeKey, AttributeValue string }
	if raw, ok := in["LookupAttributes"]; ok {
		if err := json.Unmarshal(raw, &attrs); err != nil {
			return nil, errorf(http.StatusBadRequest, "SerializationException", "LookupAttributes has the wrong shape")
		}
	}
	if len(attrs) > 1 {
		return nil, errorf(http.StatusBadRequest, "InvalidLookupAttributesException", "You cannot specify more than one lookup attribute.")
	}
	var start, end float64
	if raw, ok := in["StartTime"]; ok {
		_ = json.Unmarshal(raw, &start)
	}
	if raw, ok := in["EndTime"]; ok {
		_ = json.Unmarshal(raw, &end)
	}
	events := []map[string]any{}
	list := s.world.trail[c.account]
	delivered := now.Add(-s.trailDelay())
	for i := len(list) - 1; i >= 0; i-- {
		e := list[i]
		t := epoch(e.time)
		if e.region != c.region || (start != 0 && t < start) || (end != 0 && t > end) || e.time.After(delivered) {
			continue
		}
		if len(attrs) == 1 && !e.matches(attrs[0].AttributeKey, attrs[0].AttributeValue) {
			continue
		}
		var res []map[string]string
		for _, r := range e.resources {
			res = append(res, map[string]string{"ResourceType": "AWS::KMS::Key", "ResourceName": r})
		}
		events = append(events, map[string]any{
			"EventId": e.id, "EventName": e.name, "ReadOnly": "true", "EventTime": t, "EventSource": e.source,
			"Username": e.username, "Resources": res, "CloudTrailEvent": e.document,
		})
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i]["EventTime"].(float64) > events[j]["EventTime"].(float64) })
	// Paging: NextToken is the index of the next event; MaxResults is 1-50.
	limit := 50
	if raw, ok := in["MaxResults"]; ok {
		if err := json.Unmarshal(raw, &limit); err != nil || limit < 1 || limit > 50 {
			return nil, errorf(http.StatusBadRequest, "InvalidMaxResultsException", "MaxResults must be between 1 and 50")
		}
	}
	first := 0
	if raw, ok := in["NextToken"]; ok {
		var tok string
		_ = json.Unmarshal(raw, &tok)
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(events) {
			return nil, errorf(http.StatusBadRequest, "InvalidNextTokenException", "Invalid NextToken")
		}
		first = n
	}
	out := map[string]any{"Events": events[first:min(first+limit, len(events))]}
	if first+limit < len(events) {
		out["NextToken"] = strconv.Itoa(first + limit)
	}
	return out, nil
}

func (e trailEvent) matches(key, value string) bool {
	switch key {
	case "EventName":
		return e.name == value
	case "EventSource":
		return e.source == value
	case "EventId":
		return e.id == value
	case "Username":
		return e.username == value
	case "ResourceName":
		for _, r := range e.resources {
			if r == value {
				return true
			}
		}
	}
	return false
}

var cloudTrailOps = map[string]jsonOp{
	"LookupEvents": {false, (*Server).cloudTrailLookupEvents},
}
