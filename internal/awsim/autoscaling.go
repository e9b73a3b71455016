package awsim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

type autoScalingGroup struct {
	name, arn, account, region string
	templateID, version        string
	mixed                      bool     // the template came in a MixedInstancesPolicy
	overrides                  []string // its overrides' instance types ("": attribute-based)
	subnetIDs                  []string
	launches                   int // how many launches were tried, to spread them
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

// groupTemplate reads the group's launch template: LaunchTemplate, or the
// launch template of a MixedInstancesPolicy.
func (s *Server) groupTemplate(c caller, form url.Values) (lt *launchTemplate, version string, mixed bool, err error) {
	hasTemplate, hasMixed := false, false
	for k := range form {
		hasTemplate = hasTemplate || strings.HasPrefix(k, "LaunchTemplate.")
		hasMixed = hasMixed || strings.HasPrefix(k, "MixedInstancesPolicy.")
	}
	prefix := "LaunchTemplate."
	switch {
	case hasTemplate && hasMixed:
		return nil, "", false, errorf(http.StatusBadRequest, "ValidationError", "Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.")
	case hasMixed:
		prefix, mixed = "MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification.", true
	case !hasTemplate:
		if name := form.Get("LaunchConfigurationName"); name != "" {
			return nil, "", false, errorf(http.StatusBadRequest, "ValidationError", "Launch configuration name not found - Launch configuration %s not found", name)
		}
		return nil, "", false, errorf(http.StatusBadRequest, "ValidationError", "Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.")
	}
	id, name := form.Get(prefix+"LaunchTemplateId"), form.Get(prefix+"LaunchTemplateName")
	if id == "" && name == "" {
		return nil, "", false, errorf(http.StatusBadRequest, "ValidationError", "Valid requests must contain either launchTemplateId or LaunchTemplateName")
	}
	lt, err = s.findTemplate(c, id, name)
	if err == nil {
		version = form.Get(prefix + "Version")
		_, err = lt.resolve(version)
	}
	if err != nil {
		return nil, "", false, errorf(http.StatusBadRequest, "ValidationError", "You must use a valid fully-formed launch template. %s", err.(*apiError).message)
	}
	return lt, version, mixed, nil
}

// subnetZone returns the zone of one of the account's subnets.
func subnetZone(c caller, id string) (string, bool) {
	for _, z := range zones(c.region) {
		if defaultSubnet(c, z) == id {
			return z, true
		}
	}
	return "", false
}

func (s *Server) asCreateGroup(c caller, form url.Values) (any, error) {
	name, err := required(form, "AutoScalingGroupName")
	if err != nil {
		return nil, err
	}
	if _, ok := s.world.groups[c.account+"/"+c.region+"/"+name]; ok {
		return nil, errorf(http.StatusBadRequest, "AlreadyExists", "AutoScalingGroup by this name already exists - A group with the name %s already exists", name)
	}
	lt, version, mixed, err := s.groupTemplate(c, form)
	if err != nil {
		return nil, err
	}
	g := &autoScalingGroup{name: name, account: c.account, region: c.region, templateID: lt.id, version: version, mixed: mixed, created: s.now().UTC(),
		zones: members(form, "AvailabilityZones"), subnets: form.Get("VPCZoneIdentifier"), overrides: overrideTypes(form)}
	g.arn = fmt.Sprintf("arn:aws:autoscaling:%s:%s:autoScalingGroup:%s:autoScalingGroupName/%s", c.region, c.account, newUUID(), name)
	for _, id := range strings.Split(g.subnets, ",") {
		if id = strings.TrimSpace(id); id == "" {
			continue
		}
		zone, ok := subnetZone(c, id)
		if !ok {
			return nil, errorf(http.StatusBadRequest, "ValidationError", "The subnet ID '%s' does not exist", id)
		}
		g.subnetIDs = append(g.subnetIDs, id)
		if !containsString(g.zones, zone) && form.Get("AvailabilityZones.member.1") == "" {
			g.zones = append(g.zones, zone)
		}
	}
	if len(g.zones) == 0 {
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
	if g.max < g.min {
		return nil, errorf(http.StatusBadRequest, "ValidationError", "Max bound, %d, must be greater than or equal to min bound, %d", g.max, g.min)
	}
	if g.desired < g.min || g.desired > g.max {
		return nil, errorf(http.StatusBadRequest, "ValidationError", "Desired capacity:%d must be between the specified min size:%d and max size:%d", g.desired, g.min, g.max)
	}
	if err := g.setGroupTags(form); err != nil {
		return nil, err
	}
	r, err := s.autoScalingRole(c.account, form.Get("ServiceLinkedRoleARN"))
	if err != nil {
		return nil, err
	}
	g.serviceLinkedRole = r.arn
	s.world.groups[c.account+"/"+c.region+"/"+name] = g
	s.scale(g)
	return emptyResult{}, nil
}

func members(form url.Values, name string) []string { return indexed(form, name+".member") }

// overrideTypes reads the instance types of a MixedInstancesPolicy's
// overrides, in order ("" for an override by instance requirements).
func overrideTypes(form url.Values) []string {
	var out []string
	for i := 1; ; i++ {
		prefix := "MixedInstancesPolicy.LaunchTemplate.Overrides.member." + strconv.Itoa(i) + "."
		found := false
		for k := range form {
			if strings.HasPrefix(k, prefix) {
				found = true
				break
			}
		}
		if !found {
			return out
		}
		out = append(out, form.Get(prefix+"InstanceType"))
	}
}

// instanceType is what the group launches: the first override's instance
// type (the prioritized on-demand allocation), else the template's.
func (g *autoScalingGroup) instanceType(v templateVersion) string {
	if len(g.overrides) > 0 && g.overrides[0] != "" {
		return g.overrides[0]
	}
	return orDefault(v.instanceType(), "m1.small")
}

// failLaunch records a launch that failed before an instance existed.
func (g *autoScalingGroup) failLaunch(act activity, reason string) {
	act.description = "Launching a new EC2 instance.  Status Reason: " + reason + " Launching EC2 instance failed."
	act.status, act.message = "Failed", reason+" Launching EC2 instance failed."
	g.activities = append(g.activities, act)
}

// scale launches instances until the group has its desired capacity, with
// the group's service-linked role as the acting principal. The launch
// template version is resolved at each launch ($Latest follows new
// versions). Instances are spread over the group's subnets (or zones) and
// exist in EC2 like any other, tagged with the template version's instance
// tags, the group's tags that propagate at launch and
// aws:autoscaling:groupName. A launch that fails is recorded as a failed
// scaling activity (an instance that failed on its keys stays visible in
// EC2, terminated); Auto Scaling tries again later (SetRetryBackoff).
func (s *Server) scale(g *autoScalingGroup) {
	g.lastAttempt = s.now()
	if s.accountSuspended(g.account) {
		return // AWS has restricted the account: nothing is launched for it
	}
	for len(g.instances) < g.desired {
		start := s.now().UTC()
		act := activity{id: newUUID(), start: start, end: start,
			cause: fmt.Sprintf("At %s an instance was started in response to a difference between desired and actual capacity, increasing the capacity from %d to %d.", start.Format(time.RFC3339), len(g.instances), len(g.instances)+1)}
		lt, ok := s.world.templates[g.templateID]
		if !ok {
			g.failLaunch(act, "The specified launch template, with template ID "+g.templateID+", does not exist.")
			return
		}
		v, err := lt.resolve(g.version)
		if err != nil {
			g.failLaunch(act, err.(*apiError).message)
			return
		}
		im, ok := s.world.images[v.imageID()]
		if !ok || im.region != g.region || !s.canSee(im, g.account) {
			g.failLaunch(act, "The image id '["+v.imageID()+"]' does not exist.")
			return
		}
		role, ok := s.world.roles[g.serviceLinkedRole]
		if !ok {
			g.failLaunch(act, "The service-linked role "+g.serviceLinkedRole+" does not exist.")
			return
		}
		slr := caller{account: g.account, region: g.region, service: "autoscaling",
			arn: "arn:aws:sts::" + g.account + ":assumed-role/" + role.name + "/" + asgSessionName, roleARN: role.arn}
		spec := launchSpec{image: im, instanceType: g.instanceType(v), invokedBy: "autoscaling.amazonaws.com",
			reservationID: newReservationID(), templateID: lt.id, templateVersion: strconv.Itoa(v.number)}
		n := g.launches
		g.launches++
		if len(g.subnetIDs) > 0 {
			spec.subnetID = g.subnetIDs[n%len(g.subnetIDs)]
			spec.zone, _ = subnetZone(slr, spec.subnetID)
		} else {
			spec.zone = g.zones[n%len(g.zones)]
		}
		in := s.launch(slr, spec)
		owner := caller{account: g.account}
		s.tagResource(owner, in.id, g.instanceTags(v))
		for _, vol := range in.volumes {
			s.tagResource(owner, vol, v.tags("volume"))
		}
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

// prune takes out of the group the instances EC2 no longer runs (stopped
// or terminated by someone else), as Auto Scaling's EC2 health check does;
// stopped ones are terminated.
func (s *Server) prune(g *autoScalingGroup) {
	kept := g.instances[:0]
	for _, id := range g.instances {
		in, ok := s.world.instances[id]
		if ok && (in.state == "running" || in.state == "pending") {
			kept = append(kept, id)
			continue
		}
		if ok {
			s.terminate(in)
		}
		now := s.now().UTC()
		g.activities = append(g.activities, activity{id: newUUID(), start: now, end: now, status: "Successful",
			description: "Terminating EC2 instance: " + id,
			cause:       fmt.Sprintf("At %s an instance was taken out of service in response to an EC2 health check indicating it has been terminated or stopped.", now.Format(time.RFC3339))})
	}
	g.instances = kept
}

// retry lets Auto Scaling notice instances gone from EC2 and try again a
// group below its desired capacity, once its back-off has passed.
func (s *Server) retry(g *autoScalingGroup) {
	s.prune(g)
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

type templateSpecXML struct {
	ID      string `xml:"LaunchTemplateId"`
	Name    string `xml:"LaunchTemplateName"`
	Version string `xml:"Version"`
}

func (s *Server) templateSpec(id, version string) *templateSpecXML {
	x := &templateSpecXML{ID: id, Version: version}
	if lt, ok := s.world.templates[id]; ok {
		x.Name = lt.name
	}
	return x
}

func (s *Server) asDescribeGroups(c caller, form url.Values) (any, error) {
	type instXML struct {
		InstanceID       string           `xml:"InstanceId"`
		InstanceType     string           `xml:"InstanceType"`
		AvailabilityZone string           `xml:"AvailabilityZone"`
		LifecycleState   string           `xml:"LifecycleState"`
		HealthStatus     string           `xml:"HealthStatus"`
		LaunchTemplate   *templateSpecXML `xml:"LaunchTemplate"`
		Protected        bool             `xml:"ProtectedFromScaleIn"`
	}
	type overrideXML struct {
		InstanceType string `xml:"InstanceType,omitempty"`
	}
	type mixedXML struct {
		Spec      *templateSpecXML `xml:"LaunchTemplate>LaunchTemplateSpecification"`
		Overrides []overrideXML    `xml:"LaunchTemplate>Overrides>member"`
	}
	type groupXML struct {
		Name                 string           `xml:"AutoScalingGroupName"`
		ARN                  string           `xml:"AutoScalingGroupARN"`
		LaunchTemplate       *templateSpecXML `xml:"LaunchTemplate"`
		MixedInstancesPolicy *mixedXML        `xml:"MixedInstancesPolicy"`
		MinSize              int              `xml:"MinSize"`
		MaxSize              int              `xml:"MaxSize"`
		DesiredCapacity      int              `xml:"DesiredCapacity"`
		DefaultCooldown      int              `xml:"DefaultCooldown"`
		Zones                []string         `xml:"AvailabilityZones>member"`
		HealthCheckType      string           `xml:"HealthCheckType"`
		CreatedTime          string           `xml:"CreatedTime"`
		Instances            []instXML        `xml:"Instances>member"`
		VPCZoneIdentifier    string           `xml:"VPCZoneIdentifier,omitempty"`
		ServiceLinkedRoleARN string           `xml:"ServiceLinkedRoleARN"`
		Tags                 []groupTag       `xml:"Tags>member"`
	}
	f, err := groupFilters(form)
	if err != nil {
		return nil, err
	}
	var out []groupXML
	for _, g := range s.groupsOf(c, members(form, "AutoScalingGroupNames")) {
		if !g.matches(f) {
			continue
		}
		s.retry(g)
		x := groupXML{Name: g.name, ARN: g.arn, MinSize: g.min, MaxSize: g.max, DesiredCapacity: g.desired, DefaultCooldown: 300,
			Zones: g.zones, HealthCheckType: "EC2", CreatedTime: g.created.Format(time.RFC3339), VPCZoneIdentifier: g.subnets, ServiceLinkedRoleARN: g.serviceLinkedRole,
			Tags: g.tagList()}
		spec := s.templateSpec(g.templateID, orDefault(g.version, "$Default"))
		if g.mixed {
			x.MixedInstancesPolicy = &mixedXML{Spec: spec}
			for _, t := range g.overrides {
				x.MixedInstancesPolicy.Overrides = append(x.MixedInstancesPolicy.Overrides, overrideXML{InstanceType: t})
			}
		} else {
			x.LaunchTemplate = spec
		}
		for _, id := range g.instances {
			in := s.world.instances[id]
			x.Instances = append(x.Instances, instXML{InstanceID: id, InstanceType: in.instanceType, AvailabilityZone: in.zone, LifecycleState: "InService", HealthStatus: "Healthy",
				LaunchTemplate: s.templateSpec(in.templateID, in.templateVersion)})
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

// asDeleteGroup deletes a group; with ForceDelete it first terminates the
// group's instances, without it a group with instances is refused.
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
	s.prune(g)
	if len(g.instances) > 0 && form.Get("ForceDelete") != "true" {
		return nil, errorf(http.StatusBadRequest, "ResourceInUse", "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.")
	}
	for _, id := range g.instances {
		if in, ok := s.world.instances[id]; ok {
			s.terminate(in)
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

// asUpdateGroup serves UpdateAutoScalingGroup and SetDesiredCapacity.
func (s *Server) asUpdateGroup(c caller, form url.Values) (any, error) {
	name, err := required(form, "AutoScalingGroupName")
	if err != nil {
		return nil, err
	}
	g, ok := s.world.groups[c.account+"/"+c.region+"/"+name]
	if !ok {
		return nil, errorf(http.StatusBadRequest, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", name)
	}
	min, max, desired := g.min, g.max, g.desired
	for field, dst := range map[string]*int{"MinSize": &min, "MaxSize": &max, "DesiredCapacity": &desired} {
		if v := form.Get(field); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, errorf(http.StatusBadRequest, "ValidationError", "%s must be a non-negative integer", field)
			}
			*dst = n
		}
	}
	if desired < min || desired > max {
		return nil, errorf(http.StatusBadRequest, "ValidationError", "New SetDesiredCapacity value %d is below min value %d or above max value %d for the AutoScalingGroup.", desired, min, max)
	}
	g.min, g.max, g.desired = min, max, desired
	s.prune(g)
	for len(g.instances) > g.desired {
		last := g.instances[len(g.instances)-1]
		if in, ok := s.world.instances[last]; ok {
			s.terminate(in)
		}
		g.instances = g.instances[:len(g.instances)-1]
	}
	s.scale(g)
	return emptyResult{}, nil
}

func (s *Server) asDescribeInstances(c caller, form url.Values) (any, error) {
	type instXML struct {
		InstanceID     string `xml:"InstanceId"`
		Group          string `xml:"AutoScalingGroupName"`
		Zone           string `xml:"AvailabilityZone"`
		LifecycleState string `xml:"LifecycleState"`
		HealthStatus   string `xml:"HealthStatus"`
		Protected      bool   `xml:"ProtectedFromScaleIn"`
	}
	ids := members(form, "InstanceIds")
	var out []instXML
	for _, g := range s.groupsOf(c, nil) {
		s.prune(g)
		for _, id := range g.instances {
			if len(ids) == 0 || containsString(ids, id) {
				out = append(out, instXML{id, g.name, s.world.instances[id].zone, "InService", "HEALTHY", false})
			}
		}
	}
	return struct {
		XMLName   xml.Name  `xml:"R"`
		Instances []instXML `xml:"AutoScalingInstances>member"`
	}{Instances: out}, nil
}
