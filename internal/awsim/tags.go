package awsim

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// This file holds what test launches and their cleanup need: tags given
// at creation, filters by tag, idempotent launches and deleting launch
// template versions.

func init() {
	ec2Ops["DeleteLaunchTemplateVersions"] = queryOp{true, (*Server).ec2DeleteLaunchTemplateVersions}
}

type tagItem struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

// tagSpecifications reads TagSpecification.N.Tag.M for one resource type.
func tagSpecifications(form url.Values, resourceType string) map[string]string {
	tags := map[string]string{}
	for i := 1; ; i++ {
		p := "TagSpecification." + strconv.Itoa(i) + "."
		t := form.Get(p + "ResourceType")
		if t == "" {
			return tags
		}
		if t != resourceType {
			continue
		}
		for j := 1; ; j++ {
			k, ok := form[p+"Tag."+strconv.Itoa(j)+".Key"]
			if !ok {
				break
			}
			tags[k[0]] = form.Get(p + "Tag." + strconv.Itoa(j) + ".Value")
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

func (s *Server) instancesByToken(c caller, token string) []*instance {
	var out []*instance
	for _, in := range s.world.instances {
		if in.account == c.account && in.region == c.region && in.clientToken == token {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// instanceFilters applies DescribeInstances' filters: tag:KEY, tag-key,
// instance-state-name, image-id (AND across filters).
func (s *Server) instanceFilters(f map[string][]string, in *instance) bool {
	tags := s.world.tags[in.id]
	for name, values := range f {
		switch {
		case strings.HasPrefix(name, "tag:"):
			v, ok := tags[strings.TrimPrefix(name, "tag:")]
			if !ok || !matchFilter(values, v) {
				return false
			}
		case name == "tag-key":
			found := false
			for k := range tags {
				found = found || matchFilter(values, k)
			}
			if !found {
				return false
			}
		case name == "instance-state-name":
			if !matchFilter(values, in.state) {
				return false
			}
		case name == "image-id":
			if !matchFilter(values, in.imageID) {
				return false
			}
		}
	}
	return true
}

type groupTag struct {
	ResourceID        string `xml:"ResourceId"`
	ResourceType      string `xml:"ResourceType"`
	Key               string `xml:"Key"`
	Value             string `xml:"Value"`
	PropagateAtLaunch bool   `xml:"PropagateAtLaunch"`
}

// groupTags reads CreateAutoScalingGroup's Tags.member.N.
func groupTags(form url.Values) (map[string]string, map[string]bool) {
	tags, propagate := map[string]string{}, map[string]bool{}
	for i := 1; ; i++ {
		p := "Tags.member." + strconv.Itoa(i) + "."
		k, ok := form[p+"Key"]
		if !ok {
			return tags, propagate
		}
		tags[k[0]] = form.Get(p + "Value")
		propagate[k[0]] = form.Get(p+"PropagateAtLaunch") == "true"
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

func (g *autoScalingGroup) propagatedTags() map[string]string {
	out := map[string]string{}
	for k, v := range g.tags {
		if g.propagate[k] {
			out[k] = v
		}
	}
	return out
}

type groupFilter struct {
	name   string
	values []string
}

// groupFilters reads DescribeAutoScalingGroups' Filters.member.N.
func groupFilters(form url.Values) []groupFilter {
	var out []groupFilter
	for i := 1; ; i++ {
		p := "Filters.member." + strconv.Itoa(i) + "."
		name := form.Get(p + "Name")
		if name == "" {
			return out
		}
		out = append(out, groupFilter{name, members(form, p+"Values")})
	}
}

// matches applies tag-key, tag-value and tag:KEY filters.
func (g *autoScalingGroup) matches(filters []groupFilter) bool {
	for _, f := range filters {
		ok := false
		for k, v := range g.tags {
			switch {
			case f.name == "tag-key":
				ok = ok || containsString(f.values, k)
			case f.name == "tag-value":
				ok = ok || containsString(f.values, v)
			case strings.HasPrefix(f.name, "tag:") && k == strings.TrimPrefix(f.name, "tag:"):
				ok = ok || containsString(f.values, v)
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// ec2DeleteLaunchTemplateVersions deletes versions one by one; the default
// version is refused for itself only, as EC2 does.
func (s *Server) ec2DeleteLaunchTemplateVersions(c caller, form url.Values) (any, error) {
	lt, err := s.templateParam(c, form)
	if err != nil {
		return nil, err
	}
	type responseError struct {
		Code    string `xml:"code"`
		Message string `xml:"message"`
	}
	type item struct {
		ID      string         `xml:"launchTemplateId"`
		Name    string         `xml:"launchTemplateName"`
		Version int            `xml:"versionNumber"`
		Error   *responseError `xml:"responseError,omitempty"`
	}
	var ok, failed []item
	for _, spec := range indexed(form, "LaunchTemplateVersion") {
		n, err := strconv.Atoi(spec)
		it := item{ID: lt.id, Name: lt.name, Version: n}
		switch {
		case err != nil || n < 1 || n > len(lt.versions) || lt.versions[n-1].deleted:
			it.Error = &responseError{"launchTemplateVersionDoesNotExist", "Could not find launch template version " + spec}
			failed = append(failed, it)
		case n == lt.defaultVersion:
			it.Error = &responseError{"launchTemplateVersionIsDefault", "Cannot delete the default version of a launch template"}
			failed = append(failed, it)
		default:
			lt.versions[n-1].deleted = true
			ok = append(ok, it)
		}
	}
	if len(ok)+len(failed) == 0 {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter LaunchTemplateVersion")
	}
	return struct {
		XMLName xml.Name `xml:"R"`
		OK      []item   `xml:"successfullyDeletedLaunchTemplateVersionSet>item"`
		Failed  []item   `xml:"unsuccessfullyDeletedLaunchTemplateVersionSet>item"`
	}{OK: ok, Failed: failed}, nil
}
