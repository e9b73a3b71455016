package awsim

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"
)

// Instances: RunInstances and the launch it makes (which uses the
// volumes' keys on the caller's behalf), DescribeInstances, and state
// changes.

type instance struct {
	id, account, region, imageID, instanceType string
	reservationID, clientToken                 string
	zone, subnetID, vpcID                      string
	// templateID and templateVersion are the launch template version an
	// Auto Scaling group launched the instance from.
	templateID, templateVersion         string
	state                               string
	stateReasonCode, stateReasonMessage string
	volumes                             []string
	launched                            time.Time
}

// runRecord is what a RunInstances call with a client token launched, so
// that the same call again answers the same reservation.
type runRecord struct {
	reservationID string
	instances     []string
	params        string // the request without Action, Version, ClientToken
}

func newReservationID() string { return newID("r-", 9)[:19] }

// runParams is what two RunInstances calls with the same client token
// must share: every parameter but the token itself.
func runParams(form url.Values) string {
	p := url.Values{}
	for k, v := range form {
		if k != "Action" && k != "Version" && k != "ClientToken" {
			p[k] = v
		}
	}
	return p.Encode()
}

type runResult struct {
	XMLName   xml.Name      `xml:"R"`
	ReserveID string        `xml:"reservationId"`
	OwnerID   string        `xml:"ownerId"`
	Instances []instanceXML `xml:"instancesSet>item"`
}

// ec2RunInstances launches MaxCount instances (EC2 launches as many as it
// can, and the simulator has no capacity limit) in one reservation, in
// SubnetId's zone or the first zone's default subnet, tagged from
// TagSpecification (instance, volume). A ClientToken makes it idempotent:
// the same request with the same token answers the first launch again and
// launches nothing; the token with another request is
// IdempotentParameterMismatch.
func (s *Server) ec2RunInstances(c caller, form url.Values) (any, error) {
	s.publicImage(c.region)
	token := form.Get("ClientToken")
	tokenKey := c.account + "/" + c.region + "/" + token
	if rec, ok := s.world.clientTokens[tokenKey]; ok && token != "" {
		if rec.params != runParams(form) {
			return nil, errorf(http.StatusBadRequest, "IdempotentParameterMismatch", "The request uses the same client token as a previous, but non-identical request. Do not reuse a client token with different requests, unless the requests are identical.")
		}
		out := runResult{ReserveID: rec.reservationID, OwnerID: c.account}
		for _, id := range rec.instances {
			out.Instances = append(out.Instances, s.instanceXML(s.world.instances[id]))
		}
		return out, nil
	}
	im, ok := s.world.images[form.Get("ImageId")]
	if !ok || im.region != c.region || !s.canSee(im, c.account) {
		return nil, errorf(http.StatusBadRequest, "InvalidAMIID.NotFound", "The image id '[%s]' does not exist", form.Get("ImageId"))
	}
	min, max := form.Get("MinCount"), form.Get("MaxCount")
	if min == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter MinCount")
	}
	minCount, err := strconv.Atoi(min)
	if err != nil || minCount < 1 {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "Invalid value '%s' for parameter minCount. It must be at least 1.", min)
	}
	count := minCount
	if max != "" {
		n, err := strconv.Atoi(max)
		if err != nil || n < minCount {
			return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "Invalid value '%s' for parameter maxCount. The maxCount must be equal to or greater than the minCount '%d'.", max, minCount)
		}
		count = n
	}
	tags, err := readTagSpecifications(form, "TagSpecification", []string{"instance", "volume", "spot-instances-request", "network-interface"})
	if err != nil {
		return nil, err
	}
	spec := launchSpec{image: im, instanceType: orDefault(form.Get("InstanceType"), "m1.small"), reservationID: newReservationID(), clientToken: token,
		zone: orDefault(form.Get("Placement.AvailabilityZone"), c.region+"a")}
	if id := form.Get("SubnetId"); id != "" {
		zone, ok := subnetZone(c, id)
		if !ok {
			return nil, errorf(http.StatusBadRequest, "InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
		spec.subnetID, spec.zone = id, zone
	} else if !containsString(zones(c.region), spec.zone) {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "Invalid availability zone: [%s]", spec.zone)
	}
	out := runResult{ReserveID: spec.reservationID, OwnerID: c.account}
	rec := &runRecord{reservationID: spec.reservationID, params: runParams(form)}
	for i := 0; i < count; i++ {
		in := s.launch(c, spec)
		s.tagResource(c, in.id, tags["instance"])
		for _, v := range in.volumes {
			s.tagResource(c, v, tags["volume"])
		}
		rec.instances = append(rec.instances, in.id)
		x := s.instanceXML(in)
		// EC2 accepts the launch; a failure shows later, in DescribeInstances.
		x.InstanceState.Code, x.InstanceState.Name = stateCodes["pending"], "pending"
		x.StateReason, x.StateTransitionReason = nil, ""
		out.Instances = append(out.Instances, x)
	}
	if token != "" {
		s.world.clientTokens[tokenKey] = rec
	}
	return out, nil
}

