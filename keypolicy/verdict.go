package keypolicy

// Path is a way a target account launches the image (DESIGN §1.2).
type Path string

// The launch paths amigate knows.
const (
	// PathASG is a launch by the target's Auto Scaling group, acting through
	// its Auto Scaling service-linked role.
	PathASG Path = "asg"
	// PathInstance is RunInstances/StartInstances by a principal of the target.
	PathInstance Path = "instance"
	// PathCopy is CopyImage by a principal of the target, re-encrypting to its own key.
	PathCopy Path = "copy"
)

// DefaultPaths are checked when a target names none.
var DefaultPaths = []Path{PathASG, PathInstance}

// Severity of a finding.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Finding codes: stable, shared with reports and tools (DESIGN §3.1). Add new
// ones; never rename.
const (
	CodeAWSManagedKey       = "AWS_MANAGED_KEY"
	CodeKeyNotEnabled       = "KEY_NOT_ENABLED"
	CodeKeySpec             = "KEY_SPEC_UNSUPPORTED"
	CodeUnencryptedSnapshot = "UNENCRYPTED_SNAPSHOT"
	CodeKeyPolicyMissing    = "KEY_POLICY_MISSING"
	CodeKeyPolicyDenies     = "KEY_POLICY_DENIES"
	CodeKeyPolicyTooLarge   = "KEY_POLICY_TOO_LARGE"
	CodeIdentityPolicy      = "IDENTITY_POLICY_MISSING"
	CodeSourceIPCondition   = "SOURCE_IP_CONDITION"
	CodeViaServiceMismatch  = "VIA_SERVICE_MISMATCH"
	CodeGrantMissing        = "GRANT_MISSING"
	CodeServiceLinkedRole   = "SERVICE_LINKED_ROLE_MISSING"
	CodeUnknownVariable     = "POLICY_VARIABLE_UNKNOWN"
	CodeLiteralVariable     = "POLICY_VARIABLE_LITERAL"
	CodeImageNotShared      = "IMAGE_NOT_SHARED"
	CodeSnapshotNotShared   = "SNAPSHOT_NOT_SHARED"
	CodeLaunchFailed        = "LAUNCH_FAILED"
	// CodePermissionMissing: the principal amigate acts as may not make a
	// call the run needs (found by a dry run or the preflight).
	CodePermissionMissing = "PERMISSION_MISSING"
	// CodeDryRunUnverified: a dry run could not establish something the
	// real run would need, so it cannot say the real run would pass.
	CodeDryRunUnverified = "DRY_RUN_UNVERIFIED"
)

// Finding is one problem, as data: every rendering (text, JSON, JUnit,
// Markdown, Packer UI) is made from it.
type Finding struct {
	Code     string   `json:"code"`
	Severity string   `json:"severity"`
	Actions  []string `json:"actions"`
	// Statement is the Sid (or "#index" when it has none) of the key-policy
	// statement the finding is about, or "" when no statement is involved.
	Statement string `json:"statement"`
	Message   string `json:"message"`
	Fix       string `json:"fix"`
}

// Key is what amigate knows about a KMS key: its metadata, policy and grants.
type Key struct {
	ARN     string
	Manager string // "CUSTOMER" or "AWS"
	State   string // "Enabled", "Disabled", "PendingDeletion", ...
	Spec    string // "SYMMETRIC_DEFAULT", ...
	Usage   string // "ENCRYPT_DECRYPT", ...
	// Origin is where the key material comes from ("AWS_KMS", "EXTERNAL",
	// "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"): kms:KeyOrigin. Empty means not
	// known, and a condition on kms:KeyOrigin is undecidable.
	Origin string
	Policy *Policy
	Grants []Grant

	// grantsByAccount indexes Grants by their grantee's account, built by
	// Check and PlanPatch on their copy of the key: a key may hold a grant
	// for each of hundreds of targets.
	grantsByAccount map[string][]int
}

// indexGrants builds grantsByAccount.
func (k *Key) indexGrants() {
	if len(k.Grants) < 16 {
		return // a scan is as quick
	}
	k.grantsByAccount = make(map[string][]int, len(k.Grants))
	for i := range k.Grants {
		a := arnAccount(k.Grants[i].GranteePrincipal)
		k.grantsByAccount[a] = append(k.grantsByAccount[a], i)
	}
}

// Grant is a KMS grant on the key, as ListGrants returns it.
type Grant struct {
	ID                      string
	Name                    string
	GranteePrincipal        string
	RetiringPrincipal       string
	IssuingAccount          string
	Operations              []string // "Decrypt", "CreateGrant", ...
	EncryptionContextEquals map[string]string
	EncryptionContextSubset map[string]string
}

// Target is an account that must be able to launch the image.
type Target struct {
	Account string
	// ASGRoles are the Auto Scaling service-linked roles of the target's
	// groups; empty means the account's default AWSServiceRoleForAutoScaling.
	ASGRoles []string
	// Principal launches instances on the instance and copy paths: the
	// ARN of a role (checked as a session of it, whose name is not known),
	// a user or a session. Empty means any role or user of the account
	// (AnyPrincipal stands for it, never the root user), whose ARN, name
	// and type are then undecidable (Request.Undecidable).
	Principal string
	// Identity is the launching principal's identity policy when known; nil
	// means it is assumed to allow what the key policy allows.
	Identity *Policy
	// Paths to check; empty means DefaultPaths.
	Paths []Path
	// GrantFromSource creates this target's Auto Scaling grants from the
	// key owner's account (as PlanOptions.GrantFromSource, for one target).
	GrantFromSource bool
	// OrgPath is the account's place in its AWS Organizations
	// organization: the aws:PrincipalOrgPaths value of its principals,
	// o-ORG/r-ROOT/ and each OU down to the account's parent, such as
	// "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/ou-ab12-22222222/" (see
	// ParseOrgPath). The requests of the account's principals then carry
	// aws:PrincipalOrgPaths and aws:PrincipalOrgID (the path's first
	// part). Empty, or not a valid path, means not known: both keys are
	// undecidable, so a statement that allows by them does not count and
	// one that denies by them does (a red at worst, never a green AWS
	// would refuse). PlanOptions.Organization covers a target only
	// when its OrgPath lies within the scope.
	OrgPath string
}

// KeyInfo summarises the key in a verdict.
type KeyInfo struct {
	ARN     string `json:"arn"`
	Manager string `json:"manager"`
	State   string `json:"state"`
}

// PathVerdict is the verdict for one target and path.
type PathVerdict struct {
	Path      Path      `json:"path"`
	Principal string    `json:"principal"`
	OK        bool      `json:"ok"`
	Findings  []Finding `json:"findings"`
}

// TargetVerdict is the verdict for one target.
type TargetVerdict struct {
	Account string        `json:"account"`
	OK      bool          `json:"ok"`
	Paths   []PathVerdict `json:"paths"`
}

// Verdict is the answer to "can every target launch an image encrypted with
// this key?" (DESIGN §3.1 JSON shape).
type Verdict struct {
	OK       bool            `json:"ok"`
	Key      KeyInfo         `json:"key"`
	Findings []Finding       `json:"findings"`
	Targets  []TargetVerdict `json:"targets"`
}
