package awsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

const maxKeyPolicySize = 32768

// kmsOps are the KMS operations.
var kmsOps = map[string]jsonOp{
	"CreateKey":           {true, (*Server).kmsCreateKey},
	"DescribeKey":         {false, (*Server).kmsDescribeKey},
	"GetKeyPolicy":        {false, (*Server).kmsGetKeyPolicy},
	"PutKeyPolicy":        {true, (*Server).kmsPutKeyPolicy},
	"ListKeyPolicies":     {false, (*Server).kmsListKeyPolicies},
	"CreateAlias":         {true, (*Server).kmsCreateAlias},
	"DeleteAlias":         {true, (*Server).kmsDeleteAlias},
	"ListAliases":         {false, (*Server).kmsListAliases},
	"EnableKey":           {true, setKeyState("Enabled")},
	"DisableKey":          {true, setKeyState("Disabled")},
	"ScheduleKeyDeletion": {true, (*Server).kmsScheduleKeyDeletion},
	"CreateGrant":         {true, (*Server).kmsCreateGrant},
	"ListGrants":          {false, (*Server).kmsListGrants},
	"RevokeGrant":         {true, (*Server).kmsRevokeGrant},
	"RetireGrant":         {true, (*Server).kmsRetireGrant},
	// The cryptographic calls EBS makes through EC2.
	"Decrypt":                         {false, kmsCrypto("kms:Decrypt")},
	"GenerateDataKeyWithoutPlaintext": {false, kmsCrypto("kms:GenerateDataKeyWithoutPlaintext")},
	"ReEncrypt":                       {false, kmsCrypto("kms:ReEncryptFrom")},
}

// defaultKeyPolicy is the policy KMS gives a key created without one: the
// account's IAM policies decide.
func defaultKeyPolicy(account string) string {
	return fmt.Sprintf(`{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "arn:aws:iam::%s:root"
    },
    "Action" : "kms:*",
    "Resource" : "*"
  } ]
}`, account)
}

// awsManagedEBSPolicy is the shape of the policy of an account's aws/ebs
// key: use only through EC2, only by the account itself.
func awsManagedEBSPolicy(account, region string) string {
	return fmt.Sprintf(`{
  "Version" : "2012-10-17",
  "Id" : "auto-ebs-2",
  "Statement" : [ {
    "Sid" : "Allow access through EBS for all principals in the account that are authorized to use EBS",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "*"
    },
    "Action" : [ "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey" ],
    "Resource" : "*",
    "Condition" : {
      "StringEquals" : {
        "kms:ViaService" : "ec2.%s.amazonaws.com",
        "kms:CallerAccount" : "%s"
      }
    }
  }, {
    "Sid" : "Allow direct access to key metadata to the account",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "arn:aws:iam::%s:root"
    },
    "Action" : [ "kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant" ],
    "Resource" : "*"
  } ]
}`, region, account, account)
}

func (s *Server) newKey(account, region, manager, policy, description string) *key {
	id := newUUID()
	k := &key{
		arn: fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", region, account, id), id: id, account: account, region: region,
		manager: manager, state: "Enabled", policy: policy, description: description, created: s.now().UTC(),
	}
	s.world.keys[k.arn] = k
	return k
}

// awsEBSKey returns the account's aws/ebs key in the region, creating it on
// first use as AWS does.
func (s *Server) awsEBSKey(account, region string) *key {
	aliasARN := fmt.Sprintf("arn:aws:kms:%s:%s:alias/aws/ebs", region, account)
	if a, ok := s.world.aliases[aliasARN]; ok {
		return s.world.keys[a.keyARN]
	}
	k := s.newKey(account, region, "AWS", awsManagedEBSPolicy(account, region), "Default key that protects my EBS volumes when no other key is defined")
	s.world.aliases[aliasARN] = s.newAlias(k.arn)
	return k
}

