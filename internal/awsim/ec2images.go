package awsim

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AMIs: registering, creating and copying them, describing them, and their
// launch permissions.

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
	if !ok || src.region != form.Get("SourceRegion") || !s.canSee(src, c.account) {
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

// canSee reports whether the account may describe and launch the image:
// its owner, anyone for a public image, and the accounts a launch
// permission names.
func (s *Server) canSee(im *image, account string) bool {
	return im.account == account || im.public || s.launchPermitted(im, account)
}

// launchPermitted reports whether a launch permission names the account:
// its id, its organization, or an OU it is in or below ("When you share an
// AMI with an organization or an OU, all of the children accounts gain
// access to the AMI", EC2 User Guide, "Share an AMI with organizations or
// OUs"). A permission names the organization by the id its ARN holds.
func (s *Server) launchPermitted(im *image, account string) bool {
	if im.launchUsers[account] {
		return true
	}
	o, a := s.memberOf(account)
	if o == nil {
		return false
	}
	for arn := range im.launchOrgs {
		if strings.HasSuffix(arn, ":organization/"+o.id) {
			return true
		}
	}
	for arn := range im.launchOUs {
		orgID, ouID, _ := strings.Cut(arn[strings.Index(arn, ":ou/")+len(":ou/"):], "/")
		if orgID == o.id && s.withinUnit(a, ouID) {
			return true
		}
	}
	return false
}

// Launch permissions name an organization or an OU by ARN; another form
// (an id alone, an account ARN) is refused as AWS refuses it (EC2 User
// Guide, "Share an AMI with organizations or OUs", ARN format). The owner
// may name any organization or OU, also one it is not a member of (same
// page, sharing limits); whether AWS checks that the ARN exists is not
// documented, and the simulator does not.
var (
	organizationARNRE = regexp.MustCompile(`^arn:aws[^:]*:organizations::[0-9]{12}:organization/o-[a-z0-9]{10,32}$`)
	unitARNRE         = regexp.MustCompile(`^arn:aws[^:]*:organizations::[0-9]{12}:ou/o-[a-z0-9]{10,32}/ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}$`)
)

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
		if !ok || im.region != c.region || !s.canSee(im, c.account) {
			return nil, errorf(http.StatusBadRequest, "InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
		}
		items = append(items, s.imageXML(im))
	}
	if len(ids) == 0 {
		for _, im := range s.world.images {
			if im.region != c.region || !s.canSee(im, c.account) || !ownerMatches(owners, im, c.account) || !imageFilters(f, im) || !s.executableBy(executable, im, c.account) {
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
// the account ("self" is the caller, "all" public images), given to it by
// id or through its organization or OU.
func (s *Server) executableBy(users []string, im *image, account string) bool {
	if len(users) == 0 {
		return true
	}
	for _, u := range users {
		switch {
		case u == "self" && (im.account == account || s.launchPermitted(im, account)):
			return true
		case u == "all" && im.public:
			return true
		case validAccount(u) && (im.account == u || s.launchPermitted(im, u)):
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
	if !ok || im.region != c.region || !s.canSee(im, c.account) {
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
				if !validAccount(user) {
					return nil, errorf(http.StatusBadRequest, "InvalidAMIAttributeItemValue", "Invalid attribute item value \"%s\" for userId item type.", user)
				}
				changes = append(changes, func() { setMember(im.launchUsers, user, add) })
			case group == "all":
				changes = append(changes, func() { im.public = add })
			case org != "":
				if !organizationARNRE.MatchString(org) {
					return nil, errorf(http.StatusBadRequest, "InvalidAMIAttributeItemValue", "Invalid attribute item value \"%s\" for OrganizationArn item type.", org)
				}
				changes = append(changes, func() { setMember(im.launchOrgs, org, add) })
			case ou != "":
				if !unitARNRE.MatchString(ou) {
					return nil, errorf(http.StatusBadRequest, "InvalidAMIAttributeItemValue", "Invalid attribute item value \"%s\" for OrganizationalUnitArn item type.", ou)
				}
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

func (s *Server) ec2DeregisterImage(c caller, form url.Values) (any, error) {
	im, err := s.ownImage(c, form.Get("ImageId"))
	if err != nil {
		return nil, err
	}
	delete(s.world.images, im.id)
	return returnTrue{Return: true}, nil
}
