package amigate

import (
	"strings"
	"testing"
)

func TestParseArtifactID(t *testing.T) {
	got, err := ParseArtifactID("us-east-1:ami-0123456789abcdef0,eu-west-1:ami-12345678")
	if err != nil {
		t.Fatal(err)
	}
	if describeAMIs(got) != "eu-west-1:ami-12345678,us-east-1:ami-0123456789abcdef0" {
		t.Errorf("got %v", got)
	}
	for id, want := range map[string]string{
		"Null":                          `"Null" is not region:ami-id`,
		"us-east-1:i-0123456789abcdef0": `"i-0123456789abcdef0" is not an AMI id`,
		"mars:ami-12345678":             `"mars" is not an AWS region`,
		"us-east-1:ami-12345678,us-east-1:ami-87654321": "two AMIs in us-east-1",
	} {
		if _, err := ParseArtifactID(id); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseArtifactID(%q) = %v, want %q", id, err, want)
		}
	}
}

func TestAcceptsBuilder(t *testing.T) {
	for id, want := range map[string]bool{
		"mitchellh.amazonebs": true, "mitchellh.amazon.ebssurrogate": true, "mitchellh.amazon.instance": true,
		"mitchellh.amazon.chroot": true, "packer.post-processor.amazon-import": true, "fnoeding.null": false,
	} {
		if AcceptsBuilder(id) != want {
			t.Errorf("AcceptsBuilder(%q) != %v", id, want)
		}
	}
}
