package awsim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

const ec2NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

type volume struct {
	id, account, region, az string
	size                    int
	encrypted               bool
	keyARN                  string
	snapshotID              string
	instanceID, device      string
	created                 time.Time
}

type snapshot struct {
	id, account, region, volumeID string
	size                          int
	encrypted                     bool
	keyARN                        string
	created                       time.Time
	createVolumeUsers             map[string]bool
}

type image struct {
	id, account, region, name, state string
	rootDevice                       string
	mappings                         []blockMapping
	launchUsers                      map[string]bool
	public                           bool
	launchOrgs, launchOUs            map[string]bool
	created                          time.Time
}

type blockMapping struct {
	device, snapshotID string
}

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

// ec2Ops are the EC2 operations, and whether they change state.
var ec2Ops = map[string]queryOp{
	"CreateVolume":           {true, (*Server).ec2CreateVolume},
	"CreateSnapshot":         {true, (*Server).ec2CreateSnapshot},
	"DescribeSnapshots":      {false, (*Server).ec2DescribeSnapshots},
	"RegisterImage":          {true, (*Server).ec2RegisterImage},
	"DescribeImages":         {false, (*Server).ec2DescribeImages},
	"ModifyImageAttribute":   {true, (*Server).ec2ModifyImageAttribute},
	"DescribeImageAttribute": {false, (*Server).ec2DescribeImageAttribute},
	"RunInstances":           {true, (*Server).ec2RunInstances},
	"DescribeInstances":      {false, (*Server).ec2DescribeInstances},
}

func writeEC2Error(w http.ResponseWriter, err error) {
	ae, ok := err.(*apiError)
	if !ok {
		ae = errorf(http.StatusInternalServerError, "InternalError", "%v", err)
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(ae.status)
	var msg strings.Builder
	_ = xml.EscapeText(&msg, []byte(ae.message))
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>`,
		ae.code, msg.String(), newUUID())
}

func (s *Server) serveEC2(w http.ResponseWriter, action string, form url.Values, c caller) {
	op, ok := ec2Ops[action]
	if !ok {
		e := errorf(http.StatusBadRequest, "InvalidAction", "The action %s is not valid for this web service.", action)
		s.record(c, "ec2", action, false, e)
		writeEC2Error(w, e)
		return
	}
	if s.throttle(w, c, "ec2", action, form) {
		return
	}
	s.mu.Lock()
	out, err := op.handle(s, c, form)
	s.mu.Unlock()
	// A DryRun call checks and changes nothing.
	s.record(c, "ec2", action, op.mutating && form.Get("DryRun") != "true", err)
	if err != nil {
		writeEC2Error(w, err)
		return
	}
	body, err := xml.Marshal(out)
	if err != nil {
		writeEC2Error(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><%sResponse xmlns="%s"><requestId>%s</requestId>%s</%sResponse>`,
		action, ec2NS, newUUID(), innerXML(body), action)
}

// indexed reads the values of a list parameter: Name.1, Name.2, ...
func indexed(form url.Values, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := form[name+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

func (s *Server) ec2Key(c caller, id string) (*key, error) {
	if id == "" {
		return s.awsEBSKey(c.account, c.region), nil
	}
	k, err := s.findKey(c, id)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "InvalidKMSKey.NotFound", "The KMS key %s was not found", id)
	}
	return k, nil
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

func (s *Server) ec2RegisterImage(c caller, form url.Values) (any, error) {
	name := form.Get("Name")
	if name == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter Name")
	}
	im := &image{id: newID("ami-", 9)[:21], account: c.account, region: c.region, name: name, state: "available",
		rootDevice: form.Get("RootDeviceName"), launchUsers: map[string]bool{}, launchOrgs: map[string]bool{}, launchOUs: map[string]bool{}, created: s.now().UTC()}
	for i := 1; ; i++ {
		p := "BlockDeviceMapping." + strconv.Itoa(i) + "."
		dev := form.Get(p + "DeviceName")
		if dev == "" {
			break
		}
		snapID := form.Get(p + "Ebs.SnapshotId")
		if sn, ok := s.world.snapshots[snapID]; !ok || sn.account != c.account || sn.region != c.region {
			return nil, errorf(http.StatusBadRequest, "InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", snapID)
		}
		im.mappings = append(im.mappings, blockMapping{device: dev, snapshotID: snapID})
	}
	if len(im.mappings) == 0 {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterCombination", "An EBS-backed image needs a block device mapping with a snapshot")
	}
	if im.rootDevice == "" {
		im.rootDevice = im.mappings[0].device
	}
	s.world.images[im.id] = im
	return struct {
		XMLName xml.Name `xml:"R"`
		ImageID string   `xml:"imageId"`
	}{ImageID: im.id}, nil
}

