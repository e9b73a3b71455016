package awsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// WorldFile is a world to start from (`amigate sim --world FILE`):
// organizations, roles, keys, images, launch templates and Auto Scaling
// groups, in several accounts and regions. Images, templates and groups refer to each
// other by name, since their ids are made when the world is loaded.
// docs/sim.md documents it; example/sim-world.json is the first reference
// write-up's two accounts.
type WorldFile struct {
	// Organizations are loaded first, so that the rest of the world
	// (key policies, launch permissions) may name their ids.
	Organizations []WorldOrganization `json:"organizations"`
	Roles         []struct {
		Account     string                     `json:"account"`
		Name        string                     `json:"name"`
		Path        string                     `json:"path"`
		TrustPolicy json.RawMessage            `json:"trust_policy"`
		Policies    map[string]json.RawMessage `json:"policies"`
	} `json:"roles"`
	ServiceLinkedRoles []struct {
		Account      string `json:"account"`
		CustomSuffix string `json:"custom_suffix"`
	} `json:"service_linked_roles"`
	Keys []struct {
		Account string          `json:"account"`
		Region  string          `json:"region"`
		Alias   string          `json:"alias"`
		Policy  json.RawMessage `json:"policy"`
		State   string          `json:"state"`
	} `json:"keys"`
	Images []struct {
		Account string `json:"account"`
		Region  string `json:"region"`
		Name    string `json:"name"`
		// Key is the alias (alias/NAME) of a key of the world, or
		// "alias/aws/ebs"; empty means unencrypted.
		Key string `json:"key"`
		// LaunchPermissions are account ids, and ARNs of organizations
		// (arn:aws:organizations::MANAGEMENT:organization/o-…) and OUs
		// (…:ou/o-…/ou-…).
		LaunchPermissions []string `json:"launch_permissions"`
		Public            bool     `json:"public"`
	} `json:"images"`
	LaunchTemplates []struct {
		Account      string `json:"account"`
		Region       string `json:"region"`
		Name         string `json:"name"`
		Image        string `json:"image"` // an image's name
		ImageOwner   string `json:"image_owner"`
		InstanceType string `json:"instance_type"`
	} `json:"launch_templates"`
	AutoScalingGroups []struct {
		Account              string   `json:"account"`
		Region               string   `json:"region"`
		Name                 string   `json:"name"`
		LaunchTemplate       string   `json:"launch_template"`
		AvailabilityZones    []string `json:"availability_zones"`
		Min                  int      `json:"min"`
		Max                  int      `json:"max"`
		Desired              int      `json:"desired"`
		ServiceLinkedRoleARN string   `json:"service_linked_role_arn"`
	} `json:"autoscaling_groups"`
}

// WorldOrganization is an organization of a world file: its management
// account, the accounts directly in its root, and its OUs. Ids left empty
// are made at load time; ones given must have AWS's form (o- and 10 to 32
// lower-case letters or digits; r- and 4 to 32; ou-, the root's id without
// r-, a dash and 8 to 32), so that key policies and launch permissions of
// the same file can name them.
type WorldOrganization struct {
	ID                string `json:"id"`
	RootID            string `json:"root_id"`
	ManagementAccount string `json:"management_account"`
	// FeatureSet is ALL (the default) or CONSOLIDATED_BILLING.
	FeatureSet string `json:"feature_set"`
	// DelegatedAdministrators are member accounts that may read the
	// organization as the management account does.
	DelegatedAdministrators []string                  `json:"delegated_administrators"`
	Accounts                []WorldAccount            `json:"accounts"`
	OrganizationalUnits     []WorldOrganizationalUnit `json:"organizational_units"`
}

// WorldOrganizationalUnit is an OU, with its accounts and the OUs nested
// in it (at most five levels under the root).
type WorldOrganizationalUnit struct {
	Name                string                    `json:"name"`
	ID                  string                    `json:"id"`
	Accounts            []WorldAccount            `json:"accounts"`
	OrganizationalUnits []WorldOrganizationalUnit `json:"organizational_units"`
}

// WorldAccount is a member account. Name and email default to ones made
// from the id; status is ACTIVE (the default), SUSPENDED or
// PENDING_CLOSURE; joined_method INVITED (the default) or CREATED. The
// management account sits in the root unless an OU lists it.
type WorldAccount struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Email        string `json:"email"`
	Status       string `json:"status"`
	JoinedMethod string `json:"joined_method"`
}

