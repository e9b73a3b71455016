package awsim

import "time"

// world is the simulated state of every account and region. The server's
// mutex guards it.
type world struct {
	keys     map[string]*key     // by key ARN
	aliases  map[string]*alias   // by alias ARN
	roles    map[string]*role    // by role ARN
	sessions map[string]*session // by access key id

	volumes        map[string]*volume
	snapshots      map[string]*snapshot
	images         map[string]*image
	instances      map[string]*instance
	clientTokens   map[string]*runRecord // RunInstances' by account/region/token
	templates      map[string]*launchTemplate
	groups         map[string]*autoScalingGroup // by account/region/name
	keyPairs       map[string]bool              // account/region/name
	securityGroups map[string]*securityGroup
	tags           map[string]map[string]string // EC2 resource id → tags
	tagOwners      map[string]string
	// ebsDefault and ebsDefaultKey are each account/region's default EBS
	// encryption settings.
	ebsDefault    map[string]bool
	ebsDefaultKey map[string]string
	// trail holds each account's CloudTrail events, oldest first.
	trail map[string][]trailEvent

	// AWS Organizations: organizations by id, their roots and OUs by id,
	// and the member accounts by account id (an account belongs to at most
	// one organization). orgSeq orders them as they were made or joined.
	orgs           map[string]*organization
	orgUnits       map[string]*orgUnit
	orgAccounts    map[string]*orgAccount
	accountCreates map[string]*accountCreation // CreateAccount requests by id
	orgSeq         int
}

func newWorld() *world {
	return &world{
		keys:     map[string]*key{},
		aliases:  map[string]*alias{},
		roles:    map[string]*role{},
		sessions: map[string]*session{},

		volumes:      map[string]*volume{},
		snapshots:    map[string]*snapshot{},
		images:       map[string]*image{},
		instances:    map[string]*instance{},
		clientTokens: map[string]*runRecord{},
		templates:    map[string]*launchTemplate{},
		groups:       map[string]*autoScalingGroup{},
		trail:        map[string][]trailEvent{},

		orgs:           map[string]*organization{},
		orgUnits:       map[string]*orgUnit{},
		orgAccounts:    map[string]*orgAccount{},
		accountCreates: map[string]*accountCreation{},

		tags:           map[string]map[string]string{},
		tagOwners:      map[string]string{},
		keyPairs:       map[string]bool{},
		securityGroups: map[string]*securityGroup{},
		ebsDefault:     map[string]bool{},
		ebsDefaultKey:  map[string]string{},
	}
}

type key struct {
	arn, id, account, region string
	manager                  string // CUSTOMER or AWS
	state                    string
	description              string
	policy                   string
	created                  time.Time
	deletionDate             time.Time
	grants                   []*grant
}

// alias is a KMS alias: the key it names, and when it was made.
type alias struct {
	keyARN           string
	created, updated time.Time
}

type grant struct {
	id, name, token   string
	grantee, retiring string
	issuingAccount    string
	operations        []string
	constraints       *grantConstraints
	created           time.Time
}

type grantConstraints struct {
	EncryptionContextEquals map[string]string `json:",omitempty"`
	EncryptionContextSubset map[string]string `json:",omitempty"`
}

type role struct {
	arn, name, path, account string
	trustPolicy              string
	inlinePolicies           map[string]string
	serviceLinked            bool
	created                  time.Time
}

type session struct {
	account, arn, roleARN string
	expires               time.Time
}