// canSee reports whether the account may describe and launch the image.
func (im *image) canSee(account string) bool {
	return im.account == account || im.public || im.launchUsers[account]
}

type imageXML struct {
	ImageID            string       `xml:"imageId"`
	ImageLocation      string       `xml:"imageLocation"`
	ImageState         string       `xml:"imageState"`
	ImageOwnerID       string       `xml:"imageOwnerId"`
	CreationDate       string       `xml:"creationDate"`
	IsPublic           bool         `xml:"isPublic"`
	Architecture       string       `xml:"architecture"`
	ImageType          string       `xml:"imageType"`
	Name               string       `xml:"name"`
	RootDeviceType     string       `xml:"rootDeviceType"`
	RootDeviceName     string       `xml:"rootDeviceName"`
	Mappings           []mappingXML `xml:"blockDeviceMapping>item"`
	VirtualizationType string       `xml:"virtualizationType"`
	Hypervisor         string       `xml:"hypervisor"`
}

type mappingXML struct {
	DeviceName string `xml:"deviceName"`
	Ebs        struct {
		SnapshotID string `xml:"snapshotId"`
		VolumeSize int    `xml:"volumeSize"`
		Encrypted  bool   `xml:"encrypted"`
		KmsKeyID   string `xml:"kmsKeyId,omitempty"`
	} `xml:"ebs"`
}

func (s *Server) imageXML(im *image) imageXML {
	x := imageXML{ImageID: im.id, ImageLocation: im.account + "/" + im.name, ImageState: im.state, ImageOwnerID: im.account,
		CreationDate: im.created.Format("2006-01-02T15:04:05.000Z"), IsPublic: im.public, Architecture: "x86_64", ImageType: "machine",
		Name: im.name, RootDeviceType: "ebs", RootDeviceName: im.rootDevice, VirtualizationType: "hvm", Hypervisor: "xen"}
	for _, m := range im.mappings {
		sn := s.world.snapshots[m.snapshotID]
		bm := mappingXML{DeviceName: m.device}
		bm.Ebs.SnapshotID = m.snapshotID
		if sn != nil {
			bm.Ebs.VolumeSize, bm.Ebs.Encrypted = sn.size, sn.encrypted
		}
		x.Mappings = append(x.Mappings, bm)
	}
	return x
}