// findKey resolves a KeyId: a key id, key ARN, alias name or alias ARN.
// Another account's key is reachable only by ARN (KMS's rule for
// cross-account use).
func (s *Server) findKey(c caller, id string) (*key, error) {
	notFound := errorf(http.StatusBadRequest, "NotFoundException", "Key '%s' does not exist", id)
	switch {
	case strings.HasPrefix(id, "arn:aws:kms:"):
		if strings.Contains(id, ":alias/") {
			return s.keyByAlias(c, id, notFound)
		}
		if k, ok := s.world.keys[id]; ok {
			return k, nil
		}
		return nil, notFound
	case strings.HasPrefix(id, "alias/"):
		return s.keyByAlias(c, fmt.Sprintf("arn:aws:kms:%s:%s:%s", c.region, c.account, id), notFound)
	default:
		if k, ok := s.world.keys[fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", c.region, c.account, id)]; ok {
			return k, nil
		}
		return nil, notFound
	}
}

func (s *Server) keyByAlias(c caller, aliasARN string, notFound error) (*key, error) {
	if strings.HasSuffix(aliasARN, ":alias/aws/ebs") {
		parts := strings.Split(aliasARN, ":")
		return s.awsEBSKey(parts[4], parts[3]), nil
	}
	if a, ok := s.world.aliases[aliasARN]; ok {
		return s.world.keys[a.keyARN], nil
	}
	return nil, notFound
}

type keyMetadata struct {
	AWSAccountID          string   `json:"AWSAccountId"`
	KeyID                 string   `json:"KeyId"`
	Arn                   string   `json:"Arn"`
	CreationDate          float64  `json:"CreationDate"`
	Enabled               bool     `json:"Enabled"`
	Description           string   `json:"Description"`
	KeyUsage              string   `json:"KeyUsage"`
	KeyState              string   `json:"KeyState"`
	DeletionDate          *float64 `json:"DeletionDate,omitempty"`
	Origin                string   `json:"Origin"`
	KeyManager            string   `json:"KeyManager"`
	CustomerMasterKeySpec string   `json:"CustomerMasterKeySpec"`
	KeySpec               string   `json:"KeySpec"`
	EncryptionAlgorithms  []string `json:"EncryptionAlgorithms"`
	MultiRegion           bool     `json:"MultiRegion"`
}

func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func (k *key) metadata() keyMetadata {
	m := keyMetadata{
		AWSAccountID: k.account, KeyID: k.id, Arn: k.arn, CreationDate: epoch(k.created), Enabled: k.state == "Enabled",
		Description: k.description, KeyUsage: "ENCRYPT_DECRYPT", KeyState: k.state, Origin: "AWS_KMS", KeyManager: k.manager,
		CustomerMasterKeySpec: "SYMMETRIC_DEFAULT", KeySpec: "SYMMETRIC_DEFAULT", EncryptionAlgorithms: []string{"SYMMETRIC_DEFAULT"},
	}
	if !k.deletionDate.IsZero() {
		d := epoch(k.deletionDate)
		m.DeletionDate = &d
	}
	return m
}

func (s *Server) kmsCreateKey(c caller, in map[string]json.RawMessage) (any, error) {
	policy, err := str(in, "Policy", false)
	if err != nil {
		return nil, err
	}
	desc, err := str(in, "Description", false)
	if err != nil {
		return nil, err
	}
	if policy == "" {
		policy = defaultKeyPolicy(c.account)
	} else if err := validatePolicy(policy); err != nil {
		return nil, err
	}
	k := s.newKey(c.account, c.region, "CUSTOMER", policy, desc)
	return map[string]any{"KeyMetadata": k.metadata()}, nil
}

