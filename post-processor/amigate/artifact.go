package amigate

import (
	"fmt"
	"sort"
	"strings"

	"github.com/amigate/packer-plugin-amigate/internal/gate"
)

// amazonBuilderIDs are the artifacts whose Id() lists AMIs as
// "region:ami-id,..." (packer-plugin-amazon's builders and amazon-import).
var amazonBuilderIDs = map[string]bool{
	"mitchellh.amazonebs":                 true, // amazon-ebs
	"mitchellh.amazon.ebssurrogate":       true, // amazon-ebssurrogate
	"mitchellh.amazon.instance":           true, // amazon-instance
	"mitchellh.amazon.chroot":             true, // amazon-chroot
	"packer.post-processor.amazon-import": true, // amazon-import
}

// AcceptsBuilder reports whether amigate can read AMIs from an artifact
// with this BuilderId.
func AcceptsBuilder(id string) bool { return amazonBuilderIDs[id] }

// ParseArtifactID reads an amazon artifact's Id(): comma-separated
// "region:ami-id" pairs.
func ParseArtifactID(id string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(id, ",") {
		region, ami, ok := strings.Cut(strings.TrimSpace(part), ":")
		switch {
		case !ok:
			return nil, fmt.Errorf("artifact id %q: %q is not region:ami-id", id, part)
		case !gate.ValidRegion(region):
			return nil, fmt.Errorf("artifact id %q: %q is not an AWS region", id, region)
		case !gate.ValidAMI(ami):
			return nil, fmt.Errorf("artifact id %q: %q is not an AMI id", id, ami)
		}
		if prev, dup := out[region]; dup && prev != ami {
			return nil, fmt.Errorf("artifact id %q: two AMIs in %s", id, region)
		}
		out[region] = ami
	}
	return out, nil
}

// describeAMIs renders region → AMI for messages, sorted by region.
func describeAMIs(amis map[string]string) string {
	regions := make([]string, 0, len(amis))
	for r := range amis {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	parts := make([]string, len(regions))
	for i, r := range regions {
		parts[i] = r + ":" + amis[r]
	}
	return strings.Join(parts, ",")
}
