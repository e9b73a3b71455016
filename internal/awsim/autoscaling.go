package awsim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"
)

type launchTemplate struct {
	id, name, account, region string
	versions                  []templateVersion
	defaultVersion            int
	created                   time.Time
}

type templateVersion struct {
	number                int
	imageID, instanceType string
	description           string
	created               time.Time
	deleted               bool
}

// latest is the newest version not deleted (the default one never is).
func (lt *launchTemplate) latest() templateVersion {
	for i := len(lt.versions) - 1; i > 0; i-- {
		if !lt.versions[i].deleted {
			return lt.versions[i]
		}
	}
	return lt.versions[0]
}

// version resolves a group's version spec: "$Default" (or empty),
// "$Latest" or a number.
func (lt *launchTemplate) version(spec string) templateVersion {
	switch spec {
	case "", "$Default":
		return lt.versions[lt.defaultVersion-1]
	case "$Latest":
		return lt.latest()
	}
	if n, err := strconv.Atoi(spec); err == nil && n >= 1 && n <= len(lt.versions) {
		return lt.versions[n-1]
	}
	return lt.versions[lt.defaultVersion-1]
}

type autoScalingGroup struct {
	name, arn, account, region string
	templateID, version        string
	tags                       map[string]string
	propagate                  map[string]bool
	min, max, desired          int
	zones                      []string
	subnets                    string
	serviceLinkedRole          string
	instances                  []string
	activities                 []activity
	lastAttempt                time.Time
	created                    time.Time
}

type activity struct {
	id, description, cause, status, message string
	start, end                              time.Time
}

// asgSessionName is the session Auto Scaling uses with its service-linked
// role; CloudTrail shows it (first reference write-up).
const asgSessionName = "AutoScaling"

func init() {
	queryOps["autoscaling"] = map[string]queryOp{
		"CreateAutoScalingGroup":    {true, (*Server).asCreateGroup},
		"DescribeAutoScalingGroups": {false, (*Server).asDescribeGroups},
		"DescribeScalingActivities": {false, (*Server).asDescribeActivities},
		"DeleteAutoScalingGroup":    {true, (*Server).asDeleteGroup},
	}
	queryOps["iam"]["CreateServiceLinkedRole"] = queryOp{true, (*Server).iamCreateServiceLinkedRole}
	xmlns["autoscaling"] = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
	ec2Ops["CreateLaunchTemplate"] = queryOp{true, (*Server).ec2CreateLaunchTemplate}
}

func (s *Server) ec2CreateLaunchTemplate(c caller, form url.Values) (any, error) {
	name := form.Get("LaunchTemplateName")
	if name == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter LaunchTemplateName")
	}
	for _, lt := range s.world.templates {
		if lt.account == c.account && lt.region == c.region && lt.name == name {
			return nil, errorf(http.StatusBadRequest, "InvalidLaunchTemplateName.AlreadyExistsException", "Launch template name already in use.")
		}
	}
	lt := &launchTemplate{id: newID("lt-", 9)[:20], name: name, account: c.account, region: c.region, defaultVersion: 1, created: s.now().UTC(),
		versions: []templateVersion{{number: 1, imageID: form.Get("LaunchTemplateData.ImageId"), instanceType: form.Get("LaunchTemplateData.InstanceType"), created: s.now().UTC()}}}
	s.world.templates[lt.id] = lt
	type ltXML struct {
		ID                   string `xml:"launchTemplateId"`
		Name                 string `xml:"launchTemplateName"`
		CreateTime           string `xml:"createTime"`
		DefaultVersionNumber int    `xml:"defaultVersionNumber"`
		LatestVersionNumber  int    `xml:"latestVersionNumber"`
	}
	return struct {
		XMLName xml.Name `xml:"R"`
		LT      ltXML    `xml:"launchTemplate"`
	}{LT: ltXML{ID: lt.id, Name: lt.name, CreateTime: lt.created.Format(time.RFC3339), DefaultVersionNumber: 1, LatestVersionNumber: 1}}, nil
}

func (s *Server) findTemplate(c caller, id, name string) (*launchTemplate, error) {
	for _, lt := range s.world.templates {
		if lt.account == c.account && lt.region == c.region && (lt.id == id || (id == "" && lt.name == name)) {
			return lt, nil
		}
	}
	return nil, errorf(http.StatusBadRequest, "ValidationError", "The specified launch template, with template ID %s, does not exist.", id+name)
}

