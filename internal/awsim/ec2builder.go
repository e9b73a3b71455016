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

// The calls the amazon-ebs builder makes around RunInstances and
// CreateImage: key pairs, security groups, volumes, and a public source
// image in every region.

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

func (s *Server) ec2CreateImage(c caller, form url.Values) (any, error) {
	in, ok := s.world.instances[form.Get("InstanceId")]
	if !ok || in.account != c.account || in.region != c.region {
		return nil, errorf(http.StatusBadRequest, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", form.Get("InstanceId"))
	}
	name := form.Get("Name")
	if name == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter Name")
	}
	for _, im := range s.world.images {
		if im.account == c.account && im.region == c.region && im.name == name {
			return nil, errorf(http.StatusBadRequest, "InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI %s", name, im.id)
		}
	}
	img := &image{id: newID("ami-", 9)[:21], account: c.account, region: c.region, name: name, state: "available",
		launchUsers: map[string]bool{}, launchOrgs: map[string]bool{}, launchOUs: map[string]bool{}, created: s.now().UTC()}
	for _, volID := range in.volumes {
		v := s.world.volumes[volID]
		sn := &snapshot{id: newID("snap-", 9)[:22], account: c.account, region: c.region, volumeID: v.id, size: v.size,
			encrypted: v.encrypted, keyARN: v.keyARN, created: s.now().UTC(), createVolumeUsers: map[string]bool{}}
		s.world.snapshots[sn.id] = sn
		img.mappings = append(img.mappings, blockMapping{device: v.device, snapshotID: sn.id})
	}
	if len(img.mappings) > 0 {
		img.rootDevice = img.mappings[0].device
	}
	s.world.images[img.id] = img
	return struct {
		XMLName xml.Name `xml:"R"`
		ImageID string   `xml:"imageId"`
	}{ImageID: img.id}, nil
}

type volumeXML struct {
	VolumeID    string `xml:"volumeId"`
	Size        int    `xml:"size"`
	SnapshotID  string `xml:"snapshotId"`
	AZ          string `xml:"availabilityZone"`
	Status      string `xml:"status"`
	CreateTime  string `xml:"createTime"`
	Encrypted   bool   `xml:"encrypted"`
	KmsKeyID    string `xml:"kmsKeyId,omitempty"`
	VolumeType  string `xml:"volumeType"`
	Attachments []struct {
		VolumeID   string `xml:"volumeId"`
		InstanceID string `xml:"instanceId"`
		Device     string `xml:"device"`
		Status     string `xml:"status"`
	} `xml:"attachmentSet>item"`
}

func (s *Server) ec2DescribeVolumes(c caller, form url.Values) (any, error) {
	ids := indexed(form, "VolumeId")
	f := filters(form)
	var out []volumeXML
	for _, v := range s.world.volumes {
		if v.account != c.account || v.region != c.region || (len(ids) > 0 && !containsString(ids, v.id)) {
			continue
		}
		if vals, ok := f["attachment.instance-id"]; ok && !matchFilter(vals, v.instanceID) {
			continue
		}
		x := volumeXML{VolumeID: v.id, Size: v.size, SnapshotID: v.snapshotID, AZ: v.az, Status: "available", CreateTime: v.created.Format("2006-01-02T15:04:05.000Z"),
			Encrypted: v.encrypted, KmsKeyID: v.keyARN, VolumeType: "gp3"}
		if v.instanceID != "" {
			x.Status = "in-use"
			x.Attachments = append(x.Attachments, struct {
				VolumeID   string `xml:"volumeId"`
				InstanceID string `xml:"instanceId"`
				Device     string `xml:"device"`
				Status     string `xml:"status"`
			}{v.id, v.instanceID, v.device, "attached"})
		}
		out = append(out, x)
	}
	for _, id := range ids {
		if v, ok := s.world.volumes[id]; !ok || v.account != c.account {
			return nil, errorf(http.StatusBadRequest, "InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VolumeID < out[j].VolumeID })
	return struct {
		XMLName xml.Name    `xml:"R"`
		Volumes []volumeXML `xml:"volumeSet>item"`
	}{Volumes: out}, nil
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

// defaultVPC is the account's default VPC in the region.
func defaultVPC(c caller) string {
	sum := sha256.Sum256([]byte(c.account + c.region))
	return "vpc-0" + hex.EncodeToString(sum[:])[:16]
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
