package awsim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// queryOp is an operation of a query-protocol service, and whether it
// changes state.
type queryOp struct {
	mutating bool
	handle   func(s *Server, c caller, form url.Values) (any, error)
}

// queryOps are the awsQuery operations (STS, IAM, Auto Scaling), by service;
// EC2's are ec2Ops.
var queryOps = map[string]map[string]queryOp{
	"sts": {
		"GetCallerIdentity": {false, (*Server).stsGetCallerIdentity},
		"AssumeRole":        {false, (*Server).stsAssumeRole},
	},
	"iam": {
		"CreateRole":              {true, (*Server).iamCreateRole},
		"GetRole":                 {false, (*Server).iamGetRole},
		"ListRoles":               {false, (*Server).iamListRoles},
		"PutRolePolicy":           {true, (*Server).iamPutRolePolicy},
		"DeleteRole":              {true, (*Server).iamDeleteRole},
		"SimulatePrincipalPolicy": {false, (*Server).iamSimulatePrincipalPolicy},
		"CreateServiceLinkedRole": {true, (*Server).iamCreateServiceLinkedRole},
	},
	"autoscaling": {
		"CreateAutoScalingGroup":       {true, (*Server).asCreateGroup},
		"UpdateAutoScalingGroup":       {true, (*Server).asUpdateGroup},
		"SetDesiredCapacity":           {true, (*Server).asUpdateGroup},
		"DescribeAutoScalingGroups":    {false, (*Server).asDescribeGroups},
		"DescribeAutoScalingInstances": {false, (*Server).asDescribeInstances},
		"DescribeScalingActivities":    {false, (*Server).asDescribeActivities},
		"CreateOrUpdateTags":           {true, (*Server).asCreateOrUpdateTags},
		"DeleteAutoScalingGroup":       {true, (*Server).asDeleteGroup},
	},
}

var xmlns = map[string]string{
	"sts":         "https://sts.amazonaws.com/doc/2011-06-15/",
	"iam":         "https://iam.amazonaws.com/doc/2010-05-08/",
	"autoscaling": "http://autoscaling.amazonaws.com/doc/2011-01-01/",
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