// autoScalingRole returns the group's service-linked role, creating the
// default one on first use as AWS does.
func (s *Server) autoScalingRole(account, arn string) (*role, error) {
	def := "arn:aws:iam::" + account + ":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
	if arn == "" {
		arn = def
	}
	if r, ok := s.world.roles[arn]; ok {
		return r, nil
	}
	if arn != def {
		return nil, errorf(http.StatusBadRequest, "ValidationError", "ARN specified for Service-Linked Role does not exist.")
	}
	return s.createServiceLinkedRole(account, ""), nil
}

func (s *Server) createServiceLinkedRole(account, suffix string) *role {
	name := "AWSServiceRoleForAutoScaling"
	if suffix != "" {
		name += "_" + suffix
	}
	path := "/aws-service-role/autoscaling.amazonaws.com/"
	r := &role{arn: "arn:aws:iam::" + account + ":role" + path + name, name: name, path: path, account: account, serviceLinked: true,
		trustPolicy:    `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"autoscaling.amazonaws.com"},"Action":"sts:AssumeRole"}]}`,
		inlinePolicies: map[string]string{}, created: s.now().UTC()}
	s.world.roles[r.arn] = r
	return r
}

func (s *Server) iamCreateServiceLinkedRole(c caller, form url.Values) (any, error) {
	service, err := required(form, "AWSServiceName")
	if err != nil {
		return nil, err
	}
	if service != "autoscaling.amazonaws.com" {
		return nil, errorf(http.StatusBadRequest, "InvalidInput", "Service role name %s is not supported by the simulator.", service)
	}
	suffix := form.Get("CustomSuffix")
	name := "AWSServiceRoleForAutoScaling"
	if suffix != "" {
		name += "_" + suffix
	}
	if _, err := s.roleByName(c.account, name); err == nil {
		return nil, errorf(http.StatusBadRequest, "InvalidInput", "Service role name %s has been taken in this account, please try a different suffix.", name)
	}
	r := s.createServiceLinkedRole(c.account, suffix)
	return struct {
		XMLName xml.Name `xml:"R"`
		Role    roleXML  `xml:"Role"`
	}{Role: r.xml()}, nil
}

func (s *Server) asCreateGroup(c caller, form url.Values) (any, error) {
	name, err := required(form, "AutoScalingGroupName")
	if err != nil {
		return nil, err
	}
	if _, ok := s.world.groups[c.account+"/"+c.region+"/"+name]; ok {
		return nil, errorf(http.StatusBadRequest, "AlreadyExists", "AutoScalingGroup by this name already exists - A group with the name %s already exists", name)
	}
	lt, err := s.findTemplate(c, form.Get("LaunchTemplate.LaunchTemplateId"), form.Get("LaunchTemplate.LaunchTemplateName"))
	if err != nil {
		return nil, err
	}
	g := &autoScalingGroup{name: name, account: c.account, region: c.region, templateID: lt.id, version: form.Get("LaunchTemplate.Version"), created: s.now().UTC(),
		zones: members(form, "AvailabilityZones"), subnets: form.Get("VPCZoneIdentifier")}
	g.arn = fmt.Sprintf("arn:aws:autoscaling:%s:%s:autoScalingGroup:%s:autoScalingGroupName/%s", c.region, c.account, newUUID(), name)
	if len(g.zones) == 0 && g.subnets == "" {
		return nil, errorf(http.StatusBadRequest, "ValidationError", "At least one Availability Zone or VPC Subnet is required.")
	}
	for field, dst := range map[string]*int{"MinSize": &g.min, "MaxSize": &g.max, "DesiredCapacity": &g.desired} {
		v := form.Get(field)
		if v == "" && field != "DesiredCapacity" {
			return nil, errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", lowerFirst(field))
		}
		if v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, errorf(http.StatusBadRequest, "ValidationError", "%s must be a non-negative integer", field)
			}
			*dst = n
		}
	}
	if form.Get("DesiredCapacity") == "" {
		g.desired = g.min
	}
	r, err := s.autoScalingRole(c.account, form.Get("ServiceLinkedRoleARN"))
	if err != nil {
		return nil, err
	}
	g.serviceLinkedRole = r.arn
	g.tags, g.propagate = groupTags(form)
	s.world.groups[c.account+"/"+c.region+"/"+name] = g
	s.scale(g)
	return emptyResult{}, nil
}

