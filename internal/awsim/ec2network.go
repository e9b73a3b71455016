package awsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"net/http"
	"net/url"
	"sort"
	"strconv"
)

// Regions, zones, the default VPC and its subnets, and tags: the remaining
// EC2 calls of the simulator, with Auto Scaling's instances and tags.

var simRegions = []string{"us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"}

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
