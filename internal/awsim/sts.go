package awsim

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// STS: who the caller is, and AssumeRole with the role's trust policy.

type callerIdentity struct {
	Account string `xml:"Account"`
	Arn     string `xml:"Arn"`
	UserID  string `xml:"UserId"`
}

func (s *Server) stsGetCallerIdentity(c caller, _ url.Values) (any, error) {
	id := c.account
	if c.roleARN != "" {
		id = "AROA" + strings.ToUpper(newID("", 8)) + ":" + c.arn[strings.LastIndexByte(c.arn, '/')+1:]
	}
	return struct {
		XMLName xml.Name `xml:"R"`
		callerIdentity
	}{callerIdentity: callerIdentity{Account: c.account, Arn: c.arn, UserID: id}}, nil
}

func (s *Server) stsAssumeRole(c caller, form url.Values) (any, error) {
	roleARN, err := required(form, "RoleArn")
	if err != nil {
		return nil, err
	}
	name, err := required(form, "RoleSessionName")
	if err != nil {
		return nil, err
	}
	r, ok := s.world.roles[roleARN]
	// A role of a SUSPENDED account cannot be assumed: the account is
	// unusable (the simulator's choice of answer, as for its own calls).
	if !ok || !trusts(r, c.account, form.Get("ExternalId")) || s.accountSuspended(r.account) {
		return nil, errorf(http.StatusForbidden, "AccessDenied", "User: %s is not authorized to perform: sts:AssumeRole on resource: %s", c.arn, roleARN)
	}
	akid := "ASIA" + strings.ToUpper(newID("", 8))
	sessARN := fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", r.account, r.name, name)
	expires := s.now().UTC().Add(time.Hour)
	s.world.sessions[akid] = &session{account: r.account, arn: sessARN, roleARN: r.arn, expires: expires}
	type creds struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string `xml:"SecretAccessKey"`
		SessionToken    string `xml:"SessionToken"`
		Expiration      string `xml:"Expiration"`
	}
	type assumed struct {
		AssumedRoleID string `xml:"AssumedRoleId"`
		Arn           string `xml:"Arn"`
	}
	return struct {
		XMLName         xml.Name `xml:"R"`
		Credentials     creds    `xml:"Credentials"`
		AssumedRoleUser assumed  `xml:"AssumedRoleUser"`
	}{
		Credentials:     creds{AccessKeyID: akid, SecretAccessKey: newID("", 20), SessionToken: newID("", 32), Expiration: expires.Format(time.RFC3339)},
		AssumedRoleUser: assumed{AssumedRoleID: "AROA" + strings.ToUpper(newID("", 8)) + ":" + name, Arn: sessARN},
	}, nil
}

// trusts reports whether the role's trust policy lets the account assume it:
// a statement allowing sts:AssumeRole to the account (its id, root ARN, a
// principal of it) or to "*", whose sts:ExternalId condition (StringEquals
// or StringLike, if any) the request's external id meets. Other conditions
// are not evaluated.
func trusts(r *role, account, externalID string) bool {
	var doc struct {
		Statement []struct {
			Effect    string
			Principal json.RawMessage
			Action    json.RawMessage
			Condition map[string]map[string]json.RawMessage
		}
	}
	if json.Unmarshal([]byte(r.trustPolicy), &doc) != nil {
		return false
	}
	for _, st := range doc.Statement {
		if st.Effect != "Allow" || !strings.Contains(string(st.Action), "sts:AssumeRole") {
			continue
		}
		p := string(st.Principal)
		if p == `"*"` || strings.Contains(p, `"`+account+`"`) || strings.Contains(p, ":"+account+":") || strings.Contains(p, `"AWS":"*"`) {
			if externalIDMatches(st.Condition, externalID) {
				return true
			}
		}
	}
	return false
}

func externalIDMatches(cond map[string]map[string]json.RawMessage, externalID string) bool {
	for op, keys := range cond {
		for k, raw := range keys {
			if !strings.EqualFold(k, "sts:ExternalId") {
				continue
			}
			var want []string
			if json.Unmarshal(raw, &want) != nil {
				var one string
				if json.Unmarshal(raw, &one) != nil {
					return false
				}
				want = []string{one}
			}
			if externalID == "" || !slices.ContainsFunc(want, func(w string) bool {
				return w == externalID || op == "StringLike" && globMatch(w, externalID, false)
			}) {
				return false
			}
		}
	}
	return true
}
