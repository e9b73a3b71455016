package awsjson

import (
	"strings"
	"testing"
)

const key = "arn:aws:kms:us-east-1:444455556666:key/12ee9c11-3476-492c-b5cc-ed4a4d636337"

func TestKeyPolicyShapes(t *testing.T) {
	raw := `{"Version":"2012-10-17","Statement":[{"Sid":"a","Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"}]}`
	cli := `{"Policy": ` + quote(raw) + `, "PolicyName": "default"}`
	for name, doc := range map[string]string{"raw": raw, "get-key-policy": cli} {
		p, err := KeyPolicy([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(p.Statements) != 1 || p.Statements[0].Sid != "a" {
			t.Errorf("%s: %+v", name, p.Statements)
		}
	}
	_, err := KeyPolicy([]byte(`{"Policy": "{\"Statement\": [}", "PolicyName": "default"}`))
	if err == nil || !strings.Contains(err.Error(), "the Policy string of get-key-policy output") || !strings.Contains(err.Error(), "line 1, column") {
		t.Errorf("bad embedded policy: %v", err)
	}
	_, err = KeyPolicy([]byte("{\n  \"Statement\": [\n    }\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3, column 5") {
		t.Errorf("syntax error position: %v", err)
	}
}

func quote(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}

func TestDescribeKey(t *testing.T) {
	m, err := DescribeKey([]byte(`{"KeyMetadata":{"AWSAccountId":"444455556666","KeyId":"12ee","Arn":"` + key + `","KeyManager":"AWS","KeyState":"Enabled","KeySpec":"SYMMETRIC_DEFAULT","KeyUsage":"ENCRYPT_DECRYPT","Enabled":true}}`))
	if err != nil || m.KeyManager != "AWS" || m.Arn != key {
		t.Fatalf("%+v %v", m, err)
	}
	for doc, want := range map[string]string{
		`{"Keys":[]}`:               `no "KeyMetadata"`,
		`{"KeyMetadata":{}}`:        `no "Arn"`,
		`{"KeyMetadata":{"Arn":1}}`: "unexpected shape",
		`{"KeyMetadata":`:           "line 1",
	} {
		if _, err := DescribeKey([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", doc, err, want)
		}
	}
}

func TestListGrants(t *testing.T) {
	doc := `{"Grants":[{"KeyId":"` + key + `","GrantId":"cff2","Name":"","CreationDate":"2023-06-15T10:00:00+10:00",
	  "GranteePrincipal":"arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
	  "IssuingAccount":"arn:aws:iam::111122223333:root","Operations":["Decrypt","GenerateDataKeyWithoutPlaintext","ReEncryptFrom","ReEncryptTo","CreateGrant"],
	  "Constraints":{"EncryptionContextSubset":{"aws:ebs:id":"vol-1"}}}],"Truncated":false}`
	gs, err := ListGrants([]byte(doc), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 1 || gs[0].ID != "cff2" || len(gs[0].Operations) != 5 || gs[0].EncryptionContextSubset["aws:ebs:id"] != "vol-1" {
		t.Errorf("%+v", gs)
	}
	if _, err := ListGrants([]byte(doc), "arn:aws:kms:us-east-1:444455556666:key/other"); err == nil || !strings.Contains(err.Error(), "not on") {
		t.Errorf("grant on another key accepted: %v", err)
	}
	if _, err := ListGrants([]byte(`{"Policy":"x"}`), key); err == nil || !strings.Contains(err.Error(), `no "Grants"`) {
		t.Errorf("wrong document accepted: %v", err)
	}
	if gs, err := ListGrants([]byte(`{"Grants":[]}`), key); err != nil || len(gs) != 0 {
		t.Errorf("empty: %v %v", gs, err)
	}
}
