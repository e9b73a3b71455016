package awsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"net/http"
	"net/url"
	"strconv"
)

// Regions, zones, the default VPC and its subnets.

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

// defaultVPC is the account's default VPC in the region.
func defaultVPC(c caller) string {
	sum := sha256.Sum256([]byte(c.account + c.region))
	return "vpc-0" + hex.EncodeToString(sum[:])[:16]
}