func (s *Server) ec2DescribeImages(c caller, form url.Values) (any, error) {
	s.publicImage(c.region)
	ids := indexed(form, "ImageId")
	f := filters(form)
	owners := indexed(form, "Owner")
	executable := indexed(form, "ExecutableBy")
	var items []imageXML
	for _, id := range ids {
		im, ok := s.world.images[id]
		if !ok || im.region != c.region || !im.canSee(c.account) {
			return nil, errorf(http.StatusBadRequest, "InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
		}
		items = append(items, s.imageXML(im))
	}
	if len(ids) == 0 {
		for _, im := range s.world.images {
			if im.region != c.region || !im.canSee(c.account) || !ownerMatches(owners, im, c.account) || !imageFilters(f, im) || !executableBy(executable, im, c.account) {
				continue
			}
			items = append(items, s.imageXML(im))
		}
		sort.Slice(items, func(i, j int) bool { return items[i].ImageID < items[j].ImageID })
	}
	return struct {
		XMLName xml.Name   `xml:"R"`
		Items   []imageXML `xml:"imagesSet>item"`
	}{Items: items}, nil
}

// imageFilters applies the name, image-id and state filters.
func imageFilters(f map[string][]string, im *image) bool {
	for name, values := range f {
		var v string
		switch name {
		case "name":
			v = im.name
		case "image-id":
			v = im.id
		case "state":
			v = im.state
		case "is-public":
			v = strconv.FormatBool(im.public)
		case "owner-id":
			v = im.account
		default:
			continue // filters the simulator does not model do not narrow
		}
		if !matchFilter(values, v) {
			return false
		}
	}
	return true
}

// executableBy applies ExecutableBy: images with a launch permission for
// the account ("self" is the caller, "all" public images).
func executableBy(users []string, im *image, account string) bool {
	if len(users) == 0 {
		return true
	}
	for _, u := range users {
		switch {
		case u == "self" && (im.account == account || im.launchUsers[account]):
			return true
		case u == "all" && im.public:
			return true
		case im.launchUsers[u] || im.account == u:
			return true
		}
	}
	return false
}

func ownerMatches(owners []string, im *image, account string) bool {
	if len(owners) == 0 {
		return true
	}
	for _, o := range owners {
		if o == im.account || (o == "self" && im.account == account) || (o == "amazon" && im.account == PublicImageOwner) {
			return true
		}
	}
	return false
}

func (s *Server) ownImage(c caller, id string) (*image, error) {
	im, ok := s.world.images[id]
	if !ok || im.region != c.region || !im.canSee(c.account) {
		return nil, errorf(http.StatusBadRequest, "InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
	}
	if im.account != c.account {
		return nil, errorf(http.StatusBadRequest, "AuthFailure", "Not authorized for image:%s", id)
	}
	return im, nil
}

func (s *Server) ec2ModifyImageAttribute(c caller, form url.Values) (any, error) {
	im, err := s.ownImage(c, form.Get("ImageId"))
	if err != nil {
		return nil, err
	}
	var changes []func()
	for _, verb := range []string{"Add", "Remove"} {
		add := verb == "Add"
		for i := 1; ; i++ {
			p := "LaunchPermission." + verb + "." + strconv.Itoa(i) + "."
			user, group, org, ou := form.Get(p+"UserId"), form.Get(p+"Group"), form.Get(p+"OrganizationArn"), form.Get(p+"OrganizationalUnitArn")
			if user == "" && group == "" && org == "" && ou == "" {
				break
			}
			switch {
			case user != "":
				if !isDigits(user) || len(user) != 12 {
					return nil, errorf(http.StatusBadRequest, "InvalidAMIAttributeItemValue", "Invalid attribute item value \"%s\" for userId item type.", user)
				}
				changes = append(changes, func() { setMember(im.launchUsers, user, add) })
			case group == "all":
				changes = append(changes, func() { im.public = add })
			case org != "":
				changes = append(changes, func() { setMember(im.launchOrgs, org, add) })
			case ou != "":
				changes = append(changes, func() { setMember(im.launchOUs, ou, add) })
			default:
				return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "Invalid launch permission group %q", group)
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

// errDryRunEC2 is EC2's answer to a DryRun call that would have succeeded.
func errDryRunEC2() error {
	return errorf(http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
}

func setMember(m map[string]bool, k string, add bool) {
	if add {
		m[k] = true
	} else {
		delete(m, k)
	}
}

func (s *Server) ec2DescribeImageAttribute(c caller, form url.Values) (any, error) {
	im, err := s.ownImage(c, form.Get("ImageId"))
	if err != nil {
		return nil, err
	}
	if form.Get("Attribute") != "launchPermission" {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "Value (%s) for parameter attribute is invalid.", form.Get("Attribute"))
	}
	type perm struct {
		UserID                string `xml:"userId,omitempty"`
		Group                 string `xml:"group,omitempty"`
		OrganizationArn       string `xml:"organizationArn,omitempty"`
		OrganizationalUnitArn string `xml:"organizationalUnitArn,omitempty"`
	}
	var perms []perm
	for _, u := range sortedKeys(im.launchUsers) {
		perms = append(perms, perm{UserID: u})
	}
	if im.public {
		perms = append(perms, perm{Group: "all"})
	}
	for _, o := range sortedKeys(im.launchOrgs) {
		perms = append(perms, perm{OrganizationArn: o})
	}
	for _, o := range sortedKeys(im.launchOUs) {
		perms = append(perms, perm{OrganizationalUnitArn: o})
	}
	return struct {
		XMLName xml.Name `xml:"R"`
		ImageID string   `xml:"imageId"`
		Perms   []perm   `xml:"launchPermission>item"`
	}{ImageID: im.id, Perms: perms}, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// useKeyThroughEC2 checks, as EC2 does when it creates a volume for the
// caller, that the caller can use the key through EC2: the calls come from
// EC2 on the caller's behalf, with kms:ViaService, and not from the
// caller's address. It records a CloudTrail event for a denied call.
func (s *Server) useKeyThroughEC2(c caller, k *key, volumeID, invokedBy string) error {
	if k.state != "Enabled" {
		return errorf(http.StatusBadRequest, "Client.InvalidKMSKey.InvalidState", "The KMS key provided is in an incorrect state")
	}
	principalARN := c.arn
	if c.roleARN != "" {
		principalARN = c.roleARN
	}
	for _, action := range []string{"kms:CreateGrant", "kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext"} {
		ctx := map[string][]string{
			"kms:viaservice":       {"ec2." + c.region + ".amazonaws.com"},
			"kms:calleraccount":    {c.account},
			"aws:principalaccount": {c.account},
			"aws:principalarn":     {principalARN},
			"aws:viaawsservice":    {"true"},
		}
		if action == "kms:CreateGrant" {
			ctx["kms:grantisforawsresource"] = []string{"true"}
		}
		err := s.authorize(k, request{principal: c.arn, roleARN: c.roleARN, account: c.account, action: action, resource: k.arn, context: ctx})
		if err != nil {
			s.recordKMSDenial(c, k, action, volumeID, invokedBy)
			return errorf(http.StatusBadRequest, "Client.InternalError", "Client error on launch")
		}
	}
	return nil
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
	if !ok || im.region != c.region || !im.canSee(c.account) {
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
