package awsim

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

func (s *Server) ownSnapshot(c caller, id string) (*snapshot, error) {
	sn, ok := s.world.snapshots[id]
	if !ok || sn.account != c.account || sn.region != c.region {
		return nil, errorf(http.StatusBadRequest, "InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
	}
	return sn, nil
}

// ec2ModifySnapshotAttribute accepts both request forms: the
// CreateVolumePermission structure and the older
// OperationType/UserId.N parameters.
func (s *Server) ec2ModifySnapshotAttribute(c caller, form url.Values) (any, error) {
	sn, err := s.ownSnapshot(c, form.Get("SnapshotId"))
	if err != nil {
		return nil, err
	}
	var changes []func()
	apply := func(user string, add bool) error {
		if !validAccount(user) {
			return errorf(http.StatusBadRequest, "InvalidParameterValue", "Value (%s) for parameter userId is invalid.", user)
		}
		changes = append(changes, func() { setMember(sn.createVolumeUsers, user, add) })
		return nil
	}
	for _, verb := range []string{"Add", "Remove"} {
		for i := 1; ; i++ {
			user := form.Get("CreateVolumePermission." + verb + "." + strconv.Itoa(i) + ".UserId")
			if user == "" {
				break
			}
			if err := apply(user, verb == "Add"); err != nil {
				return nil, err
			}
		}
	}
	if op := form.Get("OperationType"); op != "" {
		if op != "add" && op != "remove" {
			return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "Value (%s) for parameter operationType is invalid.", op)
		}
		for _, user := range indexed(form, "UserId") {
			if err := apply(user, op == "add"); err != nil {
				return nil, err
			}
		}
	}
	if form.Get("DryRun") == "true" {
		return nil, errDryRunEC2()
	}
	for _, change := range changes {
		change()
	}
	return returnTrue{Return: true}, nil
}

func (s *Server) ec2DescribeSnapshotAttribute(c caller, form url.Values) (any, error) {
	sn, err := s.ownSnapshot(c, form.Get("SnapshotId"))
	if err != nil {
		return nil, err
	}
	if form.Get("Attribute") != "createVolumePermission" {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "Value (%s) for parameter attribute is invalid.", form.Get("Attribute"))
	}
	type perm struct {
		UserID string `xml:"userId"`
	}
	var perms []perm
	for _, u := range sortedKeys(sn.createVolumeUsers) {
		perms = append(perms, perm{UserID: u})
	}
	return struct {
		XMLName    xml.Name `xml:"R"`
		SnapshotID string   `xml:"snapshotId"`
		Perms      []perm   `xml:"createVolumePermission>item"`
	}{SnapshotID: sn.id, Perms: perms}, nil
}

// asUpdateGroup serves UpdateAutoScalingGroup and SetDesiredCapacity.
func (s *Server) asUpdateGroup(c caller, form url.Values) (any, error) {
	name, err := required(form, "AutoScalingGroupName")
	if err != nil {
		return nil, err
	}
	g, ok := s.world.groups[c.account+"/"+c.region+"/"+name]
	if !ok {
		return nil, errorf(http.StatusBadRequest, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", name)
	}
	min, max, desired := g.min, g.max, g.desired
	for field, dst := range map[string]*int{"MinSize": &min, "MaxSize": &max, "DesiredCapacity": &desired} {
		if v := form.Get(field); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, errorf(http.StatusBadRequest, "ValidationError", "%s must be a non-negative integer", field)
			}
			*dst = n
		}
	}
	if desired < min || desired > max {
		return nil, errorf(http.StatusBadRequest, "ValidationError", "New SetDesiredCapacity value %d is below min value %d or above max value %d for the AutoScalingGroup.", desired, min, max)
	}
	g.min, g.max, g.desired = min, max, desired
	s.prune(g)
	for len(g.instances) > g.desired {
		last := g.instances[len(g.instances)-1]
		if in, ok := s.world.instances[last]; ok {
			s.terminate(in)
		}
		g.instances = g.instances[:len(g.instances)-1]
	}
	s.scale(g)
	return emptyResult{}, nil
}

// ciphertext is the simulator's stand-in for a KMS ciphertext blob: it
// names the key, so Decrypt can find it, as real ciphertexts do.
func ciphertext(keyARN string) string {
	return base64.StdEncoding.EncodeToString([]byte("awsim:" + keyARN))
}

func keyOfCiphertext(blob string) string {
	b, err := base64.StdEncoding.DecodeString(blob)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(string(b), "awsim:")
}

// kmsCrypto serves the direct cryptographic calls EBS makes through EC2,
// authorised like any other call.
func kmsCrypto(action string) func(*Server, caller, map[string]json.RawMessage) (any, error) {
	return func(s *Server, c caller, in map[string]json.RawMessage) (any, error) {
		var k *key
		if action == "kms:Decrypt" || action == "kms:ReEncryptFrom" {
			blob, err := str(in, "CiphertextBlob", true)
			if err != nil {
				return nil, err
			}
			arn := keyOfCiphertext(blob)
			if k = s.world.keys[arn]; k == nil {
				return nil, errorf(http.StatusBadRequest, "InvalidCiphertextException", "The ciphertext is not valid")
			}
		} else {
			var err error
			if k, err = s.keyParamWith(c, in, action, nil); err != nil {
				return nil, err
			}
		}
		if err := s.authorizeCall(c, k, action, nil); err != nil {
			return nil, err
		}
		if k.state != "Enabled" {
			return nil, errorf(http.StatusBadRequest, "DisabledException", "%s is disabled.", k.arn)
		}
		switch action {
		case "kms:Decrypt":
			return map[string]any{"KeyId": k.arn, "Plaintext": base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}, nil
		case "kms:GenerateDataKeyWithoutPlaintext":
			return map[string]any{"KeyId": k.arn, "CiphertextBlob": ciphertext(k.arn)}, nil
		default: // ReEncrypt: also needs ReEncryptTo on the destination key
			dst, err := s.keyParamWith(c, map[string]json.RawMessage{"KeyId": in["DestinationKeyId"]}, "kms:ReEncryptTo", nil)
			if err != nil {
				return nil, err
			}
			return map[string]any{"KeyId": dst.arn, "SourceKeyId": k.arn, "CiphertextBlob": ciphertext(dst.arn),
				"SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT", "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT"}, nil
		}
	}
}
