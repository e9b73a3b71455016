package keypolicy

import (
	"cmp"
	"strconv"
	"strings"
	"time"
)

// This file builds the requests a verdict evaluates: what AWS sends to KMS
// when a target launches, as far as amigate can know it, and what it
// cannot (Undecidable). Where AWS documents a key as always sent, amigate
// either supplies its value or names it undecidable; it never leaves it
// out, since a condition on a missing key is decided as if AWS had not
// sent it (IAM User Guide, "AWS global condition context keys").

// requestEnv is what every request of a verdict shares beyond its
// principal: the key and the time of the launch.
type requestEnv struct {
	keyARN ARN
	// Each value is a one-element list shared by every request (nothing
	// writes a request's context).
	resourceAccount, region, viaService    []string
	multiRegion, keySpec, keyUsage, origin []string
	mrk                                    bool
	// currentTime and epochTime are nil when no time was given: the keys
	// are then undecidable.
	currentTime, epochTime []string
}

// keyOrigins are the values kms:KeyOrigin takes (AWS KMS API Reference,
// KeyMetadata, Origin).
var keyOrigins = []string{"AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"}

func newRequestEnv(key *Key, keyARN ARN, now time.Time) *requestEnv {
	e := &requestEnv{
		keyARN:          keyARN,
		resourceAccount: []string{keyARN.Account},
		region:          []string{keyARN.Region},
		viaService:      []string{"ec2." + keyARN.Region + ".amazonaws.com"},
		multiRegion:     multiRegion(keyARN),
		mrk:             strings.HasPrefix(keyARN.Resource, "key/mrk-"),
		keySpec:         []string{"SYMMETRIC_DEFAULT"},
		keyUsage:        []string{"ENCRYPT_DECRYPT"},
	}
	if key != nil {
		if key.Spec != "" {
			e.keySpec = []string{key.Spec}
		}
		if key.Usage != "" {
			e.keyUsage = []string{key.Usage}
		}
		if key.Origin != "" {
			e.origin = []string{key.Origin}
		}
	}
	if !now.IsZero() {
		now = now.UTC()
		e.currentTime = []string{now.Format(time.RFC3339)}
		e.epochTime = []string{strconv.FormatInt(now.Unix(), 10)}
	}
	return e
}

// whoKind is what amigate knows of the principal making a path's requests.
type whoKind int

const (
	// whoAny: AnyPrincipal, any role or user of the account.
	whoAny whoKind = iota
	// whoRoleSession: a session, of unknown name, of a named role.
	whoRoleSession
	// whoSession: a named role session (its role's path is not known).
	whoSession
	// whoUser: an IAM user.
	whoUser
	// whoRoot: the account's root user.
	whoRoot
	// whoServiceLinked: the Auto Scaling service-linked role's session.
	whoServiceLinked
	// whoOther: a principal of no kind above (a Target.Principal or a
	// DirectRequest principal that is no IAM role, user, session or root):
	// its aws:PrincipalArn is itself, its type is not known.
	whoOther
)

// viaKind is how a request reaches KMS.
type viaKind int

const (
	// viaEC2: EC2 calls KMS with the principal's forwarded identity
	// (IAM User Guide, "Forward access sessions").
	viaEC2 viaKind = iota
	// viaAutoScaling: EC2 calls KMS for a launch Auto Scaling makes with
	// its service-linked role.
	viaAutoScaling
	// viaDirect: the principal calls KMS itself.
	viaDirect
)

// asgSessionName is the session name Auto Scaling uses with its
// service-linked role: CloudTrail records its calls as
// arn:aws:sts::ACCOUNT:assumed-role/AWSServiceRoleForAutoScaling/AutoScaling
// (AWS Mainframe Modernization User Guide, "Data encryption at rest",
// CloudTrail examples for Auto Scaling's GenerateDataKey).
const asgSessionName = "AutoScaling"

// actor is who makes a path's requests: the principal the verdict names,
// and the caller KMS sees (a role acts through a session).
type actor struct {
	env       *requestEnv
	principal string
	caller    string
	resource  string
	who       whoKind
	via       viaKind
	account   string
	partition string
	roleName  string
	// principalARN is aws:PrincipalArn when known: a session's role.
	principalARN []string
	principalTyp []string
	org          *orgContext
	// known are keys (lower-cased) the caller of a direct request gives:
	// none of them is undecidable.
	known map[string][]string
	// ctx caches the request contexts by shape; unknowns the Undecidable
	// of each request shape.
	ctx      [3]map[string][]string
	unknowns [4]unknowns
}

