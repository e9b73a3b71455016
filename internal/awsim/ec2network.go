package awsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"
)

// Regions, zones, the default VPC and its subnets, tags and launch
// template versions: the remaining EC2 calls of the simulator.

var simRegions = []string{"us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"}

func init() {
	ec2Ops["DescribeRegions"] = queryOp{false, (*Server).ec2DescribeRegions}
	ec2Ops["DescribeAvailabilityZones"] = queryOp{false, (*Server).ec2DescribeZones}
	ec2Ops["DescribeVpcs"] = queryOp{false, (*Server).ec2DescribeVpcs}
	ec2Ops["DescribeSubnets"] = queryOp{false, (*Server).ec2DescribeSubnets}
	ec2Ops["CreateTags"] = queryOp{true, (*Server).ec2CreateTags}
	ec2Ops["DescribeTags"] = queryOp{false, (*Server).ec2DescribeTags}
	ec2Ops["CreateLaunchTemplateVersion"] = queryOp{true, (*Server).ec2CreateLaunchTemplateVersion}
	ec2Ops["DescribeLaunchTemplates"] = queryOp{false, (*Server).ec2DescribeLaunchTemplates}
	ec2Ops["DescribeLaunchTemplateVersions"] = queryOp{false, (*Server).ec2DescribeLaunchTemplateVersions}
	ec2Ops["DeleteLaunchTemplate"] = queryOp{true, (*Server).ec2DeleteLaunchTemplate}
	queryOps["autoscaling"]["DescribeAutoScalingInstances"] = queryOp{false, (*Server).asDescribeInstances}
	queryOps["autoscaling"]["CreateOrUpdateTags"] = queryOp{true, (*Server).asCreateOrUpdateTags}
}

func zones(region string) []string { return []string{region + "a", region + "b", region + "c"} }

func (s *Server) ec2DescribeRegions(c caller, _ url.Values) (any, error) {
	type regionXML struct {
		Name     string `xml:"regionName"`
		Endpoint string `xml:"regionEndpoint"`
		Opt      string `xml:"optInStatus"`
	}
	var out []regionXML
	for _, r := range simRegions {
		out = append(out, regionXML{r, "ec2." + r + ".amazonaws.com", "opt-in-not-required"})
	}
	return struct {
		XMLName xml.Name    `xml:"R"`
		Regions []regionXML `xml:"regionInfo>item"`
	}{Regions: out}, nil
}

func (s *Server) ec2DescribeZones(c caller, _ url.Values) (any, error) {
	type zoneXML struct {
		Name   string `xml:"zoneName"`
		State  string `xml:"zoneState"`
		Region string `xml:"regionName"`
		ID     string `xml:"zoneId"`
	}
	var out []zoneXML
	for i, z := range zones(c.region) {
		out = append(out, zoneXML{z, "available", c.region, c.region[:3] + "-az" + strconv.Itoa(i+1)})
	}
	return struct {
		XMLName xml.Name  `xml:"R"`
		Zones   []zoneXML `xml:"availabilityZoneInfo>item"`
	}{Zones: out}, nil
}

func (s *Server) ec2DescribeVpcs(c caller, _ url.Values) (any, error) {
	type vpcXML struct {
		ID        string `xml:"vpcId"`
		State     string `xml:"state"`
		CIDR      string `xml:"cidrBlock"`
		IsDefault bool   `xml:"isDefault"`
		OwnerID   string `xml:"ownerId"`
	}
	return struct {
		XMLName xml.Name `xml:"R"`
		Vpcs    []vpcXML `xml:"vpcSet>item"`
	}{Vpcs: []vpcXML{{defaultVPC(c), "available", "172.31.0.0/16", true, c.account}}}, nil
}

// defaultSubnet is the default VPC's subnet in a zone.
func defaultSubnet(c caller, zone string) string {
	sum := sha256.Sum256([]byte(c.account + zone))
	return "subnet-0" + hex.EncodeToString(sum[:])[:16]
}

