package keypolicy

import (
	"reflect"
	"testing"
)

// The document reader decodes strings as encoding/json does, and keeps the
// last of a repeated element.
func TestParseStringsAndRepeatedElements(t *testing.T) {
	doc := "{\"Statement\":[{\"Sid\":\"a \\\"quoted\\\" \\\\ caf\\u00e9 \xff\",\"Effect\":\"Deny\",\"Effect\":\"Allow\"," +
		"\"Principal\":{\"AWS\":[\"arn:aws:iam::111122223333:root\",12,true]},\"Action\":\"kms:Decrypt\",\"Resource\":\"*\"," +
		"\"Condition\":{\"StringEquals\":{\"kms:ViaService\":\"ec2.us-east-1.amazonaws.com\\\\\"}}}]}"
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	s := p.Statements[0]
	if want := "a \"quoted\" \\ café \uFFFD"; s.Sid != want {
		t.Errorf("Sid %q, want %q", s.Sid, want)
	}
	if s.Effect != Allow {
		t.Errorf("Effect %q: the last of a repeated element wins", s.Effect)
	}
	if want := []string{"arn:aws:iam::111122223333:root", "12", "true"}; !reflect.DeepEqual(s.Principal.AWS.Items, want) {
		t.Errorf("Principal AWS %q, want %q", s.Principal.AWS.Items, want)
	}
	if got := s.Conditions[0].Values.Items[0]; got != `ec2.us-east-1.amazonaws.com\` {
		t.Errorf("condition value %q", got)
	}
	if span := p.spans[0]; string(p.raw[span[0]]) != "{" || string(p.raw[span[1]-1]) != "}" || span[1] != len(doc)-2 {
		t.Errorf("statement span %v of %d bytes", span, len(doc))
	}
}

// Several keys under one operator render as one JSON object with every
// key (a missing comma made the statement unparsable).
func TestMarshalSeveralKeysUnderOneOperator(t *testing.T) {
	doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*",
	  "Condition":{"StringEquals":{"kms:ViaService":"ec2.us-east-1.amazonaws.com","aws:PrincipalOrgID":"o-abcdefghij","kms:CallerAccount":"111122223333"},"Bool":{"aws:SecureTransport":"true"}}}]}`
	p := mustPolicy(t, doc)
	out, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	q := mustPolicy(t, string(out))
	if len(q.Statements[0].Conditions) != 4 {
		t.Errorf("conditions after a round trip: %+v\n%s", q.Statements[0].Conditions, out)
	}
}