// Request shapes: the context and what is unknown differ by them.
const (
	shapePlain     = iota // DescribeKey
	shapeCrypto           // Decrypt, GenerateDataKey*, with the volume's encryption context
	shapeGrant            // CreateGrant
	shapeReEncrypt        // ReEncrypt*: a crypto context, and kms:ReEncryptOnSameKey
)

// newActor is who makes path p's requests for principal: the Auto Scaling
// role acts as its session named AutoScaling; a named role as a session
// whose name is not known; AnyPrincipal stands for any role or user. Its
// requests carry org's keys. A direct call (direct) comes from the
// principal itself, with no service in between.
func (e *requestEnv) newActor(principal string, p Path, org *orgContext, direct bool) *actor {
	c := parseCaller(principal)
	a := &actor{env: e, principal: principal, caller: principal, resource: e.keyARN.String(), account: c.account, roleName: c.roleName, org: org, partition: cmp.Or(c.partition, e.keyARN.Partition)}
	switch {
	case direct:
		a.via = viaDirect
	case p == PathASG:
		a.via = viaAutoScaling
	default:
		a.via = viaEC2
	}
	switch {
	case c.anyPrincipal():
		a.who = whoAny
	case c.kind == callerRole && p == PathASG && !direct:
		a.who = whoServiceLinked
		a.caller = "arn:" + a.partition + ":sts::" + c.account + ":assumed-role/" + c.roleName + "/" + asgSessionName
		a.principalARN = []string{principal}
		a.principalTyp = []string{"AssumedRole"}
	case c.kind == callerRole:
		// A role acts only through sessions; "*" is no session name.
		a.who = whoRoleSession
		a.caller = "arn:" + a.partition + ":sts::" + c.account + ":assumed-role/" + c.roleName + "/*"
		a.principalARN = []string{principal}
		a.principalTyp = []string{"AssumedRole"}
	case c.kind == callerSession:
		a.who = whoSession
		a.principalTyp = []string{"AssumedRole"}
	case c.kind == callerRoot:
		a.who = whoRoot
		a.principalARN = []string{c.arn}
		a.principalTyp = []string{"Account"}
	case c.kind == callerUser:
		a.who = whoUser
		a.principalARN = []string{principal}
		a.principalTyp = []string{"User"}
	default:
		a.who = whoOther
		a.principalARN = []string{principal}
	}
	for i := range a.unknowns {
		a.unknowns[i] = unknowns{a: a, shape: i}
	}
	return a
}

// request is the request a's path makes for pa.
func (a *actor) request(pa pathAction) Request {
	shape := shapePlain
	switch {
	case pa.createsGrant:
		shape = shapeGrant
	case pa.withContext:
		shape = shapeCrypto
	}
	ctx := a.ctx[shape]
	if ctx == nil {
		ctx = a.context(shape)
		a.ctx[shape] = ctx
	}
	unk := shape
	if shape == shapeCrypto && strings.HasPrefix(pa.action, "kms:ReEncrypt") {
		unk = shapeReEncrypt
	}
	return Request{Principal: a.caller, Action: pa.action, Resource: a.resource, Context: ctx, Undecidable: &a.unknowns[unk], lowerCase: true}
}

// context is the request context of a's requests of one shape: the keys
// whose values amigate knows. Every request of the shape shares it.
func (a *actor) context(shape int) map[string][]string {
	e := a.env
	ctx := make(map[string][]string, 24)
	a.org.add(ctx)
	account := []string{a.account}
	ctx["kms:calleraccount"] = account
	ctx["aws:principalaccount"] = account
	if a.principalARN != nil {
		ctx["aws:principalarn"] = a.principalARN
	}
	if a.principalTyp != nil {
		ctx["aws:principaltype"] = a.principalTyp
	}
	switch a.who {
	case whoRoot:
		ctx["aws:userid"] = account
	case whoUser:
		ctx["aws:username"] = []string{a.principal[strings.LastIndexByte(a.principal, '/')+1:]}
	}
	// The principal's own credentials, not an AWS service principal, sign
	// (or are forwarded): false whoever calls.
	ctx["aws:principalisawsservice"] = valueFalse
	ctx["aws:securetransport"] = valueTrue
	ctx["aws:requestedregion"] = e.region
	ctx["aws:resourceaccount"] = e.resourceAccount
	if e.currentTime != nil {
		ctx["aws:currenttime"] = e.currentTime
		ctx["aws:epochtime"] = e.epochTime
	}
	ctx["kms:multiregion"] = e.multiRegion
	ctx["kms:keyspec"] = e.keySpec
	ctx["kms:keyusage"] = e.keyUsage
	if e.origin != nil {
		ctx["kms:keyorigin"] = e.origin
	}
	switch a.via {
	case viaDirect:
		ctx["aws:viaawsservice"] = valueFalse
	case viaEC2:
		ctx["aws:viaawsservice"] = valueTrue
		ctx["kms:viaservice"] = e.viaService
	case viaAutoScaling:
		ctx["kms:viaservice"] = e.viaService
	}
	// A forwarded session is made of temporary credentials, on which AWS
	// sets aws:MultiFactorAuthPresent (false for a user's forwarded
	// call); Auto Scaling's session was not authenticated with MFA.
	if (a.via != viaDirect && a.who == whoUser) || a.who == whoServiceLinked {
		ctx["aws:multifactorauthpresent"] = valueFalse
	}
	switch shape {
	case shapeGrant:
		if a.via != viaDirect {
			ctx["kms:grantisforawsresource"] = valueTrue
		}
	case shapeCrypto:
		ctx["kms:encryptioncontext:aws:ebs:id"] = volumeContext
		ctx["kms:encryptioncontextkeys"] = volumeContextKeys
		// KMS evaluates the parameter's default when a request omits it
		// (AWS KMS Developer Guide, "AWS KMS condition keys").
		ctx["kms:encryptionalgorithm"] = symmetricDefault
	}
	return ctx
}

