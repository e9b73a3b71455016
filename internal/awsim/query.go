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

// queryOp is an operation of a query-protocol service, and whether it
// changes state.
type queryOp struct {
	mutating bool
	handle   func(s *Server, c caller, form url.Values) (any, error)
}

// queryOps are the awsQuery operations (STS, IAM, Auto Scaling), by service.
var queryOps = map[string]map[string]queryOp{
	"sts": {
		"GetCallerIdentity": {false, (*Server).stsGetCallerIdentity},
		"AssumeRole":        {false, (*Server).stsAssumeRole},
	},
	"iam": {
		"CreateRole":              {true, (*Server).iamCreateRole},
		"GetRole":                 {false, (*Server).iamGetRole},
		"PutRolePolicy":           {true, (*Server).iamPutRolePolicy},
		"DeleteRole":              {true, (*Server).iamDeleteRole},
		"SimulatePrincipalPolicy": {false, (*Server).iamSimulatePrincipalPolicy},
	},
}

var xmlns = map[string]string{
	"sts": "https://sts.amazonaws.com/doc/2011-06-15/",
	"iam": "https://iam.amazonaws.com/doc/2010-05-08/",
}

func (s *Server) serveQuery(w http.ResponseWriter, r *http.Request, c caller) {
	if err := r.ParseForm(); err != nil {
		writeQueryError(w, c.service, errorf(http.StatusBadRequest, "MalformedQueryString", "the request body is not a query string"))
		return
	}
	action := r.Form.Get("Action")
	if c.service == "ec2" {
		s.serveEC2(w, action, r.Form, c)
		return
	}
	op, ok := queryOps[c.service][action]
	if !ok {
		e := errorf(http.StatusBadRequest, "InvalidAction", "The action %s is not valid for this web service.", action)
		s.record(c, c.service, action, false, e)
		writeQueryError(w, c.service, e)
		return
	}
	if s.throttle(w, c, c.service, action, r.Form) {
		return
	}
	s.mu.Lock()
	out, err := op.handle(s, c, r.Form)
	s.mu.Unlock()
	s.record(c, c.service, action, op.mutating, err)
	if err != nil {
		writeQueryError(w, c.service, err)
		return
	}
	body, err := xml.Marshal(out)
	if err != nil {
		writeQueryError(w, c.service, err)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<%sResponse xmlns="%s"><%sResult>%s</%sResult><ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`,
		action, xmlns[c.service], action, innerXML(body), action, newUUID(), action)
}

// returnTrue is the EC2 answer of a call that only reports success.
type returnTrue struct {
	XMLName xml.Name `xml:"R"`
	Return  bool     `xml:"return"`
}

// emptyResult is the answer of a call that returns no data.
type emptyResult struct {
	XMLName xml.Name `xml:"R"`
}

// innerXML strips the outer element that xml.Marshal adds.
func innerXML(b []byte) string {
	s := string(b)
	start := strings.IndexByte(s, '>')
	end := strings.LastIndexByte(s, '<')
	if start < 0 || end <= start {
		return ""
	}
	return s[start+1 : end]
}

func writeQueryError(w http.ResponseWriter, service string, err error) {
	ae, ok := err.(*apiError)
	if !ok {
		ae = errorf(http.StatusInternalServerError, "InternalFailure", "%v", err)
	}
	kind := "Sender"
	if ae.status >= 500 {
		kind = "Receiver"
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(ae.status)
	var msg strings.Builder
	_ = xml.EscapeText(&msg, []byte(ae.message))
	fmt.Fprintf(w, `<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
		xmlns[service], kind, ae.code, msg.String(), newUUID())
}

func required(form url.Values, name string) (string, error) {
	v := form.Get(name)
	if v == "" {
		return "", errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", lowerFirst(name))
	}
	return v, nil
}

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
	if !ok || !trusts(r, c.account, form.Get("ExternalId")) {
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