func (s *Server) ec2DescribeSubnets(c caller, form url.Values) (any, error) {
	type subnetXML struct {
		ID        string `xml:"subnetId"`
		State     string `xml:"state"`
		VpcID     string `xml:"vpcId"`
		CIDR      string `xml:"cidrBlock"`
		Zone      string `xml:"availabilityZone"`
		Default   bool   `xml:"defaultForAz"`
		MapPublic bool   `xml:"mapPublicIpOnLaunch"`
		Available int    `xml:"availableIpAddressCount"`
		OwnerID   string `xml:"ownerId"`
	}
	ids := indexed(form, "SubnetId")
	var out []subnetXML
	for i, z := range zones(c.region) {
		id := defaultSubnet(c, z)
		if len(ids) > 0 && !containsString(ids, id) {
			continue
		}
		out = append(out, subnetXML{id, "available", defaultVPC(c), "172.31." + strconv.Itoa(i*16) + ".0/20", z, true, true, 4091, c.account})
	}
	for _, id := range ids {
		found := false
		for _, o := range out {
			found = found || o.ID == id
		}
		if !found {
			return nil, errorf(http.StatusBadRequest, "InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
	}
	return struct {
		XMLName xml.Name    `xml:"R"`
		Subnets []subnetXML `xml:"subnetSet>item"`
	}{Subnets: out}, nil
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

func (s *Server) templateParam(c caller, form url.Values) (*launchTemplate, error) {
	return s.findTemplate(c, form.Get("LaunchTemplateId"), form.Get("LaunchTemplateName"))
}

func (s *Server) ec2CreateLaunchTemplateVersion(c caller, form url.Values) (any, error) {
	lt, err := s.templateParam(c, form)
	if err != nil {
		return nil, err
	}
	v := lt.latest() // the new version starts from the source version, then overrides
	if src := form.Get("SourceVersion"); src != "" {
		n, err := strconv.Atoi(src)
		if err != nil || n < 1 || n > len(lt.versions) || lt.versions[n-1].deleted {
			return nil, errorf(http.StatusBadRequest, "InvalidLaunchTemplateId.VersionNotFound", "Could not find launch template version %s", src)
		}
		v = lt.versions[n-1]
	}
	if id := form.Get("LaunchTemplateData.ImageId"); id != "" {
		v.imageID = id
	}
	if t := form.Get("LaunchTemplateData.InstanceType"); t != "" {
		v.instanceType = t
	}
	v.description = form.Get("VersionDescription")
	v.number = len(lt.versions) + 1
	v.created = s.now().UTC()
	lt.versions = append(lt.versions, v)
	return struct {
		XMLName xml.Name   `xml:"R"`
		Version versionXML `xml:"launchTemplateVersion"`
	}{Version: lt.versionXML(v)}, nil
}

type versionXML struct {
	ID      string `xml:"launchTemplateId"`
	Name    string `xml:"launchTemplateName"`
	Number  int    `xml:"versionNumber"`
	Desc    string `xml:"versionDescription,omitempty"`
	Default bool   `xml:"defaultVersion"`
	Created string `xml:"createTime"`
	Data    struct {
		ImageID      string `xml:"imageId"`
		InstanceType string `xml:"instanceType,omitempty"`
	} `xml:"launchTemplateData"`
}

func (lt *launchTemplate) versionXML(v templateVersion) versionXML {
	x := versionXML{ID: lt.id, Name: lt.name, Number: v.number, Desc: v.description, Default: v.number == lt.defaultVersion, Created: v.created.Format(time.RFC3339)}
	x.Data.ImageID, x.Data.InstanceType = v.imageID, v.instanceType
	return x
}

func (s *Server) ec2DescribeLaunchTemplates(c caller, form url.Values) (any, error) {
	ids, names := indexed(form, "LaunchTemplateId"), indexed(form, "LaunchTemplateName")
	type ltXML struct {
		ID      string `xml:"launchTemplateId"`
		Name    string `xml:"launchTemplateName"`
		Created string `xml:"createTime"`
		Default int    `xml:"defaultVersionNumber"`
		Latest  int    `xml:"latestVersionNumber"`
	}
	var out []ltXML
	for _, lt := range s.world.templates {
		if lt.account != c.account || lt.region != c.region {
			continue
		}
		if (len(ids) > 0 && !containsString(ids, lt.id)) || (len(names) > 0 && !containsString(names, lt.name)) {
			continue
		}
		out = append(out, ltXML{lt.id, lt.name, lt.created.Format(time.RFC3339), lt.defaultVersion, len(lt.versions)})
	}
	if len(out) == 0 && (len(ids) > 0 || len(names) > 0) {
		return nil, errorf(http.StatusBadRequest, "InvalidLaunchTemplateId.NotFound", "At least one of the launch templates specified in the request does not exist.")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return struct {
		XMLName   xml.Name `xml:"R"`
		Templates []ltXML  `xml:"launchTemplates>item"`
	}{Templates: out}, nil
}

func (s *Server) ec2DescribeLaunchTemplateVersions(c caller, form url.Values) (any, error) {
	lt, err := s.templateParam(c, form)
	if err != nil {
		return nil, err
	}
	wanted := indexed(form, "LaunchTemplateVersion")
	var out []versionXML
	for _, v := range lt.versions {
		if v.deleted || len(wanted) > 0 && !lt.versionWanted(wanted, v.number) {
			continue
		}
		out = append(out, lt.versionXML(v))
	}
	return struct {
		XMLName  xml.Name     `xml:"R"`
		Versions []versionXML `xml:"launchTemplateVersionSet>item"`
	}{Versions: out}, nil
}

func (lt *launchTemplate) versionWanted(wanted []string, n int) bool {
	for _, w := range wanted {
		switch w {
		case "$Latest":
			if n == lt.latest().number {
				return true
			}
		case "$Default":
			if n == lt.defaultVersion {
				return true
			}
		default:
			if w == strconv.Itoa(n) {
				return true
			}
		}
	}
	return false
}

func (s *Server) ec2DeleteLaunchTemplate(c caller, form url.Values) (any, error) {
	lt, err := s.templateParam(c, form)
	if err != nil {
		return nil, err
	}
	delete(s.world.templates, lt.id)
	return struct {
		XMLName xml.Name `xml:"R"`
		LT      struct {
			ID   string `xml:"launchTemplateId"`
			Name string `xml:"launchTemplateName"`
		} `xml:"launchTemplate"`
	}{LT: struct {
		ID   string `xml:"launchTemplateId"`
		Name string `xml:"launchTemplateName"`
	}{lt.id, lt.name}}, nil
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
		for _, id := range g.instances {
			if len(ids) == 0 || containsString(ids, id) {
				out = append(out, instXML{id, g.name, g.zones[0], "InService", "HEALTHY", false})
			}
		}
	}
	return struct {
		XMLName   xml.Name  `xml:"R"`
		Instances []instXML `xml:"AutoScalingInstances>member"`
	}{Instances: out}, nil
}

func (s *Server) asCreateOrUpdateTags(c caller, form url.Values) (any, error) {
	for i := 1; ; i++ {
		p := "Tags.member." + strconv.Itoa(i) + "."
		name := form.Get(p + "ResourceId")
		if name == "" {
			break
		}
		g, ok := s.world.groups[c.account+"/"+c.region+"/"+name]
		if !ok {
			return nil, errorf(http.StatusBadRequest, "ValidationError", "AutoScalingGroup name not found - %s", name)
		}
		if g.tags == nil {
			g.tags = map[string]string{}
		}
		g.tags[form.Get(p+"Key")] = form.Get(p + "Value")
	}
	return emptyResult{}, nil
}