var (
	valueTrue         = []string{"true"}
	valueFalse        = []string{"false"}
	valueTrueOrFalse  = []string{"true", "false"}
	anyValue          = []string{"*"}
	volumeContext     = []string{newVolumeID}
	volumeContextKeys = []string{"aws:ebs:id"}
	symmetricDefault  = []string{"SYMMETRIC_DEFAULT"}
)

// unknowns is the Undecidable of one shape of an actor's requests.
type unknowns struct {
	a     *actor
	shape int
}

// Values implements Undecidable: for each key AWS sends, or may send,
// with the request, what amigate cannot know of it (IAM User Guide, "AWS
// global condition context keys", each key's Availability; Service
// Authorization Reference, AWS KMS, condition keys by action).
func (u *unknowns) Values(key string) ([]string, bool) {
	a, e := u.a, u.a.env
	if a.known != nil {
		if _, ok := a.known[key]; ok {
			return nil, false
		}
	}
	fas := a.via != viaDirect
	switch key {
	case "aws:principalarn":
		switch a.who {
		case whoAny:
			return []string{"arn:" + a.partition + ":iam::" + a.account + ":role/*", "arn:" + a.partition + ":iam::" + a.account + ":user/*"}, true
		case whoSession:
			// The role's ARN, whose path the session ARN does not show.
			return []string{"arn:" + a.partition + ":iam::" + a.account + ":role/*" + a.roleName}, true
		}
	case "aws:principaltype":
		if a.who == whoAny {
			return []string{"AssumedRole", "User"}, true
		}
	case "aws:userid":
		if a.who != whoRoot {
			return anyValue, true
		}
	case "aws:username":
		// Present for IAM users only.
		if a.who == whoAny {
			return nil, true
		}
	case "aws:multifactorauthpresent":
		switch {
		case a.who == whoServiceLinked || (fas && a.who == whoUser):
			return nil, false // in the context
		case fas || a.who == whoRoleSession || a.who == whoSession:
			return valueTrueOrFalse, true
		}
		return nil, true
	case "aws:multifactorauthage":
		// Present only when MFA was used, which Auto Scaling's session was
		// not.
		if a.who != whoServiceLinked {
			return nil, true
		}
	case "aws:tokenissuetime", "aws:sourceidentity":
		return nil, true
	case "aws:federatedprovider", "aws:ec2instancesourcevpc", "aws:ec2instancesourceprivateipv4":
		switch a.who {
		case whoAny, whoRoleSession, whoSession:
			return nil, true
		}
	case "aws:useragent":
		return anyValue, true
	case "aws:sourceip":
		// EC2 and Auto Scaling call KMS from AWS's own addresses, not the
		// user's; a direct call from wherever the principal runs.
		return nil, true
	case "aws:sourcevpc", "aws:sourcevpce", "aws:vpcsourceip", "aws:sourcevpcarn", "aws:vpceaccount", "aws:vpceorgid", "aws:vpceorgpaths":
		// Only through a VPC endpoint of the caller's, which a service's
		// call does not use.
		if !fas {
			return nil, true
		}
	case "aws:viaawsservice":
		// AWS sets it false when a service uses a service-linked role and
		// true when a service forwards a principal's credentials (IAM User
		// Guide, "AWS global condition context keys", aws:ViaAWSService):
		// the KMS calls of an Auto Scaling launch are both.
		if a.via == viaAutoScaling {
			return valueTrueOrFalse, true
		}
	case "aws:calledvia", "aws:calledviafirst", "aws:calledvialast":
		// Documented for a list of services that EC2 is not on, and for
		// every forward access session (IAM User Guide, "Forward access
		// sessions").
		if fas {
			return nil, true
		}
	case "aws:currenttime", "aws:epochtime":
		if e.currentTime == nil {
			return nil, true
		}
	case "aws:principalorgid", "aws:principalorgpaths":
		if a.org == nil {
			return nil, true
		}
	case "aws:resourceorgid", "aws:resourceorgpaths", "kms:resourcealiases":
		// The key owner's organization and the key's aliases are not read
		// (amigate's own lock aliases come and go).
		return nil, true
	case "kms:keyorigin":
		if e.origin == nil {
			return keyOrigins, true
		}
	case "kms:multiregionkeytype":
		if e.mrk {
			return []string{"PRIMARY", "REPLICA"}, true
		}
	case "kms:reencryptonsamekey":
		if u.shape == shapeReEncrypt {
			return valueTrueOrFalse, true
		}
	case "kms:granteeprincipal", "kms:retiringprincipal", "kms:grantoperations", "kms:grantconstrainttype",
		"kms:granteeserviceprincipal", "kms:retiringserviceprincipal", "kms:grantconstraintsourcearn", "kms:encryptioncontextkeys":
		// EC2 chooses its grant's grantee, operations and constraints.
		if u.shape == shapeGrant && fas {
			return nil, true
		}
	default:
		switch {
		case strings.HasPrefix(key, "aws:principaltag/"), strings.HasPrefix(key, "aws:resourcetag/"):
			// Neither the principal's tags nor the key's are read.
			return nil, true
		case strings.HasPrefix(key, "kms:encryptioncontext:") && u.shape == shapeGrant && fas:
			return nil, true
		}
	}
	return nil, false
}

