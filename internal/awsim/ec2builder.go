package awsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"net/http"
	"net/url"
)

// The calls the amazon-ebs builder makes around its instance: key pairs,
// security groups, and a public source image in every region.

// PublicImageOwner is the account that owns the simulator's public source
// images.
const PublicImageOwner = "137112412989"

// PublicImageName is the name of the public source image in every region.
const PublicImageName = "al2023-ami-sim-x86_64"

// publicImage returns the region's public source image, made on first use.
func (s *Server) publicImage(region string) *image {
	sum := sha256.Sum256([]byte(region))
	id := "ami-0" + hex.EncodeToString(sum[:])[:16]
	if im, ok := s.world.images[id]; ok {
		return im
	}
	sn := &snapshot{id: "snap-0" + hex.EncodeToString(sum[8:])[:16], account: PublicImageOwner, region: region, size: 8,
		created: s.now().UTC(), createVolumeUsers: map[string]bool{}}
	s.world.snapshots[sn.id] = sn
	im := &image{id: id, account: PublicImageOwner, region: region, name: PublicImageName, state: "available", rootDevice: "/dev/xvda",
		mappings: []blockMapping{{device: "/dev/xvda", snapshotID: sn.id}}, public: true,
		launchUsers: map[string]bool{}, launchOrgs: map[string]bool{}, launchOUs: map[string]bool{}, created: s.now().UTC()}
	s.world.images[id] = im
	return im
}

func (s *Server) ec2CreateKeyPair(c caller, form url.Values) (any, error) {
	name := form.Get("KeyName")
	if name == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter KeyName")
	}
	k := c.account + "/" + c.region + "/" + name
	if s.world.keyPairs[k] {
		return nil, errorf(http.StatusBadRequest, "InvalidKeyPair.Duplicate", "The keypair '%s' already exists.", name)
	}
	s.world.keyPairs[k] = true
	return struct {
		XMLName     xml.Name `xml:"R"`
		KeyName     string   `xml:"keyName"`
		Fingerprint string   `xml:"keyFingerprint"`
		Material    string   `xml:"keyMaterial"`
		KeyPairID   string   `xml:"keyPairId"`
	}{KeyName: name, Fingerprint: "1f:51:ae:28:bf:89:e9:d8:1f:25:5d:37:2d:7d:b8:ca:9f:f5:f1:6f",
		Material: "-----BEGIN RSA PRIVATE KEY-----\nc2ltdWxhdGVk\n-----END RSA PRIVATE KEY-----", KeyPairID: newID("key-", 9)[:21]}, nil
}

func (s *Server) ec2DeleteKeyPair(c caller, form url.Values) (any, error) {
	delete(s.world.keyPairs, c.account+"/"+c.region+"/"+form.Get("KeyName"))
	return returnTrue{Return: true}, nil
}

type securityGroup struct {
	id, name, account, region, description string
}

func (s *Server) ec2CreateSecurityGroup(c caller, form url.Values) (any, error) {
	name := form.Get("GroupName")
	if name == "" || form.Get("GroupDescription") == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameters GroupName and GroupDescription")
	}
	for _, g := range s.world.securityGroups {
		if g.account == c.account && g.region == c.region && g.name == name {
			return nil, errorf(http.StatusBadRequest, "InvalidGroup.Duplicate", "The security group '%s' already exists", name)
		}
	}
	g := &securityGroup{id: newID("sg-", 9)[:20], name: name, account: c.account, region: c.region, description: form.Get("GroupDescription")}
	s.world.securityGroups[g.id] = g
	return struct {
		XMLName xml.Name `xml:"R"`
		Return  bool     `xml:"return"`
		GroupID string   `xml:"groupId"`
	}{Return: true, GroupID: g.id}, nil
}

func (s *Server) ec2DescribeSecurityGroups(c caller, form url.Values) (any, error) {
	ids := indexed(form, "GroupId")
	type sgXML struct {
		OwnerID     string `xml:"ownerId"`
		GroupID     string `xml:"groupId"`
		GroupName   string `xml:"groupName"`
		Description string `xml:"groupDescription"`
		VpcID       string `xml:"vpcId"`
	}
	var out []sgXML
	for _, id := range ids {
		g, ok := s.world.securityGroups[id]
		if !ok || g.account != c.account || g.region != c.region {
			return nil, errorf(http.StatusBadRequest, "InvalidGroup.NotFound", "The security group '%s' does not exist", id)
		}
		out = append(out, sgXML{c.account, g.id, g.name, g.description, defaultVPC(c)})
	}
	if len(ids) == 0 {
		for _, g := range s.world.securityGroups {
			if g.account == c.account && g.region == c.region {
				out = append(out, sgXML{c.account, g.id, g.name, g.description, defaultVPC(c)})
			}
		}
	}
	return struct {
		XMLName xml.Name `xml:"R"`
		Groups  []sgXML  `xml:"securityGroupInfo>item"`
	}{Groups: out}, nil
}

func (s *Server) ec2AuthorizeIngress(c caller, form url.Values) (any, error) {
	if g, ok := s.world.securityGroups[form.Get("GroupId")]; !ok || g.account != c.account {
		return nil, errorf(http.StatusBadRequest, "InvalidGroup.NotFound", "The security group '%s' does not exist", form.Get("GroupId"))
	}
	return returnTrue{Return: true}, nil
}

func (s *Server) ec2DeleteSecurityGroup(c caller, form url.Values) (any, error) {
	g, ok := s.world.securityGroups[form.Get("GroupId")]
	if !ok || g.account != c.account {
		return nil, errorf(http.StatusBadRequest, "InvalidGroup.NotFound", "The security group '%s' does not exist", form.Get("GroupId"))
	}
	delete(s.world.securityGroups, g.id)
	return returnTrue{Return: true}, nil
}