// launchSpec is what a launch needs besides the caller.
type launchSpec struct {
	image                       *image
	instanceType                string
	zone, subnetID              string // the subnet defaults to the zone's default subnet
	invokedBy                   string
	reservationID, clientToken  string
	templateID, templateVersion string
}

// launch starts an instance from the image. Like EC2, it accepts the launch
// and then fails it: when a volume's key cannot be used, the instance goes
// from pending to terminated with Client.InternalError.
func (s *Server) launch(c caller, spec launchSpec) *instance {
	im := spec.image
	in := &instance{id: newID("i-", 9)[:19], account: c.account, region: c.region, imageID: im.id, instanceType: spec.instanceType,
		reservationID: spec.reservationID, clientToken: spec.clientToken, zone: spec.zone, subnetID: spec.subnetID, vpcID: defaultVPC(c),
		templateID: spec.templateID, templateVersion: spec.templateVersion, state: "pending", launched: s.now().UTC()}
	if in.subnetID == "" {
		in.subnetID = defaultSubnet(c, in.zone)
	}
	volID := newID("vol-", 9)[:21]
	for _, m := range im.mappings {
		sn := s.world.snapshots[m.snapshotID]
		if sn == nil || !sn.encrypted {
			continue
		}
		k := s.world.keys[sn.keyARN]
		if err := s.useKeyThroughEC2(c, k, volID, spec.invokedBy); err != nil {
			ae := err.(*apiError)
			in.state = "terminated"
			in.stateReasonCode = ae.code
			in.stateReasonMessage = ae.code + ": " + ae.message
			break
		}
	}
	if in.state == "pending" {
		in.state = "running"
		for i, m := range im.mappings {
			sn := s.world.snapshots[m.snapshotID]
			v := &volume{id: volID, account: c.account, region: c.region, az: in.zone, snapshotID: m.snapshotID,
				instanceID: in.id, device: m.device, created: s.now().UTC(), size: 8}
			if i > 0 {
				v.id = newID("vol-", 9)[:21]
			}
			if sn != nil {
				v.size, v.encrypted, v.keyARN = sn.size, sn.encrypted, sn.keyARN
			}
			s.world.volumes[v.id] = v
			in.volumes = append(in.volumes, v.id)
		}
	}
	s.world.instances[in.id] = in
	return in
}

// terminate terminates an instance and deletes its volumes
// (DeleteOnTermination).
func (s *Server) terminate(in *instance) {
	in.state = "terminated"
	for _, v := range in.volumes {
		delete(s.world.volumes, v)
		delete(s.world.tags, v)
		delete(s.world.tagOwners, v)
	}
	in.volumes = nil
}

