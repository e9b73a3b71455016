// Package awsjson reads the JSON the AWS CLI prints for KMS keys (key
// policies, key metadata, grants), so that exported state can be checked
// offline. It is pure: no AWS SDK, no I/O.
package awsjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// KeyPolicy reads a key policy: a raw policy document, or the output of
// `aws kms get-key-policy` ({"Policy": "<document>", "PolicyName": ...}).
func KeyPolicy(data []byte) (*keypolicy.Policy, error) {
	var envelope struct {
		Policy *string `json:"Policy"`
	}
	if json.Valid(data) && json.Unmarshal(data, &envelope) == nil && envelope.Policy != nil {
		p, err := keypolicy.Parse([]byte(*envelope.Policy))
		if err != nil {
			return nil, fmt.Errorf("the Policy string of get-key-policy output: %w", err)
		}
		return p, nil
	}
	return keypolicy.Parse(data)
}

// KeyMetadata is what `aws kms describe-key` says about a key.
type KeyMetadata struct {
	Arn        string `json:"Arn"`
	KeyManager string `json:"KeyManager"`
	KeyState   string `json:"KeyState"`
	KeySpec    string `json:"KeySpec"`
	KeyUsage   string `json:"KeyUsage"`
	Origin     string `json:"Origin"`
}

// DescribeKey reads `aws kms describe-key` output.
func DescribeKey(data []byte) (KeyMetadata, error) {
	if err := syntax(data); err != nil {
		return KeyMetadata{}, err
	}
	var out struct {
		KeyMetadata *KeyMetadata `json:"KeyMetadata"`
	}
	if err := strict(data, &out); err != nil {
		return KeyMetadata{}, err
	}
	if out.KeyMetadata == nil {
		return KeyMetadata{}, errors.New(`not describe-key output: no "KeyMetadata" object`)
	}
	if out.KeyMetadata.Arn == "" {
		return KeyMetadata{}, errors.New(`KeyMetadata has no "Arn"`)
	}
	return *out.KeyMetadata, nil
}

type grantJSON struct {
	KeyID             string   `json:"KeyId"`
	GrantID           string   `json:"GrantId"`
	Name              string   `json:"Name"`
	GranteePrincipal  string   `json:"GranteePrincipal"`
	RetiringPrincipal string   `json:"RetiringPrincipal"`
	IssuingAccount    string   `json:"IssuingAccount"`
	Operations        []string `json:"Operations"`
	Constraints       *struct {
		EncryptionContextEquals map[string]string `json:"EncryptionContextEquals"`
		EncryptionContextSubset map[string]string `json:"EncryptionContextSubset"`
	} `json:"Constraints"`
}

// ListGrants reads `aws kms list-grants` output. Grants on another key than
// keyARN are an error: they would say nothing about this key.
func ListGrants(data []byte, keyARN string) ([]keypolicy.Grant, error) {
	if err := syntax(data); err != nil {
		return nil, err
	}
	var out struct {
		Grants *[]grantJSON `json:"Grants"`
	}
	if err := strict(data, &out); err != nil {
		return nil, err
	}
	if out.Grants == nil {
		return nil, errors.New(`not list-grants output: no "Grants" list`)
	}
	grants := make([]keypolicy.Grant, 0, len(*out.Grants))
	for i, g := range *out.Grants {
		if g.GranteePrincipal == "" {
			return nil, fmt.Errorf("grant %d has no GranteePrincipal", i)
		}
		if g.KeyID != "" && keyARN != "" && g.KeyID != keyARN {
			return nil, fmt.Errorf("grant %d is on key %s, not on %s", i, g.KeyID, keyARN)
		}
		kg := keypolicy.Grant{
			ID: g.GrantID, Name: g.Name, GranteePrincipal: g.GranteePrincipal, RetiringPrincipal: g.RetiringPrincipal,
			IssuingAccount: g.IssuingAccount, Operations: g.Operations,
		}
		if g.Constraints != nil {
			kg.EncryptionContextEquals = g.Constraints.EncryptionContextEquals
			kg.EncryptionContextSubset = g.Constraints.EncryptionContextSubset
		}
		grants = append(grants, kg)
	}
	return grants, nil
}

// syntax reports invalid JSON with its line and column.
func syntax(data []byte) error {
	if json.Valid(data) {
		return nil
	}
	// keypolicy.Parse locates syntax errors; reuse it for the message.
	_, err := keypolicy.Parse(data)
	var se *keypolicy.SyntaxError
	if errors.As(err, &se) {
		return se
	}
	return errors.New("invalid JSON")
}

func strict(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("unexpected shape: %w", err)
	}
	return nil
}
