package keypolicy

import (
	"strings"
)

// Authorization is the outcome of KMS's authorisation of one request: the
// key policy, the caller's identity policy and the key's grants together.
type Authorization struct {
	Decision  Decision
	KeyPolicy Result
	// Identity is the identity-policy result, or nil when the identity
	// policy was not needed or not known.
	Identity *Result
	// IdentityAllows tells whether the caller's IAM permissions allow the
	// action (assumed true when unknown, except for roles known to have no
	// KMS permissions).
	IdentityAllows bool
	// Grant is the grant that allowed the request, if one did.
	Grant *Grant
	// CrossAccount is true when the caller is outside the key's account.
	CrossAccount bool
}

// Authorize decides a request to use the key the way KMS does (AWS KMS
// Developer Guide, "Troubleshooting key access" and "Grants in AWS KMS"):
//   - an explicit Deny in the key policy or the identity policy wins, also
//     over grants;
//   - within the key's account, a key-policy Allow naming the caller
//     suffices; one naming only the account delegates to IAM, so the
//     identity policy must allow too;
//   - from another account, the key policy must allow the caller (or its
//     account) and the identity policy must allow too;
//   - a grant whose grantee is the caller and whose operations include the
//     action allows it, with no policy needed.
//
// identity is the caller's identity policy; nil means unknown, which is
// taken as allowing, except for Auto Scaling's service-linked roles whose
// managed policy grants no KMS permission.
func Authorize(key *Key, req Request, identity *Policy) Authorization {
	action := strings.ToLower(req.Action)
	ctx := req.context()
	c := parseCaller(req.Principal)
	keyAccount := ""
	if a, err := ParseARN(key.ARN); err == nil {
		keyAccount = a.Account
	}
	auth := Authorization{CrossAccount: c.account != keyAccount}
	auth.KeyPolicy = key.Policy.evaluate(req.Principal, action, req.Resource, ctx, req.Undecidable, keyPolicy)
	auth.IdentityAllows = identityAllows(c, identity)
	if identity != nil {
		r := identity.evaluate(req.Principal, action, req.Resource, ctx, req.Undecidable, identityPolicy)
		auth.Identity = &r
		auth.IdentityAllows = r.Decision == Allowed
		if r.Decision == ExplicitDeny {
			auth.Decision = ExplicitDeny
			return auth
		}
	}
	if auth.KeyPolicy.Decision == ExplicitDeny {
		auth.Decision = ExplicitDeny
		return auth
	}
	if auth.KeyPolicy.Decision == Allowed {
		direct := auth.KeyPolicy.Direct && !auth.CrossAccount
		if direct || auth.IdentityAllows {
			auth.Decision = Allowed
			return auth
		}
	}
	if g := key.grantFor(c, action, ctx, auth.IdentityAllows); g != nil {
		auth.Decision, auth.Grant = Allowed, g
	}
	return auth
}

// identityAllows is the assumption made when no identity policy is given.
func identityAllows(c caller, identity *Policy) bool {
	if identity != nil {
		return false // decided by evaluating it
	}
	if c.kind == callerRoot {
		return true
	}
	return !IsAutoScalingServiceLinkedRole(c.arn) && !(c.kind == callerSession && strings.HasPrefix(c.roleName, "AWSServiceRoleForAutoScaling"))
}

// IsAutoScalingServiceLinkedRole reports whether arn is an Auto Scaling
// service-linked role (the default one or one with a custom suffix).
func IsAutoScalingServiceLinkedRole(arn string) bool {
	a, err := ParseARN(arn)
	return err == nil && a.Service == "iam" &&
		strings.HasPrefix(a.Resource, "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling")
}

// grantFor returns a grant that allows the request, or nil.
func (k *Key) grantFor(c caller, action string, ctx map[string][]string, identityAllows bool) *Grant {
	op := strings.TrimPrefix(action, "kms:")
	try := func(g *Grant) bool {
		return g.hasOperation(op) && g.grantee(c, identityAllows) && g.constraintsHold(ctx)
	}
	if k.grantsByAccount != nil { // only a grant in the caller's account can name it
		for _, i := range k.grantsByAccount[c.account] {
			if try(&k.Grants[i]) {
				return &k.Grants[i]
			}
		}
		return nil
	}
	for i := range k.Grants {
		if try(&k.Grants[i]) {
			return &k.Grants[i]
		}
	}
	return nil
}

// arnAccount is the account field of an ARN (the fifth, between the
// fourth and fifth colons), without allocating; "" when s has fewer.
func arnAccount(s string) string {
	start := 0
	for field := 0; field < 4; field++ {
		i := strings.IndexByte(s[start:], ':')
		if i < 0 {
			return ""
		}
		start += i + 1
	}
	end := strings.IndexByte(s[start:], ':')
	if end < 0 {
		return ""
	}
	return s[start : start+end]
}

func (g *Grant) hasOperation(op string) bool {
	for _, o := range g.Operations {
		if strings.EqualFold(o, op) {
			return true
		}
	}
	return false
}

// grantee reports whether the caller is the grant's grantee: the principal
// itself, a session of the granted role, or (when the grantee is an
// account) a principal of that account whose IAM permissions allow it.
func (g *Grant) grantee(c caller, identityAllows bool) bool {
	if g.GranteePrincipal == c.arn {
		return true
	}
	// Cheap filters before parsing: the grantee is in the caller's
	// account; a role grantee ends with the caller's role name, an account
	// grantee with ":root".
	if c.account == "" || arnAccount(g.GranteePrincipal) != c.account {
		return false
	}
	if !strings.HasSuffix(g.GranteePrincipal, ":root") && (c.roleName == "" || !strings.HasSuffix(g.GranteePrincipal, "/"+c.roleName)) {
		return false
	}
	gc := parseCaller(g.GranteePrincipal)
	switch gc.kind {
	case callerRole:
		return gc.account == c.account && gc.roleName == c.roleName && (c.kind == callerRole || c.kind == callerSession)
	case callerRoot:
		return gc.account == c.account && identityAllows
	}
	return false
}

// constraintsHold checks the grant's encryption-context constraints against
// the request's encryption context (kms:EncryptionContext:KEY context keys).
func (g *Grant) constraintsHold(ctx map[string][]string) bool {
	if len(g.EncryptionContextEquals) == 0 && len(g.EncryptionContextSubset) == 0 {
		return true
	}
	const prefix = "kms:encryptioncontext:"
	reqEC := map[string]string{}
	for k, v := range ctx {
		if strings.HasPrefix(k, prefix) && len(v) == 1 {
			reqEC[k[len(prefix):]] = v[0]
		}
	}
	if len(g.EncryptionContextEquals) > 0 {
		if len(reqEC) != len(g.EncryptionContextEquals) {
			return false
		}
		for k, v := range g.EncryptionContextEquals {
			if reqEC[strings.ToLower(k)] != v {
				return false
			}
		}
	}
	for k, v := range g.EncryptionContextSubset {
		if got, ok := reqEC[strings.ToLower(k)]; !ok || got != v {
			return false
		}
	}
	return true
}