type instanceXML struct {
	InstanceID    string `xml:"instanceId"`
	ImageID       string `xml:"imageId"`
	InstanceState struct {
		Code int    `xml:"code"`
		Name string `xml:"name"`
	} `xml:"instanceState"`
	StateTransitionReason string    `xml:"reason"`
	Tags                  []tagItem `xml:"tagSet>item"`
	InstanceType          string    `xml:"instanceType"`
	LaunchTime            string    `xml:"launchTime"`
	ClientToken           string    `xml:"clientToken,omitempty"`
	SubnetID              string    `xml:"subnetId,omitempty"`
	VpcID                 string    `xml:"vpcId,omitempty"`
	StateReason           *struct {
		Code    string `xml:"code"`
		Message string `xml:"message"`
	} `xml:"stateReason,omitempty"`
	Placement struct {
		AZ string `xml:"availabilityZone"`
	} `xml:"placement"`
	RootDeviceType string `xml:"rootDeviceType"`
	RootDeviceName string `xml:"rootDeviceName"`
	Mappings       []struct {
		DeviceName string `xml:"deviceName"`
		Ebs        struct {
			VolumeID            string `xml:"volumeId"`
			Status              string `xml:"status"`
			DeleteOnTermination bool   `xml:"deleteOnTermination"`
		} `xml:"ebs"`
	} `xml:"blockDeviceMapping>item"`
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

func (s *Server) instanceXML(in *instance) instanceXML {
	x := instanceXML{InstanceID: in.id, ImageID: in.imageID, InstanceType: in.instanceType, LaunchTime: in.launched.Format(time.RFC3339),
		ClientToken: in.clientToken, SubnetID: in.subnetID, VpcID: in.vpcID, RootDeviceType: "ebs", RootDeviceName: "/dev/xvda"}
	x.Placement.AZ = in.zone
	x.Tags = s.tagItems(in.id)
	for _, id := range in.volumes {
		v := s.world.volumes[id]
		if v == nil {
			continue
		}
		m := struct {
			DeviceName string `xml:"deviceName"`
			Ebs        struct {
				VolumeID            string `xml:"volumeId"`
				Status              string `xml:"status"`
				DeleteOnTermination bool   `xml:"deleteOnTermination"`
			} `xml:"ebs"`
		}{DeviceName: v.device}
		m.Ebs.VolumeID, m.Ebs.Status, m.Ebs.DeleteOnTermination = v.id, "attached", true
		x.Mappings = append(x.Mappings, m)
	}
	x.InstanceState.Code, x.InstanceState.Name = stateCodes[in.state], in.state
	if in.stateReasonCode != "" {
		x.StateTransitionReason = in.stateReasonCode
		x.StateReason = &struct {
			Code    string `xml:"code"`
			Message string `xml:"message"`
		}{in.stateReasonCode, in.stateReasonMessage}
	}
	return x
}

// ec2DescribeInstances lists the caller's instances (those named, each of
// which must exist), narrowed by the filters, grouped by reservation.
func (s *Server) ec2DescribeInstances(c caller, form url.Values) (any, error) {
	ids := indexed(form, "InstanceId")
	f := filters(form)
	var matched []*instance
	for _, id := range ids {
		in, ok := s.world.instances[id]
		if !ok || in.account != c.account || in.region != c.region {
			return nil, errorf(http.StatusBadRequest, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
		if s.instanceFilters(f, in) {
			matched = append(matched, in)
		}
	}
	if len(ids) == 0 {
		for _, in := range s.world.instances {
			if in.account == c.account && in.region == c.region && s.instanceFilters(f, in) {
				matched = append(matched, in)
			}
		}
	}
	sort.Slice(matched, func(i, j int) bool {
		if matched[i].launched.Equal(matched[j].launched) {
			return matched[i].id < matched[j].id
		}
		return matched[i].launched.Before(matched[j].launched)
	})
	type reservation struct {
		ReservationID string        `xml:"reservationId"`
		OwnerID       string        `xml:"ownerId"`
		Instances     []instanceXML `xml:"instancesSet>item"`
	}
	var res []*reservation
	byID := map[string]*reservation{}
	for _, in := range matched {
		r, ok := byID[in.reservationID]
		if !ok {
			r = &reservation{ReservationID: in.reservationID, OwnerID: c.account}
			byID[in.reservationID] = r
			res = append(res, r)
		}
		r.Instances = append(r.Instances, s.instanceXML(in))
	}
	return struct {
		XMLName      xml.Name       `xml:"R"`
		Reservations []*reservation `xml:"reservationSet>item"`
	}{Reservations: res}, nil
}

// instanceFilters applies DescribeInstances' filters (AND across filters,
// OR within one, '*' and '?' wildcards). Filters the simulator does not
// model do not narrow.
func (s *Server) instanceFilters(f map[string][]string, in *instance) bool {
	for name, values := range f {
		if ok, known := tagFilter(name, values, s.world.tags[in.id]); known {
			if !ok {
				return false
			}
			continue
		}
		var v string
		switch name {
		case "instance-state-name":
			v = in.state
		case "instance-state-code":
			v = strconv.Itoa(stateCodes[in.state])
		case "image-id":
			v = in.imageID
		case "instance-id":
			v = in.id
		case "instance-type":
			v = in.instanceType
		case "availability-zone":
			v = in.zone
		case "subnet-id":
			v = in.subnetID
		case "vpc-id":
			v = in.vpcID
		case "reservation-id":
			v = in.reservationID
		case "client-token":
			v = in.clientToken
		case "owner-id":
			v = in.account
		default:
			continue
		}
		if !matchFilter(values, v) {
			return false
		}
	}
	return true
}

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
