package awsim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// EC2's query protocol (XML answers in EC2's own shape) and the helpers
// its operations share.

const ec2NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

// ec2Ops are the EC2 operations, and whether they change state.
var ec2Ops = map[string]queryOp{
	// Volumes and default EBS encryption.
	"CreateVolume":                 {true, (*Server).ec2CreateVolume},
	"DescribeVolumes":              {false, (*Server).ec2DescribeVolumes},
	"GetEbsEncryptionByDefault":    {false, ec2EbsDefault("get")},
	"EnableEbsEncryptionByDefault": {true, ec2EbsDefault("enable")},
	"GetEbsDefaultKmsKeyId":        {false, ec2EbsDefault("key")},
	"ModifyEbsDefaultKmsKeyId":     {true, ec2EbsDefault("modify")},
	// Snapshots.
	"CreateSnapshot":            {true, (*Server).ec2CreateSnapshot},
	"DescribeSnapshots":         {false, (*Server).ec2DescribeSnapshots},
	"ModifySnapshotAttribute":   {true, (*Server).ec2ModifySnapshotAttribute},
	"DescribeSnapshotAttribute": {false, (*Server).ec2DescribeSnapshotAttribute},
	"DeleteSnapshot":            {true, (*Server).ec2DeleteSnapshot},
	// Images.
	"RegisterImage":          {true, (*Server).ec2RegisterImage},
	"CreateImage":            {true, (*Server).ec2CreateImage},
	"CopyImage":              {true, (*Server).ec2CopyImage},
	"DescribeImages":         {false, (*Server).ec2DescribeImages},
	"ModifyImageAttribute":   {true, (*Server).ec2ModifyImageAttribute},
	"DescribeImageAttribute": {false, (*Server).ec2DescribeImageAttribute},
	"DeregisterImage":        {true, (*Server).ec2DeregisterImage},
	// Instances.
	"RunInstances":       {true, (*Server).ec2RunInstances},
	"DescribeInstances":  {false, (*Server).ec2DescribeInstances},
	"StopInstances":      {true, ec2SetInstanceState("stopped")},
	"StartInstances":     {true, ec2SetInstanceState("running")},
	"TerminateInstances": {true, ec2SetInstanceState("terminated")},
	// Launch templates.
	"CreateLaunchTemplate":           {true, (*Server).ec2CreateLaunchTemplate},
	"CreateLaunchTemplateVersion":    {true, (*Server).ec2CreateLaunchTemplateVersion},
	"DescribeLaunchTemplates":        {false, (*Server).ec2DescribeLaunchTemplates},
	"DescribeLaunchTemplateVersions": {false, (*Server).ec2DescribeLaunchTemplateVersions},
	"DeleteLaunchTemplate":           {true, (*Server).ec2DeleteLaunchTemplate},
	"DeleteLaunchTemplateVersions":   {true, (*Server).ec2DeleteLaunchTemplateVersions},
	// What the amazon-ebs builder needs around its instance.
	"CreateKeyPair":                 {true, (*Server).ec2CreateKeyPair},
	"DeleteKeyPair":                 {true, (*Server).ec2DeleteKeyPair},
	"CreateSecurityGroup":           {true, (*Server).ec2CreateSecurityGroup},
	"DescribeSecurityGroups":        {false, (*Server).ec2DescribeSecurityGroups},
	"AuthorizeSecurityGroupIngress": {true, (*Server).ec2AuthorizeIngress},
	"DeleteSecurityGroup":           {true, (*Server).ec2DeleteSecurityGroup},
	// Regions, zones, the default VPC, tags.
	"DescribeRegions":           {false, (*Server).ec2DescribeRegions},
	"DescribeAvailabilityZones": {false, (*Server).ec2DescribeZones},
	"DescribeVpcs":              {false, (*Server).ec2DescribeVpcs},
	"DescribeSubnets":           {false, (*Server).ec2DescribeSubnets},
	"CreateTags":                {true, (*Server).ec2CreateTags},
	"DescribeTags":              {false, (*Server).ec2DescribeTags},
}

func writeEC2Error(w http.ResponseWriter, err error) {
	ae, ok := err.(*apiError)
	if !ok {
		ae = errorf(http.StatusInternalServerError, "InternalError", "%v", err)
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(ae.status)
	var msg strings.Builder
	_ = xml.EscapeText(&msg, []byte(ae.message))
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>`,
		ae.code, msg.String(), newUUID())
}

func (s *Server) serveEC2(w http.ResponseWriter, action string, form url.Values, c caller) {
	op, ok := ec2Ops[action]
	if !ok {
		e := errorf(http.StatusBadRequest, "InvalidAction", "The action %s is not valid for this web service.", action)
		s.record(c, "ec2", action, false, e)
		writeEC2Error(w, e)
		return
	}
	if s.throttle(w, c, "ec2", action, form) {
		return
	}
	s.mu.Lock()
	out, err := op.handle(s, c, form)
	s.mu.Unlock()
	// A DryRun call checks and changes nothing.
	s.record(c, "ec2", action, op.mutating && form.Get("DryRun") != "true", err)
	if err != nil {
		writeEC2Error(w, err)
		return
	}
	body, err := xml.Marshal(out)
	if err != nil {
		writeEC2Error(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><%sResponse xmlns="%s"><requestId>%s</requestId>%s</%sResponse>`,
		action, ec2NS, newUUID(), innerXML(body), action)
}

// indexed reads the values of a list parameter: Name.1, Name.2, ...
func indexed(form url.Values, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := form[name+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

func (s *Server) ec2Key(c caller, id string) (*key, error) {
	if id == "" {
		return s.awsEBSKey(c.account, c.region), nil
	}
	k, err := s.findKey(c, id)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "InvalidKMSKey.NotFound", "The KMS key %s was not found", id)
	}
	return k, nil
}

// errDryRunEC2 is EC2's answer to a DryRun call that would have succeeded.
func errDryRunEC2() error {
	return errorf(http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
}

func setMember(m map[string]bool, k string, add bool) {
	if add {
		m[k] = true
	} else {
		delete(m, k)
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// filters reads Filter.N.Name / Filter.N.Value.M.
func filters(form url.Values) map[string][]string {
	out := map[string][]string{}
	for i := 1; ; i++ {
		p := "Filter." + strconv.Itoa(i) + "."
		name := form.Get(p + "Name")
		if name == "" {
			return out
		}
		out[name] = indexed(form, p+"Value")
	}
}

// matchFilter reports whether value matches one of the filter's values
// ('*' and '?' wildcards, as EC2 allows).
func matchFilter(values []string, value string) bool {
	for _, v := range values {
		if globMatch(v, value, false) {
			return true
		}
	}
	return false
}
