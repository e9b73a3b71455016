package keypolicy

import "testing"

// A principal deleted after a key policy named it shows as its unique id
// (IAM User Guide, "IAM identifiers"); KMS then refuses any PutKeyPolicy
// that keeps it.
func TestDeletedPrincipalShowsAsItsUniqueID(t *testing.T) {
	p, err := Parse([]byte(`{"Version":"2012-10-17","Statement":[
		{"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},
		{"Sid":"OldApp","Effect":"Allow","Principal":{"AWS":["AROAJQABLZS4A3QDU576Q","arn:aws:iam::111122223333:root"]},"Action":"kms:Decrypt","Resource":"*"},
		{"Effect":"Deny","NotPrincipal":{"AWS":"AIDAJQABLZS4A3QDU576Q"},"Action":"kms:ScheduleKeyDeletion","Resource":"*"},
		{"Effect":"Allow","Principal":{"Service":"AROAJQABLZS4A3QDU576Q.amazonaws.com"},"Action":"kms:Decrypt","Resource":"*"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	got := p.StalePrincipals()
	want := []Stale{{`"OldApp" (#1)`, "AROAJQABLZS4A3QDU576Q"}, {"#2", "AIDAJQABLZS4A3QDU576Q"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("StalePrincipals() = %v, want %v", got, want)
	}
}
