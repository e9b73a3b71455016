package awsim

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Launch templates and their versions. A version keeps its
// LaunchTemplateData as the request sent it (every field, not only the
// ones the simulator acts on), so a version made from a source version
// keeps what it does not override, and DescribeLaunchTemplateVersions
// shows it back.

type launchTemplate struct {
	id, name, account, region string
	createdBy                 string
	versions                  []templateVersion // versions[i].number == i+1
	defaultVersion            int
	created                   time.Time
}

type templateVersion struct {
	number      int
	description string
	// data holds the LaunchTemplateData.* parameters without the prefix:
	// "ImageId", "SecurityGroupId.1", "TagSpecification.1.Tag.1.Key", ...
	data      url.Values
	createdBy string
	created   time.Time
	deleted   bool
}

func (v templateVersion) imageID() string      { return v.data.Get("ImageId") }
func (v templateVersion) instanceType() string { return v.data.Get("InstanceType") }

// tags returns the version's tags for one resource type
// (TagSpecification.N in the template data).
func (v templateVersion) tags(resourceType string) map[string]string {
	tags, _ := readTagSpecifications(v.data, "TagSpecification", nil)
	return tags[resourceType]
}

// latest is the newest version not deleted (the default one never is).
func (lt *launchTemplate) latest() templateVersion {
	for i := len(lt.versions) - 1; i >= 0; i-- {
		if !lt.versions[i].deleted {
			return lt.versions[i]
		}
	}
	return lt.versions[lt.defaultVersion-1]
}

// number returns the version numbered n, if it exists and is not deleted.
func (lt *launchTemplate) number(n int) (templateVersion, bool) {
	if n < 1 || n > len(lt.versions) || lt.versions[n-1].deleted {
		return templateVersion{}, false
	}
	return lt.versions[n-1], true
}

// resolve reads a version as launches and DescribeLaunchTemplateVersions
// name it: "$Latest", "$Default" (or nothing, which is the default) or a
// number.
func (lt *launchTemplate) resolve(spec string) (templateVersion, error) {
	switch spec {
	case "", "$Default":
		return lt.versions[lt.defaultVersion-1], nil
	case "$Latest":
		return lt.latest(), nil
	}
	if n, err := strconv.Atoi(spec); err == nil {
		if v, ok := lt.number(n); ok {
			return v, nil
		}
	}
	return templateVersion{}, lt.versionNotFound(spec)
}

func (lt *launchTemplate) versionNotFound(spec string) *apiError {
	return errorf(http.StatusBadRequest, "InvalidLaunchTemplateId.VersionNotFound", "Could not find the specified version %s for the launch template with ID %s.", spec, lt.id)
}

// templateData reads LaunchTemplateData.* from a request.
// Its tag specifications may tag what a launch makes.
func templateData(form url.Values) (url.Values, error) {
	out := url.Values{}
	for k, v := range form {
		if rest, ok := strings.CutPrefix(k, "LaunchTemplateData."); ok {
			out[rest] = append([]string(nil), v...)
		}
	}
	if _, err := readTagSpecifications(out, "TagSpecification", []string{"instance", "volume", "network-interface", "spot-instances-request"}); err != nil {
		return nil, err
	}
	return out, nil
}

// topMember is the LaunchTemplateData member a flattened parameter belongs
// to: "SecurityGroupId" for "SecurityGroupId.2", "IamInstanceProfile" for
// "IamInstanceProfile.Arn".
func topMember(param string) string {
	if i := strings.IndexByte(param, '.'); i >= 0 {
		return param[:i]
	}
	return param
}