func members(form url.Values, name string) []string { return indexed(form, name+".member") }

// scale launches instances until the group has its desired capacity, with
// the group's service-linked role as the acting principal. A launch that
// fails is recorded as a failed scaling activity; Auto Scaling tries again
// later (SetRetryBackoff).
func (s *Server) scale(g *autoScalingGroup) {
	g.lastAttempt = s.now()
	lt, ok := s.world.templates[g.templateID]
	if !ok {
		return
	}
	v := lt.version(g.version)
	for len(g.instances) < g.desired {
		im, ok := s.world.images[v.imageID]
		role := s.world.roles[g.serviceLinkedRole]
		slr := caller{account: g.account, region: g.region, service: "autoscaling",
			arn: "arn:aws:sts::" + g.account + ":assumed-role/" + role.name + "/" + asgSessionName, roleARN: role.arn}
		start := s.now().UTC()
		act := activity{id: newUUID(), start: start, end: start,
			cause: fmt.Sprintf("At %s an instance was started in response to a difference between desired and actual capacity, increasing the capacity from %d to %d.", start.Format(time.RFC3339), len(g.instances), len(g.instances)+1)}
		if !ok || im.region != g.region || !im.canSee(g.account) {
			act.description, act.status = "Launching a new EC2 instance.  Status Reason: The image id '["+v.imageID+"]' does not exist. Launching EC2 instance failed.", "Failed"
			act.message = "The image id '[" + v.imageID + "]' does not exist. Launching EC2 instance failed."
			g.activities = append(g.activities, act)
			return
		}
		in := s.launch(slr, im, v.instanceType, "autoscaling.amazonaws.com")
		s.tagResource(caller{account: g.account}, in.id, g.propagatedTags())
		if in.state != "running" {
			act.description = "Launching a new EC2 instance: " + in.id + ".  Status Reason: Instance became unhealthy while waiting for instance to be in InService state. Termination Reason: " + in.stateReasonMessage
			act.status, act.message = "Failed", "Instance became unhealthy while waiting for instance to be in InService state. Termination Reason: "+in.stateReasonMessage
			g.activities = append(g.activities, act)
			return
		}
		act.description, act.status = "Launching a new EC2 instance: "+in.id, "Successful"
		g.activities = append(g.activities, act)
		g.instances = append(g.instances, in.id)
	}
}

// retry lets Auto Scaling try again a group below its desired capacity,
// once its back-off has passed.
func (s *Server) retry(g *autoScalingGroup) {
	if len(g.instances) < g.desired && s.now().Sub(g.lastAttempt) >= s.retryBackoff {
		s.scale(g)
	}
}

