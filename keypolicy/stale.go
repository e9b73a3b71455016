package keypolicy

import "regexp"

// CodeStalePrincipal: the key policy names a deleted principal by its
// unique id, and KMS refuses any PutKeyPolicy until that statement changes,
// so the patch the targets need cannot be written.
const CodeStalePrincipal = "KEY_POLICY_STALE_PRINCIPAL"

// uniqueIDRE matches an IAM unique id: what a policy shows in place of a
// principal's ARN once that principal is deleted (IAM User Guide, "IAM
// identifiers", unique identifiers: AROA for a role, AIDA for a user, ...).
var uniqueIDRE = regexp.MustCompile(`^A(ROA|IDA|GPA|NPA|NVA|KIA|SIA|PKA|CCA|3T)[A-Z0-9]{12,}$`)

// StalePrincipals are the principals the policy names by unique id: each
// stands for a principal that was deleted after the policy named it. KMS
// refuses a PutKeyPolicy whose document names one ("invalid principals"),
// so no patch can be written until the statements that hold them change.
func (p *Policy) StalePrincipals() []Stale {
	var out []Stale
	for i := range p.Statements {
		st := &p.Statements[i]
		for _, pr := range []*Principal{st.Principal, st.NotPrincipal} {
			if pr == nil {
				continue
			}
			for _, v := range pr.AWS.Items {
				if uniqueIDRE.MatchString(v) {
					out = append(out, Stale{Statement: st.name(i), ID: v})
				}
			}
		}
	}
	return out
}

// Stale is a principal a statement names by the unique id of a deleted
// principal.
type Stale struct {
	Statement string
	ID        string
}