// overlay is the data of a version made from src with the request's data:
// each member the request names replaces the source's whole member (a new
// security group list replaces the old one, it does not merge with it).
func overlay(src, req url.Values) url.Values {
	named := map[string]bool{}
	for k := range req {
		named[topMember(k)] = true
	}
	out := url.Values{}
	for k, v := range src {
		if !named[topMember(k)] {
			out[k] = append([]string(nil), v...)
		}
	}
	for k, v := range req {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// responseData renders a version's data as ResponseLaunchTemplateData:
// members in lower camel case, a list "X.N" as "xSet" of "item"s, as EC2
// names them (with its two exceptions below).
type responseData url.Values

type dataNode struct {
	value    string
	hasValue bool
	children map[string]*dataNode
}

func (n *dataNode) child(seg string) *dataNode {
	if n.children == nil {
		n.children = map[string]*dataNode{}
	}
	c, ok := n.children[seg]
	if !ok {
		c = &dataNode{}
		n.children[seg] = c
	}
	return c
}

// listNames are the response names of lists that do not follow the xSet
// pattern, by the parent's request name and the list's.
var listNames = map[string]string{
	"/LicenseSpecification":             "licenseSet",
	"NetworkInterface/SecurityGroupId":  "groupSet",
	"NetworkInterface/PrivateIpAddress": "privateIpAddressesSet",
}

func (d responseData) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	root := &dataNode{}
	for k, v := range d {
		n := root
		for _, seg := range strings.Split(k, ".") {
			n = n.child(seg)
		}
		n.value, n.hasValue = v[0], true
	}
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	if err := encodeChildren(e, "", root); err != nil {
		return err
	}
	return e.EncodeToken(start.End())
}

func isIndex(s string) bool { _, err := strconv.Atoi(s); return err == nil }

func sortedSegments(n *dataNode) []string {
	segs := make([]string, 0, len(n.children))
	for s := range n.children {
		segs = append(segs, s)
	}
	sort.Slice(segs, func(i, j int) bool {
		a, aErr := strconv.Atoi(segs[i])
		b, bErr := strconv.Atoi(segs[j])
		if aErr == nil && bErr == nil {
			return a < b
		}
		return segs[i] < segs[j]
	})
	return segs
}

func encodeChildren(e *xml.Encoder, parent string, n *dataNode) error {
	for _, seg := range sortedSegments(n) {
		c := n.children[seg]
		name := lowerFirst(seg)
		list := false
		for s := range c.children {
			list = isIndex(s)
			break
		}
		if list {
			if alt, ok := listNames[parent+"/"+seg]; ok {
				name = alt
			} else {
				name += "Set"
			}
		}
		start := xml.StartElement{Name: xml.Name{Local: name}}
		if err := e.EncodeToken(start); err != nil {
			return err
		}
		switch {
		case list:
			for _, i := range sortedSegments(c) {
				item := c.children[i]
				if err := e.EncodeToken(xml.StartElement{Name: xml.Name{Local: "item"}}); err != nil {
					return err
				}
				var err error
				if item.hasValue {
					err = e.EncodeToken(xml.CharData(item.value))
				} else {
					err = encodeChildren(e, seg, item)
				}
				if err != nil {
					return err
				}
				if err := e.EncodeToken(xml.EndElement{Name: xml.Name{Local: "item"}}); err != nil {
					return err
				}
			}
		case c.hasValue:
			if err := e.EncodeToken(xml.CharData(c.value)); err != nil {
				return err
			}
		default:
			if err := encodeChildren(e, seg, c); err != nil {
				return err
			}
		}
		if err := e.EncodeToken(start.End()); err != nil {
			return err
		}
	}
	return nil
}

var templateNameRE = regexp.MustCompile(`^[a-zA-Z0-9().\-/_]{3,128}$`)
var templateIDRE = regexp.MustCompile(`^lt-[0-9a-f]{8,17}$`)

// findTemplate finds the caller's template by id, or by name when no id is
// given, with EC2's errors.
func (s *Server) findTemplate(c caller, id, name string) (*launchTemplate, error) {
	if id == "" && name == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter LaunchTemplateName or LaunchTemplateId")
	}
	if id != "" && !templateIDRE.MatchString(id) {
		return nil, errorf(http.StatusBadRequest, "InvalidLaunchTemplateId.Malformed", "The specified ID for the launch template is not valid: %s", id)
	}
	for _, lt := range s.world.templates {
		if lt.account == c.account && lt.region == c.region && (lt.id == id || (id == "" && lt.name == name)) {
			return lt, nil
		}
	}
	if id != "" {
		return nil, errorf(http.StatusBadRequest, "InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
	}
	return nil, errorf(http.StatusBadRequest, "InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", name)
}

func (s *Server) templateParam(c caller, form url.Values) (*launchTemplate, error) {
	return s.findTemplate(c, form.Get("LaunchTemplateId"), form.Get("LaunchTemplateName"))
}

type templateXML struct {
	ID                   string    `xml:"launchTemplateId"`
	Name                 string    `xml:"launchTemplateName"`
	CreateTime           string    `xml:"createTime"`
	CreatedBy            string    `xml:"createdBy"`
	DefaultVersionNumber int       `xml:"defaultVersionNumber"`
	LatestVersionNumber  int       `xml:"latestVersionNumber"`
	Tags                 []tagItem `xml:"tagSet>item"`
}

func (s *Server) templateXML(lt *launchTemplate) templateXML {
	return templateXML{ID: lt.id, Name: lt.name, CreateTime: lt.created.Format(time.RFC3339), CreatedBy: lt.createdBy,
		DefaultVersionNumber: lt.defaultVersion, LatestVersionNumber: lt.latest().number, Tags: s.tagItems(lt.id)}
}

func (s *Server) ec2CreateLaunchTemplate(c caller, form url.Values) (any, error) {
	name := form.Get("LaunchTemplateName")
	if name == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter LaunchTemplateName")
	}
	if !templateNameRE.MatchString(name) {
		return nil, errorf(http.StatusBadRequest, "InvalidLaunchTemplateName.MalformedException", "A launch template name must be between 3 and 128 characters, and may contain letters, numbers, and the following characters: - ( ) . / _.")
	}
	for _, lt := range s.world.templates {
		if lt.account == c.account && lt.region == c.region && lt.name == name {
			return nil, errorf(http.StatusBadRequest, "InvalidLaunchTemplateName.AlreadyExistsException", "Launch template name already in use.")
		}
	}
	tags, err := readTagSpecifications(form, "TagSpecification", []string{"launch-template"})
	if err != nil {
		return nil, err
	}
	data, err := templateData(form)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	lt := &launchTemplate{id: newID("lt-", 9)[:20], name: name, account: c.account, region: c.region, createdBy: c.arn, defaultVersion: 1, created: now,
		versions: []templateVersion{{number: 1, description: form.Get("VersionDescription"), data: data, createdBy: c.arn, created: now}}}
	s.world.templates[lt.id] = lt
	s.tagResource(c, lt.id, tags["launch-template"])
	return struct {
		XMLName xml.Name    `xml:"R"`
		LT      templateXML `xml:"launchTemplate"`
	}{LT: s.templateXML(lt)}, nil
}

