package awsim

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Malformed requests get AWS's error codes in each protocol's shape, never
// a 500 or a hang, and change nothing.
func TestMalformedRequestsGetAWSErrors(t *testing.T) {
	s, url := startSim(t)
	auth := func(service string) string {
		return "AWS4-HMAC-SHA256 Credential=SIM" + owner + "/20261122/us-east-1/" + service + "/aws4_request, SignedHeaders=host, Signature=x"
	}
	for _, tc := range []struct {
		name, service, target, body string
		status                      int
		code                        string
	}{
		{"kms body not JSON", "kms", "TrentService.CreateKey", "{", 400, "SerializationException"},
		{"kms unknown operation", "kms", "TrentService.Explode", "{}", 400, "UnknownOperationException"},
		{"kms missing KeyId", "kms", "TrentService.DescribeKey", "{}", 400, "ValidationException"},
		{"kms KeyId of the wrong type", "kms", "TrentService.DescribeKey", `{"KeyId": 7}`, 400, "SerializationException"},
		{"kms grant without operations", "kms", "TrentService.CreateGrant", `{"KeyId":"alias/aws/ebs","GranteePrincipal":"x"}`, 400, "ValidationException"},
		{"cloudtrail two lookup attributes", "cloudtrail", "CloudTrail_20131101.LookupEvents", `{"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"a"},{"AttributeKey":"EventName","AttributeValue":"b"}]}`, 400, "InvalidLookupAttributesException"},
		{"ec2 unknown action", "ec2", "", "Action=Explode&Version=2016-11-15", 400, "InvalidAction"},
		{"ec2 missing parameter", "ec2", "", "Action=CreateVolume&Version=2016-11-15", 400, "MissingParameter"},
		{"ec2 image that does not exist", "ec2", "", "Action=ModifyImageAttribute&ImageId=ami-0123456789abcdef0&Version=2016-11-15", 400, "InvalidAMIID.NotFound"},
		{"autoscaling missing name", "autoscaling", "", "Action=CreateAutoScalingGroup&Version=2011-01-01", 400, "ValidationError"},
		{"sts missing role", "sts", "", "Action=AssumeRole&Version=2011-06-15", 400, "ValidationError"},
		{"iam unknown action", "iam", "", "Action=DeleteEverything&Version=2010-05-08", 400, "InvalidAction"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(tc.body))
			req.Header.Set("Authorization", auth(tc.service))
			if tc.target != "" {
				req.Header.Set("X-Amz-Target", tc.target)
				req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			} else {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.code) {
				t.Fatalf("status %d, body %s; want %d %s", resp.StatusCode, body, tc.status, tc.code)
			}
		})
	}
	for _, c := range s.Calls() {
		if c.Mutating && c.Status == http.StatusOK {
			t.Errorf("a malformed request changed state: %+v", c)
		}
	}
	// No credentials at all.
	resp, err := http.Post(url, "application/x-www-form-urlencoded", strings.NewReader("Action=GetCallerIdentity"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned request: %d", resp.StatusCode)
	}
}
