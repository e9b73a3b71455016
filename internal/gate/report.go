package gate

import (
	"github.com/amigate/packer-plugin-amigate/internal/launch"
	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// Report is the outcome of a run: the verdict in the shape of DESIGN §3.1
// (ok, findings, targets → paths → findings), extended with where each
// path was checked (region, image, key), what changed, step timings and the
// API calls made. internal/report renders it as text, JUnit and Markdown;
// its JSON encoding is the report file.
type Report struct {
	OK bool `json:"ok"`
	// Error is why the run stopped before its verdict (an AWS or runtime
	// error); OK is then false, and what the report holds is what was
	// done and found until then.
	Error  string `json:"error,omitempty"`
	DryRun bool   `json:"dry_run"`
	// Audit is set for `amigate audit`: a released AMI checked again,
	// nothing changed.
	Audit bool   `json:"audit,omitempty"`
	RunID string `json:"run_id"`
	// Organization is where the organization targets were found, with the
	// accounts skipped; nil without organization targets.
	Organization *OrganizationInfo `json:"organization,omitempty"`
	// Images are the AMIs gated, with their snapshots.
	Images []ImageInfo `json:"images"`
	// Keys are the KMS keys of the snapshots.
	Keys []KeyInfo `json:"keys"`
	// Findings are about images and keys, not about one target.
	Findings []keypolicy.Finding `json:"findings"`
	Targets  []TargetReport      `json:"targets"`
	Changes  Changes             `json:"changes"`
	// Launches are the test launches made.
	Launches []launch.Outcome `json:"launches"`
	Timings  []Timing         `json:"timings"`
	// APICalls counts the calls made, by "service:Action".
	APICalls map[string]int `json:"api_calls"`
}

// ImageInfo is one AMI.
type ImageInfo struct {
	Region    string         `json:"region"`
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Snapshots []SnapshotInfo `json:"snapshots"`
}

// SnapshotInfo is one EBS snapshot of an AMI.
type SnapshotInfo struct {
	ID        string `json:"id"`
	Device    string `json:"device"`
	Encrypted bool   `json:"encrypted"`
	Key       string `json:"key,omitempty"`
}

// KeyInfo is one KMS key.
type KeyInfo struct {
	keypolicy.KeyInfo
	Region string `json:"region"`
}

// TargetReport is the verdict for one target account.
type TargetReport struct {
	Account string       `json:"account"`
	OK      bool         `json:"ok"`
	Paths   []PathReport `json:"paths"`
}

// PathReport is the verdict for one path of a target, in one region and
// for one key.
type PathReport struct {
	keypolicy.PathVerdict
	Region string `json:"region"`
	Image  string `json:"image"`
	Key    string `json:"key"`
}

// Changes are what the run changed, or would change in a dry run
// (Applied false).
type Changes struct {
	LaunchPermissions   []PermissionChange `json:"launch_permissions"`
	SnapshotPermissions []PermissionChange `json:"snapshot_permissions"`
	KeyPolicies         []KeyPolicyChange  `json:"key_policies"`
	Grants              []GrantChange      `json:"grants"`
}

// Count is the number of changes.
func (c Changes) Count() int {
	return len(c.LaunchPermissions) + len(c.SnapshotPermissions) + len(c.KeyPolicies) + len(c.Grants)
}

// PermissionChange adds launch (image) or create-volume (snapshot)
// permissions.
type PermissionChange struct {
	Region   string   `json:"region"`
	Resource string   `json:"resource"`
	Added    []string `json:"added"`
	Applied  bool     `json:"applied"`
}

// KeyPolicyChange is one key policy rewritten.
type KeyPolicyChange struct {
	Key    string `json:"key"`
	Before string `json:"before"`
	After  string `json:"after"`
	// Added lists, per amigate statement Sid, the principals or values added.
	Added   map[string][]string `json:"added"`
	Diff    string              `json:"diff"`
	Applied bool                `json:"applied"`
	// Attempts is how many times the policy was written: more than one when
	// a writer outside amigate's lock changed it at the same time.
	Attempts int `json:"attempts"`
	// LockWaitMS is how long the run waited for the key's policy lock;
	// LockTakenOver is set when it took over a stale one.
	LockWaitMS    int64 `json:"lock_wait_ms"`
	LockTakenOver bool  `json:"lock_taken_over,omitempty"`
}

// GrantChange is one KMS grant created for an Auto Scaling service-linked
// role.
type GrantChange struct {
	Key        string   `json:"key"`
	Grantee    string   `json:"grantee"`
	Name       string   `json:"name"`
	Operations []string `json:"operations"`
	// From is the account that created the grant: the target, or the source.
	From    string `json:"from"`
	GrantID string `json:"grant_id,omitempty"`
	Applied bool   `json:"applied"`
}

// Timing is how long a step took.
type Timing struct {
	Step         string `json:"step"`
	Milliseconds int64  `json:"ms"`
}

// Failures lists the failing targets with their error findings, for the
// error a Packer build fails with.
func (r *Report) Failures() []string {
	var out []string
	for _, f := range r.Findings {
		if f.Severity == keypolicy.SeverityError {
			out = append(out, f.Code+": "+f.Message)
		}
	}
	for _, t := range r.Targets {
		for _, p := range t.Paths {
			for _, f := range p.Findings {
				if f.Severity == keypolicy.SeverityError {
					out = append(out, t.Account+" "+p.Region+" "+string(p.Path)+": "+f.Code+": "+f.Message+" (fix: "+f.Fix+")")
				}
			}
		}
	}
	return out
}
