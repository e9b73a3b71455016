package awsim

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"
)

// EBS volumes, and each account and region's default EBS encryption.

type volume struct {
	id, account, region, az string
	size                    int
	encrypted               bool
	keyARN                  string
	snapshotID              string
	instanceID, device      string
	created                 time.Time
}

func (s *Server) ec2CreateVolume(c caller, form url.Values) (any, error) {
	az := form.Get("AvailabilityZone")
	if az == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter AvailabilityZone")
	}
	size, _ := strconv.Atoi(form.Get("Size"))
	if size <= 0 {
		size = 8
	}
	v := &volume{id: newID("vol-", 9)[:21], account: c.account, region: c.region, az: az, size: size, created: s.now().UTC()}
	acct := c.account + "/" + c.region
	if form.Get("Encrypted") == "true" || form.Get("KmsKeyId") != "" || s.world.ebsDefault[acct] {
		keyID := form.Get("KmsKeyId")
		if keyID == "" {
			keyID = s.world.ebsDefaultKey[acct]
		}
		k, err := s.ec2Key(c, keyID)
		if err != nil {
			return nil, err
		}
		if err := s.useKeyThroughEC2(c, k, "", ""); err != nil {
			return nil, err
		}
		v.encrypted, v.keyARN = true, k.arn
	}
	s.world.volumes[v.id] = v
	return struct {
		XMLName   xml.Name `xml:"R"`
		VolumeID  string   `xml:"volumeId"`
		Size      int      `xml:"size"`
		AZ        string   `xml:"availabilityZone"`
		Status    string   `xml:"status"`
		Encrypted bool     `xml:"encrypted"`
		KmsKeyID  string   `xml:"kmsKeyId,omitempty"`
	}{VolumeID: v.id, Size: v.size, AZ: az, Status: "available", Encrypted: v.encrypted, KmsKeyID: v.keyARN}, nil
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

// ec2EbsDefault serves the account's default EBS encryption settings.
func ec2EbsDefault(op string) func(*Server, caller, url.Values) (any, error) {
	return func(s *Server, c caller, form url.Values) (any, error) {
		acct := c.account + "/" + c.region
		switch op {
		case "enable":
			s.world.ebsDefault[acct] = true
		case "modify":
			k, err := s.ec2Key(c, form.Get("KmsKeyId"))
			if err != nil {
				return nil, err
			}
			s.world.ebsDefaultKey[acct] = k.arn
		}
		if op == "get" || op == "enable" {
			return struct {
				XMLName xml.Name `xml:"R"`
				On      bool     `xml:"ebsEncryptionByDefault"`
			}{On: s.world.ebsDefault[acct]}, nil
		}
		keyARN := s.world.ebsDefaultKey[acct]
		if keyARN == "" {
			keyARN = "alias/aws/ebs"
		}
		return struct {
			XMLName xml.Name `xml:"R"`
			KeyID   string   `xml:"kmsKeyId"`
		}{KeyID: keyARN}, nil
	}
}