// LoadWorld adds a world file's contents to the simulator. On error nothing
// is added.
func (s *Server) LoadWorld(r io.Reader) error {
	var wf WorldFile
	d := json.NewDecoder(r)
	d.DisallowUnknownFields()
	if err := d.Decode(&wf); err != nil {
		return fmt.Errorf("read world: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	saved := s.world
	s.world = cloneWorldShallow(saved)
	if err := s.loadWorld(&wf); err != nil {
		s.world = saved
		return err
	}
	return nil
}

// cloneWorldShallow copies the maps so a failed load can be undone; the
// objects they hold are not modified by a load.
func cloneWorldShallow(w *world) *world {
	c := newWorld()
	for k, v := range w.keys {
		c.keys[k] = v
	}
	for k, v := range w.aliases {
		c.aliases[k] = v
	}
	for k, v := range w.roles {
		c.roles[k] = v
	}
	for k, v := range w.sessions {
		c.sessions[k] = v
	}
	for k, v := range w.volumes {
		c.volumes[k] = v
	}
	for k, v := range w.snapshots {
		c.snapshots[k] = v
	}
	for k, v := range w.images {
		c.images[k] = v
	}
	for k, v := range w.instances {
		c.instances[k] = v
	}
	for k, v := range w.clientTokens {
		c.clientTokens[k] = v
	}
	for k, v := range w.templates {
		c.templates[k] = v
	}
	for k, v := range w.groups {
		c.groups[k] = v
	}
	for k, v := range w.trail {
		c.trail[k] = v
	}
	for k, v := range w.tags {
		c.tags[k] = v
	}
	for k, v := range w.tagOwners {
		c.tagOwners[k] = v
	}
	for k, v := range w.keyPairs {
		c.keyPairs[k] = v
	}
	for k, v := range w.securityGroups {
		c.securityGroups[k] = v
	}
	for k, v := range w.ebsDefault {
		c.ebsDefault[k] = v
	}
	for k, v := range w.ebsDefaultKey {
		c.ebsDefaultKey[k] = v
	}
	for k, v := range w.orgs {
		c.orgs[k] = v
	}
	for k, v := range w.orgUnits {
		c.orgUnits[k] = v
	}
	for k, v := range w.orgAccounts {
		c.orgAccounts[k] = v
	}
	for k, v := range w.accountCreates {
		c.accountCreates[k] = v
	}
	c.orgSeq = w.orgSeq
	return c
}

func (s *Server) loadWorld(wf *WorldFile) error {
	for i := range wf.Organizations {
		if err := s.loadOrganization(&wf.Organizations[i]); err != nil {
			return fmt.Errorf("organizations[%d]%w", i, err)
		}
	}
	for i, r := range wf.Roles {
		if !validAccount(r.Account) || r.Name == "" {
			return fmt.Errorf("roles[%d]: account %q and name %q are required", i, r.Account, r.Name)
		}
		path := r.Path
		if path == "" {
			path = "/"
		}
		ro := &role{arn: "arn:aws:iam::" + r.Account + ":role" + path + r.Name, name: r.Name, path: path, account: r.Account,
			trustPolicy: string(r.TrustPolicy), inlinePolicies: map[string]string{}, created: s.now().UTC()}
		for name, doc := range r.Policies {
			ro.inlinePolicies[name] = string(doc)
		}
		s.world.roles[ro.arn] = ro
	}
	for i, r := range wf.ServiceLinkedRoles {
		if !validAccount(r.Account) {
			return fmt.Errorf("service_linked_roles[%d]: account %q is not a 12-digit account id", i, r.Account)
		}
		s.createServiceLinkedRole(r.Account, r.CustomSuffix)
	}
	for i, k := range wf.Keys {
		if !validAccount(k.Account) || k.Region == "" {
			return fmt.Errorf("keys[%d]: account %q and region %q are required", i, k.Account, k.Region)
		}
		policy := string(k.Policy)
		if policy == "" {
			policy = defaultKeyPolicy(k.Account)
		} else if err := validatePolicy(policy); err != nil {
			return fmt.Errorf("keys[%d].policy: %w", i, err)
		}
		nk := s.newKey(k.Account, k.Region, "CUSTOMER", policy, "")
		if k.State != "" {
			nk.state = k.State
		}
		if k.Alias != "" {
			if !strings.HasPrefix(k.Alias, "alias/") {
				return fmt.Errorf("keys[%d].alias %q must start with alias/", i, k.Alias)
			}
			s.world.aliases[fmt.Sprintf("arn:aws:kms:%s:%s:%s", k.Region, k.Account, k.Alias)] = s.newAlias(nk.arn)
		}
	}
	images := map[string]*image{} // account/region/name
	for i, im := range wf.Images {
		c := caller{account: im.Account, region: im.Region, arn: "arn:aws:iam::" + im.Account + ":root"}
		if !validAccount(im.Account) || im.Region == "" || im.Name == "" {
			return fmt.Errorf("images[%d]: account, region and name are required", i)
		}
		sn := &snapshot{id: newID("snap-", 9)[:22], account: im.Account, region: im.Region, volumeID: newID("vol-", 9)[:21], size: 8,
			created: s.now().UTC(), createVolumeUsers: map[string]bool{}}
		if im.Key != "" {
			k, err := s.findKey(c, im.Key)
			if err != nil {
				return fmt.Errorf("images[%d].key %q: no such key in %s/%s", i, im.Key, im.Account, im.Region)
			}
			sn.encrypted, sn.keyARN = true, k.arn
		}
		s.world.snapshots[sn.id] = sn
		img := &image{id: newID("ami-", 9)[:21], account: im.Account, region: im.Region, name: im.Name, state: "available",
			rootDevice: "/dev/xvda", mappings: []blockMapping{{device: "/dev/xvda", snapshotID: sn.id}}, public: im.Public,
			launchUsers: map[string]bool{}, launchOrgs: map[string]bool{}, launchOUs: map[string]bool{}, created: s.now().UTC()}
		for _, a := range im.LaunchPermissions {
			switch {
			case validAccount(a):
				img.launchUsers[a] = true
			case organizationARNRE.MatchString(a):
				img.launchOrgs[a] = true
			case unitARNRE.MatchString(a):
				img.launchOUs[a] = true
			default:
				return fmt.Errorf("images[%d].launch_permissions: %q is not a 12-digit account id, nor an organization's or OU's ARN", i, a)
			}
		}
		s.world.images[img.id] = img
		images[im.Account+"/"+im.Region+"/"+im.Name] = img
	}
	templates := map[string]*launchTemplate{}
	for i, t := range wf.LaunchTemplates {
		owner := t.ImageOwner
		if owner == "" {
			owner = t.Account
		}
		img, ok := images[owner+"/"+t.Region+"/"+t.Image]
		if !ok {
			return fmt.Errorf("launch_templates[%d].image %q: no image of that name of account %s in %s", i, t.Image, owner, t.Region)
		}
		data := url.Values{"ImageId": {img.id}}
		if t.InstanceType != "" {
			data.Set("InstanceType", t.InstanceType)
		}
		createdBy := "arn:aws:iam::" + t.Account + ":root"
		lt := &launchTemplate{id: newID("lt-", 9)[:20], name: t.Name, account: t.Account, region: t.Region, createdBy: createdBy, defaultVersion: 1, created: s.now().UTC(),
			versions: []templateVersion{{number: 1, data: data, createdBy: createdBy, created: s.now().UTC()}}}
		s.world.templates[lt.id] = lt
		templates[t.Account+"/"+t.Region+"/"+t.Name] = lt
	}
	for i, g := range wf.AutoScalingGroups {
		lt, ok := templates[g.Account+"/"+g.Region+"/"+g.LaunchTemplate]
		if !ok {
			return fmt.Errorf("autoscaling_groups[%d].launch_template %q: no such template", i, g.LaunchTemplate)
		}
		r, err := s.autoScalingRole(g.Account, g.ServiceLinkedRoleARN)
		if err != nil {
			return fmt.Errorf("autoscaling_groups[%d].service_linked_role_arn: %w", i, err)
		}
		zones := g.AvailabilityZones
		if len(zones) == 0 {
			zones = []string{g.Region + "a"}
		}
		grp := &autoScalingGroup{name: g.Name, account: g.Account, region: g.Region, templateID: lt.id, min: g.Min, max: g.Max, desired: g.Desired,
			zones: zones, serviceLinkedRole: r.arn, created: s.now().UTC(),
			arn: fmt.Sprintf("arn:aws:autoscaling:%s:%s:autoScalingGroup:%s:autoScalingGroupName/%s", g.Region, g.Account, newUUID(), g.Name)}
		s.world.groups[g.Account+"/"+g.Region+"/"+g.Name] = grp
		s.scale(grp)
	}
	return nil
}

// loadOrganization adds a world file's organization. Its accounts must be
// in no organization yet (an account belongs to at most one), so a load
// only adds objects and a failed one can be undone. Errors start with the
// field they are about, relative to the organization.
func (s *Server) loadOrganization(wo *WorldOrganization) error {
	if !validAccount(wo.ManagementAccount) {
		return fmt.Errorf(".management_account %q is not a 12-digit account id", wo.ManagementAccount)
	}
	switch {
	case wo.ID != "" && !orgIDRE.MatchString(wo.ID):
		return fmt.Errorf(".id %q is not o- and 10 to 32 lower-case letters or digits", wo.ID)
	case wo.ID != "" && s.world.orgs[wo.ID] != nil:
		return fmt.Errorf(".id %q: the organization exists", wo.ID)
	case wo.RootID != "" && !rootIDRE.MatchString(wo.RootID):
		return fmt.Errorf(".root_id %q is not r- and 4 to 32 lower-case letters or digits", wo.RootID)
	case wo.RootID != "" && s.world.orgUnits[wo.RootID] != nil:
		return fmt.Errorf(".root_id %q: the root exists", wo.RootID)
	}
	featureSet := wo.FeatureSet
	if featureSet == "" {
		featureSet = "ALL"
	}
	if !validFeatureSet(featureSet) {
		return fmt.Errorf(".feature_set %q is not ALL or CONSOLIDATED_BILLING", featureSet)
	}
	o := s.newOrganization(wo.ID, wo.RootID, wo.ManagementAccount, featureSet)
	root := s.world.orgUnits[o.rootID]
	if s.world.orgAccounts[o.management] != nil {
		return fmt.Errorf(".management_account %q is already a member of an organization", o.management)
	}
	if !listsAccount(wo.Accounts, wo.OrganizationalUnits, o.management) {
		s.addAccount(o, root, o.management, "", "", accountActive, "INVITED")
	}
	if err := s.loadOrgAccounts(o, root, wo.Accounts, ".accounts"); err != nil {
		return err
	}
	if err := s.loadOrgUnits(o, root, wo.OrganizationalUnits, ".organizational_units"); err != nil {
		return err
	}
	for i, d := range wo.DelegatedAdministrators {
		a, ok := s.world.orgAccounts[d]
		switch {
		case !ok || a.orgID != o.id:
			return fmt.Errorf(".delegated_administrators[%d] %q is not a member of the organization", i, d)
		case d == o.management:
			return fmt.Errorf(".delegated_administrators[%d] %q: the management account cannot be a delegated administrator", i, d)
		}
		o.delegated[d] = true
	}
	return nil
}

func (s *Server) loadOrgUnits(o *organization, parent *orgUnit, units []WorldOrganizationalUnit, field string) error {
	if len(units) > 0 && s.unitDepth(parent) >= maxOUDepth {
		return fmt.Errorf("%s: OUs nest at most %d levels under the root", field, maxOUDepth)
	}
	names := map[string]bool{}
	for i, wu := range units {
		at := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case wu.Name == "" || len(wu.Name) > 128:
			return fmt.Errorf("%s.name %q must have 1 to 128 characters", at, wu.Name)
		case names[wu.Name]:
			return fmt.Errorf("%s.name %q: an OU of that name is already in its parent", at, wu.Name)
		}
		names[wu.Name] = true
		if wu.ID != "" {
			m := ouIDRE.FindStringSubmatch(wu.ID)
			switch {
			case m == nil || "r-"+m[1] != o.rootID:
				return fmt.Errorf("%s.id %q is not ou-%s- and 8 to 32 lower-case letters or digits", at, wu.ID, strings.TrimPrefix(o.rootID, "r-"))
			case s.world.orgUnits[wu.ID] != nil:
				return fmt.Errorf("%s.id %q: the OU exists", at, wu.ID)
			}
		}
		u := s.newUnit(o, parent, wu.ID, wu.Name)
		if err := s.loadOrgAccounts(o, u, wu.Accounts, at+".accounts"); err != nil {
			return err
		}
		if err := s.loadOrgUnits(o, u, wu.OrganizationalUnits, at+".organizational_units"); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) loadOrgAccounts(o *organization, parent *orgUnit, accounts []WorldAccount, field string) error {
	for i, wa := range accounts {
		at := fmt.Sprintf("%s[%d]", field, i)
		status := wa.Status
		if status == "" {
			status = accountActive
		}
		joined := wa.JoinedMethod
		if joined == "" {
			joined = "INVITED"
		}
		switch {
		case !validAccount(wa.ID):
			return fmt.Errorf("%s.id %q is not a 12-digit account id", at, wa.ID)
		case s.world.orgAccounts[wa.ID] != nil:
			return fmt.Errorf("%s.id %q is already a member of an organization", at, wa.ID)
		case !validStatus(status):
			return fmt.Errorf("%s.status %q is not ACTIVE, SUSPENDED or PENDING_CLOSURE", at, wa.Status)
		case joined != "INVITED" && joined != "CREATED":
			return fmt.Errorf("%s.joined_method %q is not INVITED or CREATED", at, wa.JoinedMethod)
		case wa.Email != "" && !emailRE.MatchString(wa.Email):
			return fmt.Errorf("%s.email %q is not an email address", at, wa.Email)
		}
		s.addAccount(o, parent, wa.ID, wa.Name, wa.Email, status, joined)
	}
	return nil
}

// listsAccount reports whether the accounts or OUs (nested) list the account.
func listsAccount(accounts []WorldAccount, units []WorldOrganizationalUnit, id string) bool {
	for _, a := range accounts {
		if a.ID == id {
			return true
		}
	}
	for _, u := range units {
		if listsAccount(u.Accounts, u.OrganizationalUnits, id) {
			return true
		}
	}
	return false
}