// DirectRequest is the request principal makes to KMS itself, by key ARN,
// with no service in between: action on key at now (the zero time: not
// known, and aws:CurrentTime and aws:EpochTime are then undecidable).
// principal is an account's root user, an IAM user, an IAM role (through
// a session whose name is not known) or an assumed-role session. The
// request carries what AWS sends that amigate knows (the key's metadata
// among it) and names what it cannot know in its Undecidable, as the
// requests of a verdict do. known adds the condition keys (any case) the
// caller knows: the action's parameters (kms:GranteePrincipal, ...), a
// session's aws:PrincipalArn, the organization keys; none of them is then
// undecidable.
func DirectRequest(key *Key, principal, action string, now time.Time, known map[string][]string) (Request, error) {
	keyARN, err := ParseKeyARN(key.ARN)
	if err != nil {
		return Request{}, err
	}
	return newRequestEnv(key, keyARN, now).directRequest(principal, action, nil, lowerKeys(known)), nil
}

// directRequest is the request principal makes itself for action. org is
// its organization context, nil when not known; known are more keys,
// lower-cased.
func (e *requestEnv) directRequest(principal, action string, org *orgContext, known map[string][]string) Request {
	a := e.newActor(principal, PathInstance, org, true)
	a.known = known
	shape, unk := shapePlain, shapePlain
	switch lower := strings.ToLower(action); {
	case lower == "kms:creategrant":
		shape, unk = shapeGrant, shapeGrant
	case strings.HasPrefix(lower, "kms:reencrypt"):
		unk = shapeReEncrypt
	}
	ctx := a.context(shape) // new: the request may add to it
	for k, v := range known {
		ctx[k] = v
	}
	return Request{Principal: a.caller, Action: action, Resource: a.resource, Context: ctx, Undecidable: &a.unknowns[unk], lowerCase: true}
}

// directGrantRequest is the CreateGrant a target makes itself, by key ARN,
// for its Auto Scaling role: no service is in between. org is the caller's
// organization context, nil when not known. The grant's keys are written
// into the request's own context; a direct call leaves none of them
// undecidable.
func (e *requestEnv) directGrantRequest(caller, grantee string, org *orgContext) Request {
	req := e.directRequest(caller, "kms:CreateGrant", org, nil)
	req.Context["kms:granteeprincipal"] = []string{grantee}
	req.Context["kms:grantoperations"] = AutoScalingGrantOperations
	req.Context["kms:grantisforawsresource"] = valueFalse
	return req
}
