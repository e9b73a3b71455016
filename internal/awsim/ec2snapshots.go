package awsim

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"
)

// EBS snapshots and their create-volume permissions.

type snapshot struct {
	id, account, region, volumeID string
	size                          int
	encrypted                     bool
	keyARN                        string
	created                       time.Time
	createVolumeUsers             map[string]bool
}

func (s *Server) ec2CreateSnapshot(c caller, form url.Values) (any, error) {
	v, ok := s.world.volumes[form.Get("VolumeId")]
	if !ok || v.account != c.account || v.region != c.region {
		return nil, errorf(http.StatusBadRequest, "InvalidVolume.NotFound", "The volume '%s' does not exist.", form.Get("VolumeId"))
	}
	sn := &snapshot{id: newID("snap-", 9)[:22], account: c.account, region: c.region, volumeID: v.id, size: v.size,
		encrypted: v.encrypted, keyARN: v.keyARN, created: s.now().UTC(), createVolumeUsers: map[string]bool{}}
	s.world.snapshots[sn.id] = sn
	return struct {
		XMLName xml.Name `xml:"R"`
		snapshotXML
	}{snapshotXML: sn.xml()}, nil
}

type snapshotXML struct {
	SnapshotID string `xml:"snapshotId"`
	VolumeID   string `xml:"volumeId"`
	Status     string `xml:"status"`
	StartTime  string `xml:"startTime"`
	Progress   string `xml:"progress"`
	OwnerID    string `xml:"ownerId"`
	VolumeSize int    `xml:"volumeSize"`
	Encrypted  bool   `xml:"encrypted"`
	KmsKeyID   string `xml:"kmsKeyId,omitempty"`
}

func (sn *snapshot) xml() snapshotXML {
	return snapshotXML{SnapshotID: sn.id, VolumeID: sn.volumeID, Status: "completed", StartTime: sn.created.Format(time.RFC3339),
		Progress: "100%", OwnerID: sn.account, VolumeSize: sn.size, Encrypted: sn.encrypted, KmsKeyID: sn.keyARN}
}

func (s *Server) ec2DescribeSnapshots(c caller, form url.Values) (any, error) {
	ids := indexed(form, "SnapshotId")
	var items []snapshotXML
	for _, id := range ids {
		sn, ok := s.world.snapshots[id]
		if !ok || sn.region != c.region || (sn.account != c.account && !sn.createVolumeUsers[c.account]) {
			return nil, errorf(http.StatusBadRequest, "InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
		}
		items = append(items, sn.xml())
	}
	if len(ids) == 0 {
		for _, sn := range s.world.snapshots {
			if sn.account == c.account && sn.region == c.region {
				items = append(items, sn.xml())
			}
		}
		sort.Slice(items, func(i, j int) bool { return items[i].SnapshotID < items[j].SnapshotID })
	}
	return struct {
		XMLName xml.Name      `xml:"R"`
		Items   []snapshotXML `xml:"snapshotSet>item"`
	}{Items: items}, nil
}

func (s *Server) ownSnapshot(c caller, id string) (*snapshot, error) {
	sn, ok := s.world.snapshots[id]
	if !ok || sn.account != c.account || sn.region != c.region {
		return nil, errorf(http.StatusBadRequest, "InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
	}
	return sn, nil
}

// ec2ModifySnapshotAttribute accepts both request forms: the
// CreateVolumePermission structure and the older
// OperationType/UserId.N parameters.
func (s *Server) ec2ModifySnapshotAttribute(c caller, form url.Values) (any, error) {
	sn, err := s.ownSnapshot(c, form.Get("SnapshotId"))
	if err != nil {
		return nil, err
	}
	var changes []func()
	apply := func(user string, add bool) error {
		if !validAccount(user) {
			return errorf(http.StatusBadRequest, "InvalidParameterValue", "Value (%s) for parameter userId is invalid.", user)
		}
		changes = append(changes, func() { setMember(sn.createVolumeUsers, user, add) })
		return nil
	}
	for _, verb := range []string{"Add", "Remove"} {
		for i := 1; ; i++ {
			user := form.Get("CreateVolumePermission." + verb + "." + strconv.Itoa(i) + ".UserId")
			if user == "" {
				break
			}
			if err := apply(user, verb == "Add"); err != nil {
				return nil, err
			}
		}
	}
	if op := form.Get("OperationType"); op != "" {
		if op != "add" && op != "remove" {
			return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "Value (%s) for parameter operationType is invalid.", op)
		}
		for _, user := range indexed(form, "UserId") {
			if err := apply(user, op == "add"); err != nil {
				return nil, err
			}
		}
	}
	if form.Get("DryRun") == "true" {
		return nil, errDryRunEC2()
	}
	for _, change := range changes {
		change()
	}
	return returnTrue{Return: true}, nil
}

func (s *Server) ec2DescribeSnapshotAttribute(c caller, form url.Values) (any, error) {
	sn, err := s.ownSnapshot(c, form.Get("SnapshotId"))
	if err != nil {
		return nil, err
	}
	if form.Get("Attribute") != "createVolumePermission" {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "Value (%s) for parameter attribute is invalid.", form.Get("Attribute"))
	}
	type perm struct {
		UserID string `xml:"userId"`
	}
	var perms []perm
	for _, u := range sortedKeys(sn.createVolumeUsers) {
		perms = append(perms, perm{UserID: u})
	}
	return struct {
		XMLName    xml.Name `xml:"R"`
		SnapshotID string   `xml:"snapshotId"`
		Perms      []perm   `xml:"createVolumePermission>item"`
	}{SnapshotID: sn.id, Perms: perms}, nil
}

func (s *Server) ec2DeleteSnapshot(c caller, form url.Values) (any, error) {
	sn, err := s.ownSnapshot(c, form.Get("SnapshotId"))
	if err != nil {
		return nil, err
	}
	for _, im := range s.world.images {
		for _, m := range im.mappings {
			if m.snapshotID == sn.id {
				return nil, errorf(http.StatusBadRequest, "InvalidSnapshot.InUse", "The snapshot %s is currently in use by %s", sn.id, im.id)
			}
		}
	}
	delete(s.world.snapshots, sn.id)
	return returnTrue{Return: true}, nil
}