func validatePolicy(policy string) error {
	if len(policy) > maxKeyPolicySize {
		return errorf(http.StatusBadRequest, "LimitExceededException", "Policy exceeds the maximum size of %d bytes", maxKeyPolicySize)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		return errorf(http.StatusBadRequest, "MalformedPolicyDocumentException", "The key policy is not valid JSON")
	}
	if _, ok := doc["Statement"]; !ok {
		return errorf(http.StatusBadRequest, "MalformedPolicyDocumentException", "The key policy has no Statement")
	}
	if i, ok := statementWithoutPrincipal(doc["Statement"]); ok {
		return errorf(http.StatusBadRequest, "MalformedPolicyDocumentException", "Statement %d of the key policy has no Principal or NotPrincipal", i)
	}
	return nil
}

// statementWithoutPrincipal finds a statement that names no principal: a
// key policy needs Principal or NotPrincipal in every statement (AWS KMS
// Developer Guide, "Key policies"), and KMS refuses one without.
func statementWithoutPrincipal(statement any) (int, bool) {
	list, ok := statement.([]any)
	if !ok {
		list = []any{statement}
	}
	for i, st := range list {
		m, _ := st.(map[string]any)
		if m["Principal"] == nil && m["NotPrincipal"] == nil {
			return i, true
		}
	}
	return 0, false
}

// principalsExist rejects a policy naming a role of a simulated account
// that does not exist, or a principal by unique id (what a policy shows of
// a deleted one), as KMS does (MalformedPolicyDocumentException). Account
// roots always exist.
func (s *Server) principalsExist(policy string) error {
	for _, st := range parsePolicy(policy).Statement {
		for _, raw := range []json.RawMessage{st.Principal, st.NotPrincipal} {
			var m map[string]json.RawMessage
			if json.Unmarshal(raw, &m) != nil {
				continue
			}
			for _, p := range stringList(m["AWS"]) {
				if p != "*" && !strings.HasPrefix(p, "arn:") && !validAccount(p) {
					return errorf(http.StatusBadRequest, "MalformedPolicyDocumentException", "Policy contains a statement with one or more invalid principals.")
				}
				if strings.Contains(p, ":role/") {
					if _, ok := s.world.roles[p]; !ok && !s.roleNamed(p) {
						return errorf(http.StatusBadRequest, "MalformedPolicyDocumentException", "Policy contains a statement with one or more invalid principals.")
					}
				}
			}
		}
	}
	return nil
}

// roleNamed matches a role ARN by account and name, whatever its path.
func (s *Server) roleNamed(arn string) bool {
	for _, r := range s.world.roles {
		if r.account == accountOf(arn) && r.name == roleName(arn) {
			return true
		}
	}
	return false
}

// locksOut reports whether the new policy would keep the caller from
// calling PutKeyPolicy again (KMS's lockout safety check).
func (s *Server) locksOut(k *key, policy string, c caller) bool {
	trial := *k
	trial.policy = policy
	err := s.authorize(&trial, request{principal: c.arn, roleARN: c.roleARN, account: c.account, action: "kms:PutKeyPolicy", resource: k.arn,
		context: s.kmsContext(c)})
	return err != nil
}

func (s *Server) keyParam(c caller, in map[string]json.RawMessage, action string) (*key, error) {
	return s.keyParamWith(c, in, action, nil)
}

func (s *Server) keyParamWith(c caller, in map[string]json.RawMessage, action string, extra map[string][]string) (*key, error) {
	id, err := str(in, "KeyId", true)
	if err != nil {
		return nil, err
	}
	k, err := s.findKey(c, id)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeCall(c, k, action, extra); err != nil {
		return nil, err
	}
	return k, nil
}

func (s *Server) kmsDescribeKey(c caller, in map[string]json.RawMessage) (any, error) {
	k, err := s.keyParam(c, in, "kms:DescribeKey")
	if err != nil {
		return nil, err
	}
	return map[string]any{"KeyMetadata": k.metadata()}, nil
}

