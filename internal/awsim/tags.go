package awsim

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Tags: EC2's and Auto Scaling's, given at creation or later, and the
// filters by tag that test launches and their cleanup use to find what
// they made.

type tagItem struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

// readTagSpecifications reads PREFIX.N.ResourceType with PREFIX.N.Tag.M
// (TagSpecification.N in a request, or in a launch template's data), by
// resource type. allowed lists the types the operation tags; nil allows
// any (a launch template's data is checked when it is made).
func readTagSpecifications(form url.Values, prefix string, allowed []string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for i := 1; ; i++ {
		p := prefix + "." + strconv.Itoa(i) + "."
		present := false
		for k := range form {
			if strings.HasPrefix(k, p) {
				present = true
				break
			}
		}
		if !present {
			return out, nil
		}
		t := form.Get(p + "ResourceType")
		if t == "" {
			return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "Tag specification resource type must have a value")
		}
		if allowed != nil && !containsString(allowed, t) {
			if len(allowed) == 1 && allowed[0] == "launch-template" {
				return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "The value for the ResourceType member of the TagSpecification request parameter must be 'launch-template'. Verify the ResourceType and try again.")
			}
			return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", t)
		}
		if out[t] == nil {
			out[t] = map[string]string{}
		}
		for j := 1; ; j++ {
			k, ok := form[p+"Tag."+strconv.Itoa(j)+".Key"]
			if !ok {
				break
			}
			out[t][k[0]] = form.Get(p + "Tag." + strconv.Itoa(j) + ".Value")
		}
	}
}

// tagResource adds tags to an EC2 resource of the caller's account.
func (s *Server) tagResource(c caller, id string, tags map[string]string) {
	if len(tags) == 0 {
		return
	}
	if s.world.tags[id] == nil {
		s.world.tags[id] = map[string]string{}
	}
	for k, v := range tags {
		s.world.tags[id][k] = v
	}
	s.world.tagOwners[id] = c.account
}

