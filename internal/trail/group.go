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
}

// Grouper gathers denials by principal (its role when known) and key; its
// memory grows with the number of distinct principals and keys, not with
// the number of events.
type Grouper struct {
	groups map[[2]string]*Finding
	seen   map[string]bool
}

// NewGrouper returns an empty Grouper.
func NewGrouper() *Grouper {
	return &Grouper{groups: map[[2]string]*Finding{}, seen: map[string]bool{}}
}

// Add counts a denial (once per event id).
func (g *Grouper) Add(d Denial) {
	if d.EventID != "" {
		if g.seen[d.EventID] {
			return
		}
		g.seen[d.EventID] = true
	}
	who := d.Role
	if who == "" {
		who = d.Principal
	}
	k := [2]string{who, d.Key}
	f, ok := g.groups[k]
	if !ok {
		f = &Finding{Principal: d.Principal, Role: d.Role, Key: d.Key, Account: d.Account, Region: d.Region, First: d.Time, Last: d.Time}
		g.groups[k] = f
	}
	f.Count++
	if d.Time.Before(f.First) {
		f.First = d.Time
	}
	if d.Time.After(f.Last) {
		f.Last = d.Time
	}
	if !contains(f.Actions, d.Action) {
		f.Actions = append(f.Actions, d.Action)
		sort.Strings(f.Actions)
	}
}

// Findings returns the groups, with their message and fix, in a stable
// order.
func (g *Grouper) Findings() []Finding {
	out := make([]Finding, 0, len(g.groups))
	for _, f := range g.groups {
		f.Message, f.Fix = explain(*f)
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		return out[i].Principal < out[j].Principal
	})
	return out
}

func explain(f Finding) (message, fix string) {
	who := f.Principal
	if f.Role != "" {
		who = f.Role
	}
	message = fmt.Sprintf("KMS refused %s to %s on %s (%d time(s), %s to %s)", strings.Join(f.Actions, ", "), who, f.Key, f.Count,
		f.First.UTC().Format(time.RFC3339), f.Last.UTC().Format(time.RFC3339))
	keyARN, err := keypolicy.ParseKeyARN(f.Key)
	if err != nil {
		return message, "the key is not named by ARN in the event; find it in the AMI's snapshots (aws ec2 describe-snapshots) and give " + who + " access to it"
	}
	if f.Role != "" && keypolicy.IsAutoScalingServiceLinkedRole(f.Role) {
		if keyARN.Account != f.Account {
			message += ": a role of another account can use the key only through a grant, because the Auto Scaling service-linked role's policy has no KMS permission"
		}
		return message, keypolicy.GrantCommand(keyARN, f.Role, f.Account, true)
	}
	return message, "add to the key policy of " + f.Key + ": " + statementFor(f, keyARN)
}

// statementFor is the least-privilege statement that lets the account use
// the key through EC2 for the refused actions.
func statementFor(f Finding, key keypolicy.ARN) string {
	var use, grant []string
	for _, a := range f.Actions {
		if strings.EqualFold(a, "kms:CreateGrant") {
			grant = append(grant, a)
		} else {
			use = append(use, a)
		}
	}
	principal := map[string]string{"AWS": keypolicy.RootARN(key.Partition, f.Account)}
	var stmts []map[string]any
	if len(use) > 0 {
		stmts = append(stmts, map[string]any{"Effect": "Allow", "Principal": principal, "Action": use, "Resource": "*",
			"Condition": map[string]any{"StringEquals": map[string]string{"kms:ViaService": "ec2." + key.Region + ".amazonaws.com"}}})
	}
	if len(grant) > 0 {
		stmts = append(stmts, map[string]any{"Effect": "Allow", "Principal": principal, "Action": "kms:CreateGrant", "Resource": "*",
			"Condition": map[string]any{"Bool": map[string]string{"kms:GrantIsForAWSResource": "true"}}})
	}
	var parts []string
	for _, s := range stmts {
		b, _ := json.Marshal(s)
		parts = append(parts, string(b))
	}
	return strings.Join(parts, " and ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