// ec2CreateLaunchTemplateVersion makes a version from the request's data,
// on top of SourceVersion's when one is given. SourceVersion is a version
// number; without it the new version holds only what the request names.
func (s *Server) ec2CreateLaunchTemplateVersion(c caller, form url.Values) (any, error) {
	lt, err := s.templateParam(c, form)
	if err != nil {
		return nil, err
	}
	data, err := templateData(form)
	if err != nil {
		return nil, err
	}
	if src := form.Get("SourceVersion"); src != "" {
		n, err := strconv.Atoi(src)
		v, ok := lt.number(n)
		if err != nil || !ok {
			return nil, lt.versionNotFound(src)
		}
		data = overlay(v.data, data)
	}
	v := templateVersion{number: len(lt.versions) + 1, description: form.Get("VersionDescription"), data: data, createdBy: c.arn, created: s.now().UTC()}
	lt.versions = append(lt.versions, v)
	return struct {
		XMLName xml.Name   `xml:"R"`
		Version versionXML `xml:"launchTemplateVersion"`
	}{Version: lt.versionXML(v)}, nil
}

type versionXML struct {
	ID        string       `xml:"launchTemplateId"`
	Name      string       `xml:"launchTemplateName"`
	Number    int          `xml:"versionNumber"`
	Desc      string       `xml:"versionDescription,omitempty"`
	Default   bool         `xml:"defaultVersion"`
	Created   string       `xml:"createTime"`
	CreatedBy string       `xml:"createdBy"`
	Data      responseData `xml:"launchTemplateData"`
}