func (s *Server) groupsOf(c caller, names []string) []*autoScalingGroup {
	var out []*autoScalingGroup
	for _, g := range s.world.groups {
		if g.account != c.account || g.region != c.region {
			continue
		}
		if len(names) > 0 && !containsString(names, g.name) {
			continue
		}
		out = append(out, g)
	}
	sortGroups(out)
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortGroups(gs []*autoScalingGroup) {
	sort.Slice(gs, func(i, j int) bool { return gs[i].name < gs[j].name })
}

func (s *Server) asDescribeGroups(c caller, form url.Values) (any, error) {
	type instXML struct {
		InstanceID       string `xml:"InstanceId"`
		AvailabilityZone string `xml:"AvailabilityZone"`
		LifecycleState   string `xml:"LifecycleState"`
		HealthStatus     string `xml:"HealthStatus"`
		Protected        bool   `xml:"ProtectedFromScaleIn"`
	}
	type groupXML struct {
		Name           string `xml:"AutoScalingGroupName"`
		ARN            string `xml:"AutoScalingGroupARN"`
		LaunchTemplate struct {
			ID      string `xml:"LaunchTemplateId"`
			Name    string `xml:"LaunchTemplateName"`
			Version string `xml:"Version"`
		} `xml:"LaunchTemplate"`
		MinSize              int        `xml:"MinSize"`
		MaxSize              int        `xml:"MaxSize"`
		DesiredCapacity      int        `xml:"DesiredCapacity"`
		DefaultCooldown      int        `xml:"DefaultCooldown"`
		Zones                []string   `xml:"AvailabilityZones>member"`
		HealthCheckType      string     `xml:"HealthCheckType"`
		CreatedTime          string     `xml:"CreatedTime"`
		Instances            []instXML  `xml:"Instances>member"`
		VPCZoneIdentifier    string     `xml:"VPCZoneIdentifier,omitempty"`
		ServiceLinkedRoleARN string     `xml:"ServiceLinkedRoleARN"`
		Tags                 []groupTag `xml:"Tags>member"`
	}
	var out []groupXML
	f := groupFilters(form)
	for _, g := range s.groupsOf(c, members(form, "AutoScalingGroupNames")) {
		if !g.matches(f) {
			continue
		}
		s.retry(g)
		x := groupXML{Name: g.name, ARN: g.arn, MinSize: g.min, MaxSize: g.max, DesiredCapacity: g.desired, DefaultCooldown: 300,
			Zones: g.zones, HealthCheckType: "EC2", CreatedTime: g.created.Format(time.RFC3339), VPCZoneIdentifier: g.subnets, ServiceLinkedRoleARN: g.serviceLinkedRole,
			Tags: g.tagList()}
		x.LaunchTemplate.ID, x.LaunchTemplate.Version = g.templateID, orDefault(g.version, "$Default")
		if lt, ok := s.world.templates[g.templateID]; ok {
			x.LaunchTemplate.Name = lt.name
		}
		for _, id := range g.instances {
			zone := "us-east-1a"
			if len(g.zones) > 0 {
				zone = g.zones[0]
			}
			x.Instances = append(x.Instances, instXML{InstanceID: id, AvailabilityZone: zone, LifecycleState: "InService", HealthStatus: "Healthy"})
		}
		out = append(out, x)
	}
	return struct {
		XMLName xml.Name   `xml:"R"`
		Groups  []groupXML `xml:"AutoScalingGroups>member"`
	}{Groups: out}, nil
}

func (s *Server) asDescribeActivities(c caller, form url.Values) (any, error) {
	type actXML struct {
		ID            string `xml:"ActivityId"`
		Group         string `xml:"AutoScalingGroupName"`
		Description   string `xml:"Description"`
		Cause         string `xml:"Cause"`
		StartTime     string `xml:"StartTime"`
		EndTime       string `xml:"EndTime"`
		StatusCode    string `xml:"StatusCode"`
		StatusMessage string `xml:"StatusMessage,omitempty"`
		Progress      int    `xml:"Progress"`
	}
	var names []string
	if n := form.Get("AutoScalingGroupName"); n != "" {
		names = []string{n}
	}
	var out []actXML
	for _, g := range s.groupsOf(c, names) {
		s.retry(g)
		for i := len(g.activities) - 1; i >= 0; i-- { // newest first, as AWS lists them
			a := g.activities[i]
			out = append(out, actXML{ID: a.id, Group: g.name, Description: a.description, Cause: a.cause, StartTime: a.start.Format(time.RFC3339),
				EndTime: a.end.Format(time.RFC3339), StatusCode: a.status, StatusMessage: a.message, Progress: 100})
		}
	}
	return struct {
		XMLName    xml.Name `xml:"R"`
		Activities []actXML `xml:"Activities>member"`
	}{Activities: out}, nil
}

func (s *Server) asDeleteGroup(c caller, form url.Values) (any, error) {
	name, err := required(form, "AutoScalingGroupName")
	if err != nil {
		return nil, err
	}
	k := c.account + "/" + c.region + "/" + name
	g, ok := s.world.groups[k]
	if !ok {
		return nil, errorf(http.StatusBadRequest, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup '%s' not found", name)
	}
	if len(g.instances) > 0 && form.Get("ForceDelete") != "true" {
		return nil, errorf(http.StatusBadRequest, "ResourceInUse", "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.")
	}
	for _, id := range g.instances {
		if in, ok := s.world.instances[id]; ok {
			in.state = "terminated"
		}
	}
	delete(s.world.groups, k)
	return emptyResult{}, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
