// Package trail reads CloudTrail for the KMS calls AWS refused while
// launching from an encrypted AMI: online through LookupEvents, or offline
// from the files CloudTrail delivers to S3, streamed with constant memory.
// It groups the denials by principal and key, with the fix.
package trail

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/amigate/packer-plugin-amigate/keypolicy"
)

// Denial is one KMS call AWS refused on an EBS or Auto Scaling launch path.
type Denial struct {
	Time    time.Time `json:"time"`
	EventID string    `json:"event_id"`
	Account string    `json:"account"`
	Region  string    `json:"region"`
	// Principal is the denied identity (userIdentity.arn), such as
	// arn:aws:sts::111122223333:assumed-role/AWSServiceRoleForAutoScaling/AutoScaling.
	Principal string `json:"principal"`
	// Role is the role behind a session, when there is one.
	Role string `json:"role,omitempty"`
	// InvokedBy is the service that called KMS for the principal.
	InvokedBy    string `json:"invoked_by,omitempty"`
	Action       string `json:"action"`
	Key          string `json:"key"`
	ErrorCode    string `json:"error_code"`
	ErrorMessage string `json:"error_message"`
}

// record is the part of a CloudTrail record a denial is read from.
type record struct {
	EventTime          time.Time `json:"eventTime"`
	EventID            string    `json:"eventID"`
	EventSource        string    `json:"eventSource"`
	EventName          string    `json:"eventName"`
	AWSRegion          string    `json:"awsRegion"`
	SourceIPAddress    string    `json:"sourceIPAddress"`
	ErrorCode          string    `json:"errorCode"`
	ErrorMessage       string    `json:"errorMessage"`
	RecipientAccountID string    `json:"recipientAccountId"`
	UserIdentity       struct {
		Type           string `json:"type"`
		ARN            string `json:"arn"`
		AccountID      string `json:"accountId"`
		InvokedBy      string `json:"invokedBy"`
		SessionContext struct {
			SessionIssuer struct {
				ARN string `json:"arn"`
			} `json:"sessionIssuer"`
		} `json:"sessionContext"`
	} `json:"userIdentity"`
	RequestParameters struct {
		KeyID             string            `json:"keyId"`
		EncryptionContext map[string]string `json:"encryptionContext"`
	} `json:"requestParameters"`
	Resources []struct {
		ARN  string `json:"ARN"`
		Type string `json:"type"`
	} `json:"resources"`
}

// denialCodes are the KMS errors that break a launch: a refusal, and a key
// that is disabled, pending deletion or gone.
var denialCodes = map[string]bool{
	"AccessDenied": true, "AccessDeniedException": true,
	"KMSInvalidStateException": true, "DisabledException": true, "NotFoundException": true,
}

// launchServices call KMS when an instance starts from an encrypted AMI.
var launchServices = map[string]bool{"ec2.amazonaws.com": true, "autoscaling.amazonaws.com": true}

// ParseRecord reads one CloudTrail record. ok is false when it is not a
// KMS denial on a launch path.
func ParseRecord(raw []byte) (d Denial, ok bool, err error) {
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		return Denial{}, false, fmt.Errorf("parse CloudTrail record: %w", err)
	}
	if r.EventSource != "kms.amazonaws.com" || !denialCodes[r.ErrorCode] {
		return Denial{}, false, nil
	}
	id := r.UserIdentity
	invokedBy := id.InvokedBy
	if invokedBy == "" && launchServices[r.SourceIPAddress] {
		invokedBy = r.SourceIPAddress
	}
	role := id.SessionContext.SessionIssuer.ARN
	if role == "" {
		role = roleOfSession(id.ARN)
	}
	onLaunchPath := launchServices[invokedBy] || keypolicy.IsAutoScalingServiceLinkedRole(role) || r.RequestParameters.EncryptionContext["aws:ebs:id"] != ""
	if !onLaunchPath {
		return Denial{}, false, nil
	}
	d = Denial{
		Time: r.EventTime, EventID: r.EventID, Account: r.RecipientAccountID, Region: r.AWSRegion,
		Principal: id.ARN, Role: role, InvokedBy: invokedBy, Action: "kms:" + r.EventName,
		Key: r.RequestParameters.KeyID, ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage,
	}
	for _, res := range r.Resources {
		if res.Type == "AWS::KMS::Key" && res.ARN != "" {
			d.Key = res.ARN
		}
	}
	if d.Account == "" {
		d.Account = id.AccountID
	}
	if d.Principal == "" {
		d.Principal = role
	}
	return d, true, nil
}

// roleOfSession turns arn:aws:sts::A:assumed-role/R/S into the role ARN.
// A session ARN does not carry the role's path: Auto Scaling's
// service-linked roles get theirs back, other roles are assumed to sit at
// "/" (records with a sessionIssuer never need this).
func roleOfSession(arn string) string {
	rest, ok := strings.CutPrefix(arn, "arn:")
	if !ok {
		return ""
	}
	parts := strings.SplitN(rest, ":", 5)
	if len(parts) != 5 || parts[1] != "sts" {
		return ""
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(parts[4], "assumed-role/"), "/")
	if !strings.HasPrefix(parts[4], "assumed-role/") || name == "" {
		return ""
	}
	path := "/"
	if strings.HasPrefix(name, "AWSServiceRoleForAutoScaling") {
		path = "/aws-service-role/autoscaling.amazonaws.com/"
	}
	return "arn:" + parts[0] + ":iam::" + parts[3] + ":role" + path + name
}