func (lt *launchTemplate) versionXML(v templateVersion) versionXML {
	return versionXML{ID: lt.id, Name: lt.name, Number: v.number, Desc: v.description, Default: v.number == lt.defaultVersion,
		Created: v.created.Format(time.RFC3339), CreatedBy: v.createdBy, Data: responseData(v.data)}
}

// templateFilters applies DescribeLaunchTemplates' filters: tag:KEY,
// tag-key and launch-template-name (AND across filters, OR within one).
func (s *Server) templateFilters(f map[string][]string, lt *launchTemplate) bool {
	for name, values := range f {
		if name == "launch-template-name" {
			if !matchFilter(values, lt.name) {
				return false
			}
			continue
		}
		if ok, known := tagFilter(name, values, s.world.tags[lt.id]); known && !ok {
			return false
		}
	}
	return true
}

func (s *Server) ec2DescribeLaunchTemplates(c caller, form url.Values) (any, error) {
	ids, names := indexed(form, "LaunchTemplateId"), indexed(form, "LaunchTemplateName")
	for _, id := range ids {
		if !templateIDRE.MatchString(id) {
			return nil, errorf(http.StatusBadRequest, "InvalidLaunchTemplateId.Malformed", "The specified ID for the launch template is not valid: %s", id)
		}
	}
	f := filters(form)
	found := map[string]bool{}
	var out []templateXML
	for _, lt := range s.world.templates {
		if lt.account != c.account || lt.region != c.region {
			continue
		}
		if (len(ids) > 0 && !containsString(ids, lt.id)) || (len(names) > 0 && !containsString(names, lt.name)) {
			continue
		}
		found[lt.id], found[lt.name] = true, true
		if s.templateFilters(f, lt) {
			out = append(out, s.templateXML(lt))
		}
	}
	for _, id := range ids {
		if !found[id] {
			return nil, errorf(http.StatusBadRequest, "InvalidLaunchTemplateId.NotFound", "At least one of the launch templates specified in the request does not exist.")
		}
	}
	for _, n := range names {
		if !found[n] {
			return nil, errorf(http.StatusBadRequest, "InvalidLaunchTemplateName.NotFoundException", "At least one of the launch templates specified in the request does not exist.")
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return struct {
		XMLName   xml.Name      `xml:"R"`
		Templates []templateXML `xml:"launchTemplates>item"`
	}{Templates: out}, nil
}

// ec2DescribeLaunchTemplateVersions lists a template's versions, newest
// first, or those named ("$Latest", "$Default", numbers; one that does not
// exist is an error), within MinVersion/MaxVersion. Without a template it
// lists the $Latest and/or $Default versions of every template.
func (s *Server) ec2DescribeLaunchTemplateVersions(c caller, form url.Values) (any, error) {
	wanted := indexed(form, "LaunchTemplateVersion")
	var out []versionXML
	if form.Get("LaunchTemplateId") == "" && form.Get("LaunchTemplateName") == "" {
		if len(wanted) == 0 {
			return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter LaunchTemplateName or LaunchTemplateId")
		}
		for _, w := range wanted {
			if w != "$Latest" && w != "$Default" {
				return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "Without a launch template, the versions must be $Latest or $Default, not %s.", w)
			}
		}
		var all []*launchTemplate
		for _, lt := range s.world.templates {
			if lt.account == c.account && lt.region == c.region {
				all = append(all, lt)
			}
		}
		sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
		for _, lt := range all {
			seen := map[int]bool{}
			for _, w := range wanted {
				if v, _ := lt.resolve(w); !seen[v.number] {
					seen[v.number] = true
					out = append(out, lt.versionXML(v))
				}
			}
		}
		return versionsResult(out), nil
	}
	lt, err := s.templateParam(c, form)
	if err != nil {
		return nil, err
	}
	include := map[int]bool{}
	for _, w := range wanted {
		v, err := lt.resolve(w)
		if err != nil {
			return nil, err
		}
		include[v.number] = true
	}
	min, max := 0, len(lt.versions)
	if v := form.Get("MinVersion"); v != "" {
		min, _ = strconv.Atoi(v)
	}
	if v := form.Get("MaxVersion"); v != "" {
		max, _ = strconv.Atoi(v)
	}
	for i := len(lt.versions) - 1; i >= 0; i-- {
		v := lt.versions[i]
		if v.deleted || (len(wanted) > 0 && !include[v.number]) || v.number < min || v.number > max {
			continue
		}
		out = append(out, lt.versionXML(v))
	}
	return versionsResult(out), nil
}

func versionsResult(out []versionXML) any {
	return struct {
		XMLName  xml.Name     `xml:"R"`
		Versions []versionXML `xml:"launchTemplateVersionSet>item"`
	}{Versions: out}
}

func (s *Server) ec2DeleteLaunchTemplate(c caller, form url.Values) (any, error) {
	lt, err := s.templateParam(c, form)
	if err != nil {
		return nil, err
	}
	delete(s.world.templates, lt.id)
	delete(s.world.tags, lt.id)
	delete(s.world.tagOwners, lt.id)
	x := s.templateXML(lt)
	x.Tags = nil
	return struct {
		XMLName xml.Name    `xml:"R"`
		LT      templateXML `xml:"launchTemplate"`
	}{LT: x}, nil
}

// ec2DeleteLaunchTemplateVersions deletes versions one by one: each
// version that cannot be deleted (the default one, one that does not exist,
// or any of a template that does not exist) is reported for itself, in
// unsuccessfullyDeletedLaunchTemplateVersionSet, and the call succeeds.
func (s *Server) ec2DeleteLaunchTemplateVersions(c caller, form url.Values) (any, error) {
	specs := indexed(form, "LaunchTemplateVersion")
	if len(specs) == 0 {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter LaunchTemplateVersion")
	}
	type responseError struct {
		Code    string `xml:"code"`
		Message string `xml:"message"`
	}
	type item struct {
		ID      string         `xml:"launchTemplateId,omitempty"`
		Name    string         `xml:"launchTemplateName,omitempty"`
		Version int            `xml:"versionNumber"`
		Error   *responseError `xml:"responseError,omitempty"`
	}
	var ok, failed []item
	lt, err := s.templateParam(c, form)
	if err != nil {
		ae := err.(*apiError)
		code := map[string]string{
			"InvalidLaunchTemplateId.Malformed":           "launchTemplateIdMalformed",
			"InvalidLaunchTemplateId.NotFound":            "launchTemplateIdDoesNotExist",
			"InvalidLaunchTemplateName.NotFoundException": "launchTemplateNameDoesNotExist",
		}[ae.code]
		if code == "" {
			return nil, err
		}
		for _, spec := range specs {
			n, _ := strconv.Atoi(spec)
			failed = append(failed, item{ID: form.Get("LaunchTemplateId"), Name: form.Get("LaunchTemplateName"), Version: n, Error: &responseError{code, ae.message}})
		}
	}
	for _, spec := range specs {
		if lt == nil {
			break
		}
		n, err := strconv.Atoi(spec)
		it := item{ID: lt.id, Name: lt.name, Version: n}
		_, exists := lt.number(n)
		switch {
		case err != nil || !exists:
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
	return struct {
		XMLName xml.Name `xml:"R"`
		OK      []item   `xml:"successfullyDeletedLaunchTemplateVersionSet>item"`
		Failed  []item   `xml:"unsuccessfullyDeletedLaunchTemplateVersionSet>item"`
	}{OK: ok, Failed: failed}, nil
}