func policyName(in map[string]json.RawMessage) error {
	name, err := str(in, "PolicyName", false)
	if err != nil {
		return err
	}
	if name != "" && name != "default" {
		return errorf(http.StatusBadRequest, "NotFoundException", "No such policy exists")
	}
	return nil
}

func (s *Server) kmsGetKeyPolicy(c caller, in map[string]json.RawMessage) (any, error) {
	k, err := s.keyParam(c, in, "kms:GetKeyPolicy")
	if err != nil {
		return nil, err
	}
	if err := policyName(in); err != nil {
		return nil, err
	}
	return map[string]string{"Policy": k.policy, "PolicyName": "default"}, nil
}

func (s *Server) kmsPutKeyPolicy(c caller, in map[string]json.RawMessage) (any, error) {
	k, err := s.keyParam(c, in, "kms:PutKeyPolicy")
	if err != nil {
		return nil, err
	}
	if err := policyName(in); err != nil {
		return nil, err
	}
	policy, err := str(in, "Policy", true)
	if err != nil {
		return nil, err
	}
	if k.manager == "AWS" {
		return nil, errorf(http.StatusBadRequest, "AccessDeniedException", "You cannot change the key policy of an AWS managed key")
	}
	if err := validatePolicy(policy); err != nil {
		return nil, err
	}
	if err := s.principalsExist(policy); err != nil {
		return nil, err
	}
	bypass := false
	if raw, ok := in["BypassPolicyLockoutSafetyCheck"]; ok {
		_ = json.Unmarshal(raw, &bypass)
	}
	if !bypass && s.locksOut(k, policy, c) {
		return nil, errorf(http.StatusBadRequest, "MalformedPolicyDocumentException",
			"The new key policy will not allow you to update the key policy in the future.")
	}
	k.policy = policy
	return map[string]any{}, nil
}

func (s *Server) kmsListKeyPolicies(c caller, in map[string]json.RawMessage) (any, error) {
	if _, err := s.keyParam(c, in, "kms:ListKeyPolicies"); err != nil {
		return nil, err
	}
	return map[string]any{"PolicyNames": []string{"default"}, "Truncated": false}, nil
}

func (s *Server) newAlias(keyARN string) *alias {
	now := s.now().UTC()
	return &alias{keyARN: keyARN, created: now, updated: now}
}

// maxAliasesPerKey is KMS's quota of aliases a customer managed key may
// have (AWS KMS Developer Guide, "Resource quotas").
const maxAliasesPerKey = 50