func (s *Server) tagItems(id string) []tagItem {
	var out []tagItem
	for k, v := range s.world.tags[id] {
		out = append(out, tagItem{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// tagFilter applies one of EC2's tag filters (tag:KEY, tag-key, tag-value)
// to a resource's tags; known is false for any other filter.
func tagFilter(name string, values []string, tags map[string]string) (ok, known bool) {
	switch {
	case strings.HasPrefix(name, "tag:"):
		v, has := tags[strings.TrimPrefix(name, "tag:")]
		return has && matchFilter(values, v), true
	case name == "tag-key" || name == "tag-value":
		for k, v := range tags {
			if (name == "tag-key" && matchFilter(values, k)) || (name == "tag-value" && matchFilter(values, v)) {
				return true, true
			}
		}
		return false, true
	}
	return false, false
}

type groupTag struct {
	ResourceID        string `xml:"ResourceId"`
	ResourceType      string `xml:"ResourceType"`
	Key               string `xml:"Key"`
	Value             string `xml:"Value"`
	PropagateAtLaunch bool   `xml:"PropagateAtLaunch"`
}

// setGroupTags reads Tags.member.N (Key, Value, PropagateAtLaunch;
// ResourceId and ResourceType name the group) into the group's tags.
func (g *autoScalingGroup) setGroupTags(form url.Values) error {
	if g.tags == nil {
		g.tags, g.propagate = map[string]string{}, map[string]bool{}
	}
	for i := 1; ; i++ {
		p := "Tags.member." + strconv.Itoa(i) + "."
		k, ok := form[p+"Key"]
		if !ok {
			return nil
		}
		if t := form.Get(p + "ResourceType"); t != "" && t != "auto-scaling-group" {
			return errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value '%s' at 'tags.%d.member.resourceType' failed to satisfy constraint: The only supported value is auto-scaling-group", t, i)
		}
		g.tags[k[0]] = form.Get(p + "Value")
		g.propagate[k[0]] = form.Get(p+"PropagateAtLaunch") == "true"
	}
}

func (g *autoScalingGroup) tagList() []groupTag {
	var out []groupTag
	for k, v := range g.tags {
		out = append(out, groupTag{ResourceID: g.name, ResourceType: "auto-scaling-group", Key: k, Value: v, PropagateAtLaunch: g.propagate[k]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// instanceTags are the tags of an instance the group launches from a
// template version: the version's instance tags, then the group's tags
// that propagate at launch (the group's win), then aws:autoscaling:groupName.
func (g *autoScalingGroup) instanceTags(v templateVersion) map[string]string {
	out := map[string]string{}
	for k, val := range v.tags("instance") {
		out[k] = val
	}
	for k, val := range g.tags {
		if g.propagate[k] {
			out[k] = val
		}
	}
	out["aws:autoscaling:groupName"] = g.name
	return out
}

type groupFilter struct {
	name   string
	values []string
}

// groupFilters reads DescribeAutoScalingGroups' Filters.member.N: tag-key,
// tag-value and tag:KEY are the only names Auto Scaling accepts.
func groupFilters(form url.Values) ([]groupFilter, error) {
	var out []groupFilter
	for i := 1; ; i++ {
		p := "Filters.member." + strconv.Itoa(i) + "."
		name := form.Get(p + "Name")
		if name == "" {
			return out, nil
		}
		if name != "tag-key" && name != "tag-value" && !strings.HasPrefix(name, "tag:") {
			return nil, errorf(http.StatusBadRequest, "ValidationError", "Filter type %s is not correct. Allowed Filter types are: tag-key tag-value tag:<key>", name)
		}
		out = append(out, groupFilter{name, members(form, p+"Values")})
	}
}

// matches applies the filters: AND across filters, OR within one's
// values, exact matches.
func (g *autoScalingGroup) matches(filters []groupFilter) bool {
	for _, f := range filters {
		ok := false
		for k, v := range g.tags {
			switch {
			case f.name == "tag-key":
				ok = ok || containsString(f.values, k)
			case f.name == "tag-value":
				ok = ok || containsString(f.values, v)
			case k == strings.TrimPrefix(f.name, "tag:"):
				ok = ok || containsString(f.values, v)
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// ec2CreateTags tags resources the caller owns.
func (s *Server) ec2CreateTags(c caller, form url.Values) (any, error) {
	ids := indexed(form, "ResourceId")
	if len(ids) == 0 {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter resourceIdSet")
	}
	tags := map[string]string{}
	for i := 1; ; i++ {
		k, ok := form["Tag."+strconv.Itoa(i)+".Key"]
		if !ok {
			break
		}
		tags[k[0]] = form.Get("Tag." + strconv.Itoa(i) + ".Value")
	}
	for _, id := range ids {
		if s.world.tags[id] == nil {
			s.world.tags[id] = map[string]string{}
		}
		for k, v := range tags {
			s.world.tags[id][k] = v
		}
		s.world.tagOwners[id] = c.account
	}
	return returnTrue{Return: true}, nil
}

func (s *Server) ec2DescribeTags(c caller, form url.Values) (any, error) {
	type tagXML struct {
		ResourceID string `xml:"resourceId"`
		Type       string `xml:"resourceType"`
		Key        string `xml:"key"`
		Value      string `xml:"value"`
	}
	f := filters(form)
	var out []tagXML
	for id, tags := range s.world.tags {
		if s.world.tagOwners[id] != c.account {
			continue
		}
		if vals, ok := f["resource-id"]; ok && !matchFilter(vals, id) {
			continue
		}
		for k, v := range tags {
			if vals, ok := f["key"]; ok && !matchFilter(vals, k) {
				continue
			}
			out = append(out, tagXML{id, resourceType(id), k, v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ResourceID+out[i].Key < out[j].ResourceID+out[j].Key })
	return struct {
		XMLName xml.Name `xml:"R"`
		Tags    []tagXML `xml:"tagSet>item"`
	}{Tags: out}, nil
}

func resourceType(id string) string {
	for prefix, t := range map[string]string{"ami-": "image", "i-": "instance", "vol-": "volume", "snap-": "snapshot", "sg-": "security-group", "lt-": "launch-template"} {
		if len(id) > len(prefix) && id[:len(prefix)] == prefix {
			return t
		}
	}
	return "unknown"
}

// asCreateOrUpdateTags tags groups; nothing changes unless every group
// exists.
func (s *Server) asCreateOrUpdateTags(c caller, form url.Values) (any, error) {
	type change struct {
		g          *autoScalingGroup
		key, value string
		propagate  bool
	}
	var changes []change
	for i := 1; ; i++ {
		p := "Tags.member." + strconv.Itoa(i) + "."
		if _, ok := form[p+"Key"]; !ok {
			break
		}
		name := form.Get(p + "ResourceId")
		g, ok := s.world.groups[c.account+"/"+c.region+"/"+name]
		if !ok {
			return nil, errorf(http.StatusBadRequest, "ValidationError", "AutoScalingGroup name not found - %s", name)
		}
		if t := form.Get(p + "ResourceType"); t != "" && t != "auto-scaling-group" {
			return nil, errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value '%s' at 'tags.%d.member.resourceType' failed to satisfy constraint: The only supported value is auto-scaling-group", t, i)
		}
		changes = append(changes, change{g, form.Get(p + "Key"), form.Get(p + "Value"), form.Get(p+"PropagateAtLaunch") == "true"})
	}
	for _, ch := range changes {
		if ch.g.tags == nil {
			ch.g.tags, ch.g.propagate = map[string]string{}, map[string]bool{}
		}
		ch.g.tags[ch.key], ch.g.propagate[ch.key] = ch.value, ch.propagate
	}
	return emptyResult{}, nil
}
