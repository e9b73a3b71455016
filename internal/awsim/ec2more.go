package awsim

import (
	"encoding/xml"
	"net/http"
	"net/url"
)

type stateChange struct {
	InstanceID    string `xml:"instanceId"`
	CurrentState  state  `xml:"currentState"`
	PreviousState state  `xml:"previousState"`
}

type state struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

// ec2SetInstanceState serves Stop/Start/TerminateInstances. Starting an
// instance checks its encrypted volumes' keys again, as EC2 does: a key the
// caller cannot use leaves it stopped (third reference write-up).
func ec2SetInstanceState(to string) func(*Server, caller, url.Values) (any, error) {
	return func(s *Server, c caller, form url.Values) (any, error) {
		ids := indexed(form, "InstanceId")
		if len(ids) == 0 {
			return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter InstanceId")
		}
		var changes []stateChange
		for _, id := range ids {
			in, ok := s.world.instances[id]
			if !ok || in.account != c.account || in.region != c.region {
				return nil, errorf(http.StatusBadRequest, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
			}
			prev := in.state
			if in.state == "terminated" && to != "terminated" {
				return nil, errorf(http.StatusBadRequest, "IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started.", id)
			}
			next := to
			if to == "running" && prev == "stopped" {
				if im := s.world.images[in.imageID]; im != nil {
					for _, m := range im.mappings {
						if sn := s.world.snapshots[m.snapshotID]; sn != nil && sn.encrypted {
							if err := s.useKeyThroughEC2(c, s.world.keys[sn.keyARN], "", ""); err != nil {
								next = "stopped"
								in.stateReasonCode, in.stateReasonMessage = "Client.InternalError", "Client.InternalError: Client error on launch"
							}
						}
					}
				}
			}
			in.state = next
			if next == "terminated" {
				s.terminate(in)
			}
			changes = append(changes, stateChange{InstanceID: id, CurrentState: state{stateCodes[next], next}, PreviousState: state{stateCodes[prev], prev}})
		}
		return struct {
			XMLName xml.Name      `xml:"R"`
			Changes []stateChange `xml:"instancesSet>item"`
		}{Changes: changes}, nil
	}
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

func (s *Server) ec2DeregisterImage(c caller, form url.Values) (any, error) {
	im, err := s.ownImage(c, form.Get("ImageId"))
	if err != nil {
		return nil, err
	}
	delete(s.world.images, im.id)
	return returnTrue{Return: true}, nil
}

// ec2CopyImage copies a visible image into the caller's account, its
// snapshots re-encrypted with the given key (or the source's, or aws/ebs).
// The caller must be able to use the source key and the destination key
// through EC2, and see the source snapshots.
func (s *Server) ec2CopyImage(c caller, form url.Values) (any, error) {
	name := form.Get("Name")
	if name == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter Name")
	}
	src, ok := s.world.images[form.Get("SourceImageId")]
	if !ok || src.region != form.Get("SourceRegion") || !src.canSee(c.account) {
		return nil, errorf(http.StatusBadRequest, "InvalidAMIID.NotFound", "The image id '[%s]' does not exist", form.Get("SourceImageId"))
	}
	encrypt := form.Get("Encrypted") == "true" || form.Get("KmsKeyId") != ""
	var dstKey *key
	if encrypt {
		k, err := s.ec2Key(c, form.Get("KmsKeyId"))
		if err != nil {
			return nil, err
		}
		dstKey = k
	}
	cp := &image{id: newID("ami-", 9)[:21], account: c.account, region: c.region, name: name, state: "available", rootDevice: src.rootDevice,
		launchUsers: map[string]bool{}, launchOrgs: map[string]bool{}, launchOUs: map[string]bool{}, created: s.now().UTC()}
	var copies []*snapshot
	for _, m := range src.mappings {
		sn := s.world.snapshots[m.snapshotID]
		if sn == nil {
			continue
		}
		if sn.account != c.account && !sn.createVolumeUsers[c.account] {
			return nil, errorf(http.StatusBadRequest, "InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", sn.id)
		}
		key := dstKey
		if sn.encrypted {
			if err := s.useKeyThroughEC2(c, s.world.keys[sn.keyARN], "", ""); err != nil {
				return nil, errorf(http.StatusBadRequest, "InvalidRequest", "The storage for the ami is not available in the source region.")
			}
			if key == nil {
				key = s.world.keys[sn.keyARN]
			}
		}
		if key != nil {
			if err := s.useKeyThroughEC2(c, key, "", ""); err != nil {
				return nil, errorf(http.StatusBadRequest, "InvalidParameter", "Unable to use the KMS key %s", key.arn)
			}
		}
		n := &snapshot{id: newID("snap-", 9)[:22], account: c.account, region: c.region, volumeID: sn.volumeID, size: sn.size,
			created: s.now().UTC(), createVolumeUsers: map[string]bool{}}
		if key != nil {
			n.encrypted, n.keyARN = true, key.arn
		}
		copies = append(copies, n)
		cp.mappings = append(cp.mappings, blockMapping{device: m.device, snapshotID: n.id})
	}
	// Nothing is stored until every snapshot could be copied.
	for _, n := range copies {
		s.world.snapshots[n.id] = n
	}
	s.world.images[cp.id] = cp
	return struct {
		XMLName xml.Name `xml:"R"`
		ImageID string   `xml:"imageId"`
	}{ImageID: cp.id}, nil
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