var aliasNameRE = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]+$`)

// aliasName reads and checks AliasName: 1 to 256 characters, "alias/" and
// then letters, digits, '/', '_' and '-'; "alias/aws/" is AWS's.
func aliasName(in map[string]json.RawMessage) (string, error) {
	name, err := str(in, "AliasName", true)
	if err != nil {
		return "", err
	}
	if len(name) > 256 || !aliasNameRE.MatchString(name) {
		return "", errorf(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value '%s' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$", name)
	}
	if strings.HasPrefix(name, "alias/aws/") {
		return "", errorf(http.StatusBadRequest, "NotAuthorizedException", "Cannot create or delete an alias with the reserved prefix alias/aws/")
	}
	return name, nil
}

// authorizeAlias authorises an alias operation as KMS does: the action on
// the alias (identity policy) and on the key it names (key policy, or IAM
// where the key policy delegates to it).
func (s *Server) authorizeAlias(c caller, aliasARN string, k *key, action string) error {
	if c.roleARN != "" {
		r := request{principal: c.arn, roleARN: c.roleARN, account: c.account, action: action, resource: aliasARN,
			context: s.principalContext(c)}
		if allowed, denied := s.identityAllows(r); denied {
			return accessDenied(r, "with an explicit deny in an identity-based policy")
		} else if !allowed {
			return accessDenied(r, "because no identity-based policy allows the "+action+" action")
		}
	}
	return s.authorizeCall(c, k, action, nil)
}

func (s *Server) kmsCreateAlias(c caller, in map[string]json.RawMessage) (any, error) {
	name, err := aliasName(in)
	if err != nil {
		return nil, err
	}
	target, err := str(in, "TargetKeyId", true)
	if err != nil {
		return nil, err
	}
	k, err := s.findKey(c, target)
	if err != nil {
		return nil, err
	}
	if k.account != c.account || k.region != c.region || k.manager != "CUSTOMER" {
		// Aliases are per account and region, and only for customer
		// managed keys: there is no cross-account use.
		return nil, errorf(http.StatusBadRequest, "NotFoundException", "Key '%s' does not exist", target)
	}
	aliasARN := fmt.Sprintf("arn:aws:kms:%s:%s:%s", c.region, c.account, name)
	if err := s.authorizeAlias(c, aliasARN, k, "kms:CreateAlias"); err != nil {
		return nil, err
	}
	if k.state == "PendingDeletion" {
		return nil, errorf(http.StatusBadRequest, "KMSInvalidStateException", "%s is pending deletion.", k.arn)
	}
	if _, exists := s.world.aliases[aliasARN]; exists {
		return nil, errorf(http.StatusBadRequest, "AlreadyExistsException", "An alias with the name %s already exists", aliasARN)
	}
	n := 0
	for _, a := range s.world.aliases {
		if a.keyARN == k.arn {
			n++
		}
	}
	if n >= maxAliasesPerKey {
		return nil, errorf(http.StatusBadRequest, "LimitExceededException", "Key %s has reached the limit of %d aliases", k.arn, maxAliasesPerKey)
	}
	s.world.aliases[aliasARN] = s.newAlias(k.arn)
	return map[string]any{}, nil
}

func (s *Server) kmsDeleteAlias(c caller, in map[string]json.RawMessage) (any, error) {
	name, err := aliasName(in)
	if err != nil {
		return nil, err
	}
	aliasARN := fmt.Sprintf("arn:aws:kms:%s:%s:%s", c.region, c.account, name)
	a, ok := s.world.aliases[aliasARN]
	if !ok {
		return nil, errorf(http.StatusBadRequest, "NotFoundException", "Alias %s is not found.", aliasARN)
	}
	if err := s.authorizeAlias(c, aliasARN, s.world.keys[a.keyARN], "kms:DeleteAlias"); err != nil {
		return nil, err
	}
	delete(s.world.aliases, aliasARN)
	return map[string]any{}, nil
}

// kmsListAliases lists the caller's aliases in the region (those of one
// key with KeyId), in pages of Limit (1 to 100, 50 by default) from Marker.
// It needs kms:ListAliases in the caller's identity policy only.
func (s *Server) kmsListAliases(c caller, in map[string]json.RawMessage) (any, error) {
	if !s.roleMay(c, "kms:ListAliases", "*") {
		return nil, accessDenied(request{principal: c.arn, action: "kms:ListAliases", resource: "*"}, "because no identity-based policy allows the kms:ListAliases action")
	}
	var filter *key
	if id, err := str(in, "KeyId", false); err != nil {
		return nil, err
	} else if id != "" {
		if filter, err = s.findKey(c, id); err != nil {
			return nil, err
		}
	}
	limit := 50
	if raw, ok := in["Limit"]; ok {
		if err := json.Unmarshal(raw, &limit); err != nil || limit < 1 || limit > 100 {
			return nil, errorf(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value between 1 and 100")
		}
	}
	marker, err := str(in, "Marker", false)
	if err != nil {
		return nil, err
	}
	prefix := fmt.Sprintf("arn:aws:kms:%s:%s:", c.region, c.account)
	var arns []string
	for aliasARN, a := range s.world.aliases {
		if strings.HasPrefix(aliasARN, prefix) && (filter == nil || filter.arn == a.keyARN) && aliasARN > marker {
			arns = append(arns, aliasARN)
		}
	}
	sort.Strings(arns)
	out := map[string]any{"Truncated": false}
	if len(arns) > limit {
		arns = arns[:limit]
		out["Truncated"], out["NextMarker"] = true, arns[limit-1]
	}
	aliases := []map[string]any{}
	for _, aliasARN := range arns {
		a := s.world.aliases[aliasARN]
		aliases = append(aliases, map[string]any{"AliasName": strings.TrimPrefix(aliasARN, prefix), "AliasArn": aliasARN, "TargetKeyId": s.world.keys[a.keyARN].id,
			"CreationDate": epoch(a.created), "LastUpdatedDate": epoch(a.updated)})
	}
	out["Aliases"] = aliases
	return out, nil
}

func setKeyState(state string) func(*Server, caller, map[string]json.RawMessage) (any, error) {
	action := "kms:EnableKey"
	if state == "Disabled" {
		action = "kms:DisableKey"
	}
	return func(s *Server, c caller, in map[string]json.RawMessage) (any, error) {
		k, err := s.keyParam(c, in, action)
		if err != nil {
			return nil, err
		}
		if k.manager == "AWS" {
			return nil, errorf(http.StatusBadRequest, "UnsupportedOperationException", "You cannot change the state of an AWS managed key")
		}
		if k.state == "PendingDeletion" {
			return nil, errorf(http.StatusBadRequest, "KMSInvalidStateException", "%s is pending deletion.", k.arn)
		}
		k.state = state
		return map[string]any{}, nil
	}
}

func (s *Server) kmsScheduleKeyDeletion(c caller, in map[string]json.RawMessage) (any, error) {
	k, err := s.keyParam(c, in, "kms:ScheduleKeyDeletion")
	if err != nil {
		return nil, err
	}
	days := 30
	if raw, ok := in["PendingWindowInDays"]; ok {
		if err := json.Unmarshal(raw, &days); err != nil || days < 7 || days > 30 {
			return nil, errorf(http.StatusBadRequest, "ValidationException", "PendingWindowInDays must be between 7 and 30")
		}
	}
	if k.manager == "AWS" {
		return nil, errorf(http.StatusBadRequest, "UnsupportedOperationException", "You cannot schedule the deletion of an AWS managed key")
	}
	k.state = "PendingDeletion"
	k.deletionDate = s.now().UTC().Add(time.Duration(days) * 24 * time.Hour)
	return map[string]any{"KeyId": k.arn, "DeletionDate": epoch(k.deletionDate), "KeyState": k.state, "PendingWindowInDays": days}, nil
}

// grantOperations are the operations a grant may allow.
var grantOperations = []string{"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo",
	"Sign", "Verify", "GetPublicKey", "CreateGrant", "RetireGrant", "DescribeKey", "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext",
	"GenerateMac", "VerifyMac", "DeriveSharedSecret"}

func (s *Server) kmsCreateGrant(c caller, in map[string]json.RawMessage) (any, error) {
	id, err := str(in, "KeyId", true)
	if err != nil {
		return nil, err
	}
	k, err := s.findKey(c, id)
	if err != nil {
		return nil, err
	}
	grantee, err := str(in, "GranteePrincipal", true)
	if err != nil {
		return nil, err
	}
	retiring, err := str(in, "RetiringPrincipal", false)
	if err != nil {
		return nil, err
	}
	name, err := str(in, "Name", false)
	if err != nil {
		return nil, err
	}
	var ops []string
	if raw, ok := in["Operations"]; !ok || json.Unmarshal(raw, &ops) != nil || len(ops) == 0 {
		return nil, errorf(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value null at 'operations' failed to satisfy constraint: Member must not be null")
	}
	for _, op := range ops {
		if !slices.Contains(grantOperations, op) {
			return nil, errorf(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value '[%s]' at 'operations' failed to satisfy constraint: Member must satisfy enum value set", op)
		}
	}
	var cons *grantConstraints
	if raw, ok := in["Constraints"]; ok {
		cons = &grantConstraints{}
		if err := json.Unmarshal(raw, cons); err != nil {
			return nil, errorf(http.StatusBadRequest, "SerializationException", "Constraints has the wrong shape")
		}
	}
	// A direct call: kms:GrantIsForAWSResource is false, and no service is
	// in between.
	if err := s.authorizeCall(c, k, "kms:CreateGrant", map[string][]string{
		"kms:granteeprincipal":      {grantee},
		"kms:grantoperations":       ops,
		"kms:grantisforawsresource": {"false"},
	}); err != nil {
		return nil, err
	}
	if k.state != "Enabled" {
		return nil, errorf(http.StatusBadRequest, "KMSInvalidStateException", "%s is %s.", k.arn, strings.ToLower(k.state))
	}
	if dryRun(in) {
		return nil, errorf(http.StatusPreconditionFailed, "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.")
	}
	// CreateGrant with the same name and parameters returns the same grant.
	sorted := slices.Sorted(slices.Values(ops))
	for _, g := range k.grants {
		if name != "" && g.name == name && g.grantee == grantee && slices.Equal(g.operations, sorted) && g.retiring == retiring {
			return map[string]string{"GrantId": g.id, "GrantToken": g.token}, nil
		}
	}
	g := &grant{
		id: newID("", 32), name: name, token: newID("AQpAM", 40), grantee: grantee, retiring: retiring,
		issuingAccount: "arn:aws:iam::" + c.account + ":root", operations: sorted, constraints: cons, created: s.now().UTC(),
	}
	k.grants = append(k.grants, g)
	return map[string]string{"GrantId": g.id, "GrantToken": g.token}, nil
}

func (s *Server) kmsListGrants(c caller, in map[string]json.RawMessage) (any, error) {
	k, err := s.keyParam(c, in, "kms:ListGrants")
	if err != nil {
		return nil, err
	}
	grants := []map[string]any{}
	for _, g := range k.grants {
		out := map[string]any{
			"KeyId": k.arn, "GrantId": g.id, "Name": g.name, "CreationDate": epoch(g.created), "GranteePrincipal": g.grantee,
			"IssuingAccount": g.issuingAccount, "Operations": g.operations,
		}
		if g.retiring != "" {
			out["RetiringPrincipal"] = g.retiring
		}
		if g.constraints != nil {
			out["Constraints"] = g.constraints
		}
		grants = append(grants, out)
	}
	return map[string]any{"Grants": grants, "Truncated": false}, nil
}

func (s *Server) removeGrant(k *key, id string) error {
	for i, g := range k.grants {
		if g.id == id {
			k.grants = append(k.grants[:i], k.grants[i+1:]...)
			return nil
		}
	}
	return errorf(http.StatusBadRequest, "NotFoundException", "Grant ID %s not found", id)
}

func (s *Server) kmsRevokeGrant(c caller, in map[string]json.RawMessage) (any, error) {
	k, err := s.keyParam(c, in, "kms:RevokeGrant")
	if err != nil {
		return nil, err
	}
	id, err := str(in, "GrantId", true)
	if err != nil {
		return nil, err
	}
	return map[string]any{}, s.removeGrant(k, id)
}

func (s *Server) kmsRetireGrant(c caller, in map[string]json.RawMessage) (any, error) {
	token, err := str(in, "GrantToken", false)
	if err != nil {
		return nil, err
	}
	for _, k := range s.world.keys {
		for _, g := range k.grants {
			if token != "" && g.token == token {
				return map[string]any{}, s.removeGrant(k, g.id)
			}
		}
	}
	k, err := s.keyParam(c, in, "kms:RetireGrant")
	if err != nil {
		return nil, err
	}
	id, err := str(in, "GrantId", true)
	if err != nil {
		return nil, err
	}
	return map[string]any{}, s.removeGrant(k, id)
}
