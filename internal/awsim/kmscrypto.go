package awsim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// KMS's cryptographic operations, as EBS calls them through EC2.

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
