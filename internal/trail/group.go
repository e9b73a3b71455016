package trail

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// Finding is the denials of one principal on one key, with the fix.
type Finding struct {
	Principal string    `json:"principal"`
	Role      string    `json:"role,omitempty"`
	Key       string    `json:"key"`
	Account   string    `json:"account"`
	Region    string    `json:"region"`
	Actions   []string  `json:"actions"`
	Count     int       `json:"count"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
	Message   string    `json:"message"`
	Fix       string    `json:"fix"`
	// ErrorCodes are KMS's error codes for the denials (AccessDenied, or a
	// key state error such as DisabledException).
	ErrorCodes []string `json:"error_codes"`
}

// group is one finding being gathered, with what its fix depends on.
type group struct {
	f Finding
	// identityDenied: KMS said no identity-based policy allows the call,
	// so the key policy is not what is missing.
	identityDenied  bool
	resourceDenied  bool // KMS said no resource-based (key) policy allows it
	pendingDeletion bool
}

// Grouper gathers denials by principal (its role when known) and key. Its
// memory grows with the number of distinct principals and keys, not with
// the number of events: every denial is counted (an event read twice, from
// two trails that both log it, counts twice).
type Grouper struct {
	groups map[[2]string]*group
}

// NewGrouper returns an empty Grouper.
func NewGrouper() *Grouper {
	return &Grouper{groups: map[[2]string]*group{}}
}

// Add counts a denial.
func (g *Grouper) Add(d Denial) {
	k := [2]string{who(d.Principal, d.Role), d.Key}
	gr, ok := g.groups[k]
	if !ok {
		gr = &group{f: Finding{Principal: d.Principal, Role: d.Role, Key: d.Key, Account: d.Account, Region: d.Region, First: d.Time, Last: d.Time}}
		g.groups[k] = gr
	}
	f := &gr.f
	f.Count++
	if d.Time.Before(f.First) {
		f.First = d.Time
	}
	if d.Time.After(f.Last) {
		f.Last = d.Time
	}
	f.Actions = addSorted(f.Actions, d.Action)
	f.ErrorCodes = addSorted(f.ErrorCodes, d.ErrorCode)
	msg := strings.ToLower(d.ErrorMessage)
	gr.identityDenied = gr.identityDenied || strings.Contains(msg, "no identity-based policy allows")
	gr.resourceDenied = gr.resourceDenied || strings.Contains(msg, "no resource-based policy allows")
	gr.pendingDeletion = gr.pendingDeletion || strings.Contains(msg, "pending deletion")
}

// Findings returns the groups, with their message and fix, ordered by key
// and principal.
func (g *Grouper) Findings() []Finding {
	out := make([]Finding, 0, len(g.groups))
	for _, gr := range g.groups {
		f := gr.f
		f.Actions = append([]string(nil), f.Actions...)
		f.ErrorCodes = append([]string(nil), f.ErrorCodes...)
		f.Message, f.Fix = explain(gr)
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		return who(out[i].Principal, out[i].Role) < who(out[j].Principal, out[j].Role)
	})
	return out
}

// Group gathers denials already in memory; a stream goes through a
// Grouper instead.
func Group(ds []Denial) []Finding {
	g := NewGrouper()
	for _, d := range ds {
		g.Add(d)
	}
	return g.Findings()
}

func who(principal, role string) string {
	if role != "" {
		return role
	}
	return principal
}

// explain says why the launch broke and what fixes it, in the order the
// causes must be removed: the key's state, then Auto Scaling's grant, then
// the principal's identity policy, then the key policy.
func explain(gr *group) (message, fix string) {
	f := gr.f
	principal := who(f.Principal, f.Role)
	// The principal, key and actions are fields of their own: the message
	// says when, and why.
	message = fmt.Sprintf("KMS answered %s %d time(s), from %s to %s", strings.Join(f.ErrorCodes, ", "), f.Count,
		f.First.UTC().Format(time.RFC3339), f.Last.UTC().Format(time.RFC3339))
	keyARN, err := keypolicy.ParseKeyARN(f.Key)
	if err != nil {
		return message, "the event does not name the key by ARN; find it in the AMI's snapshots (aws ec2 describe-snapshots --snapshot-ids ...) and give " + principal + " access to it"
	}
	switch {
	case hasAny(f.ErrorCodes, "KMSInvalidStateException", "DisabledException"):
		state := "Disabled"
		if gr.pendingDeletion {
			state = "PendingDeletion"
		}
		for _, kf := range keypolicy.CheckKeyMetadata(keypolicy.Key{ARN: f.Key, State: state}) {
			if kf.Code == keypolicy.CodeKeyNotEnabled {
				return message + ": " + kf.Message, kf.Fix
			}
		}
	case hasAny(f.ErrorCodes, "NotFoundException"):
		return message + ": the key no longer exists (or is not in " + keyARN.Region + "), so nothing can decrypt the snapshots",
			"rebuild the image with its snapshots encrypted under an existing customer managed key"
	case f.Role != "" && keypolicy.IsAutoScalingServiceLinkedRole(f.Role):
		if keyARN.Account != f.Account {
			message += ": a role of another account can use the key only through a grant, because the Auto Scaling service-linked role's policy has no KMS permission (a key-policy allow alone is not enough)"
		}
		return message, keypolicy.GrantCommand(keyARN, f.Role, f.Account, true)
	case gr.identityDenied:
		stmt, _ := json.Marshal(map[string]any{"Effect": "Allow", "Action": f.Actions, "Resource": f.Key})
		return message + ": KMS says no identity-based policy of " + principal + " allows it (the key policy is not what is missing)",
			"add to the identity policy of " + principal + " in account " + f.Account + ": " + string(stmt)
	}
	message += ": the key policy does not let account " + f.Account + " use the key through EC2"
	if !gr.resourceDenied {
		message += " (if it does, look for an identity policy or a service control policy denying KMS in " + f.Account + ")"
	}
	stmts, err := keyPolicyStatements(keyARN, f.Account, f.Actions)
	if err != nil {
		return message, fmt.Sprintf("let account %s use the key through EC2 in the key policy of %s (%v)", f.Account, f.Key, err)
	}
	return message, fmt.Sprintf("in account %s, add to the key policy of %s (or let amigate patch it): %s", keyARN.Account, f.Key, strings.Join(stmts, " and "))
}

// keyPolicyStatements are the statements amigate's own patch would add for
// the account to make the refused calls through EC2: the key's use limited
// with kms:ViaService, and CreateGrant limited with
// kms:GrantIsForAWSResource. They come from the patch planner, so they are
// the ones `amigate check` would merge the account into.
func keyPolicyStatements(keyARN keypolicy.ARN, account string, actions []string) ([]string, error) {
	empty, err := keypolicy.Parse([]byte(`{"Version":"2012-10-17","Statement":[]}`))
	if err != nil {
		return nil, err
	}
	plan, err := keypolicy.PlanPatch(keypolicy.Key{ARN: keyARN.String(), Manager: "CUSTOMER", State: "Enabled", Policy: empty},
		[]keypolicy.Target{{Account: account, Paths: []keypolicy.Path{keypolicy.PathInstance}}}, keypolicy.PlanOptions{})
	if err != nil {
		return nil, err
	}
	var doc struct{ Statement []json.RawMessage }
	if err := json.Unmarshal(plan.After, &doc); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, a := range actions {
		if strings.EqualFold(a, "kms:CreateGrant") {
			want[keypolicy.SidEC2Grants] = true
		} else {
			want[keypolicy.SidUseKey] = true
		}
	}
	var out []string
	for _, raw := range doc.Statement {
		var s struct{ Sid string }
		if json.Unmarshal(raw, &s) == nil && want[s.Sid] {
			out = append(out, string(raw))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no statement planned for %s", strings.Join(actions, ", "))
	}
	return out, nil
}

func addSorted(list []string, s string) []string {
	if s == "" {
		return list
	}
	i := sort.SearchStrings(list, s)
	if i < len(list) && list[i] == s {
		return list
	}
	return append(list[:i], append([]string{s}, list[i:]...)...)
}

func hasAny(list []string, xs ...string) bool {
	for _, x := range xs {
		if i := sort.SearchStrings(list, x); i < len(list) && list[i] == x {
			return true
		}
	}
	return false
}
