// Package trailtest generates CloudTrail log files as CloudTrail delivers
// them to S3, for tests and benchmarks of the offline diagnosis.
package trailtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Accounts and key of the generated denials: the first reference
// write-up's.
const (
	Target = "111122223333"
	Key    = "arn:aws:kms:us-east-1:444455556666:key/12ee9c11-3476-492c-b5cc-ed4a4d636337"
)

// AutoScalingDenial is the KMS event of the first write-up: Auto Scaling's
// service-linked role refused CreateGrant on the source key.
func AutoScalingDenial(id string, at time.Time) map[string]any {
	return map[string]any{
		"eventVersion": "1.08",
		"userIdentity": map[string]any{
			"type": "AssumedRole", "principalId": "AROAEXAMPLE:AutoScaling",
			"arn":       "arn:aws:sts::" + Target + ":assumed-role/AWSServiceRoleForAutoScaling/AutoScaling",
			"accountId": Target, "invokedBy": "autoscaling.amazonaws.com",
			"sessionContext": map[string]any{"sessionIssuer": map[string]any{
				"type": "Role", "arn": "arn:aws:iam::" + Target + ":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
				"accountId": Target, "userName": "AWSServiceRoleForAutoScaling",
			}},
		},
		"eventTime": at.UTC().Format(time.RFC3339), "eventSource": "kms.amazonaws.com", "eventName": "CreateGrant",
		"awsRegion": "us-east-1", "sourceIPAddress": "autoscaling.amazonaws.com", "userAgent": "autoscaling.amazonaws.com",
		"errorCode": "AccessDenied", "errorMessage": "User: arn:aws:sts::" + Target + ":assumed-role/AWSServiceRoleForAutoScaling/AutoScaling is not authorized to perform: kms:CreateGrant on resource: " + Key,
		"requestParameters": map[string]any{"keyId": Key, "granteePrincipal": "ec2.us-east-1.amazonaws.com", "operations": []string{"Decrypt"}},
		"eventID":           id, "readOnly": false, "eventType": "AwsApiCall", "managementEvent": true, "recipientAccountId": Target,
		"resources": []map[string]string{{"accountId": "444455556666", "type": "AWS::KMS::Key", "ARN": Key}},
	}
}

// noise is an ordinary event, such as most of a trail holds: S3, EC2 and
// STS calls, and KMS calls of applications, a few of them refused.
func noise(id string, at time.Time, r *rand.Rand) map[string]any {
	names := []string{"DescribeInstances", "GetObject", "AssumeRole", "PutObject", "DescribeVolumes", "Decrypt", "ListBuckets"}
	sources := []string{"ec2.amazonaws.com", "s3.amazonaws.com", "sts.amazonaws.com", "s3.amazonaws.com", "ec2.amazonaws.com", "kms.amazonaws.com", "s3.amazonaws.com"}
	i := r.IntN(len(names))
	ev := map[string]any{
		"eventVersion": "1.08",
		"userIdentity": map[string]any{"type": "AssumedRole", "arn": fmt.Sprintf("arn:aws:sts::%s:assumed-role/app-%d/i-%08x", Target, r.IntN(20), r.Uint32()), "accountId": Target,
			"sessionContext": map[string]any{"attributes": map[string]any{"creationDate": at.UTC().Format(time.RFC3339), "mfaAuthenticated": "false"}}},
		"eventTime": at.UTC().Format(time.RFC3339), "eventSource": sources[i], "eventName": names[i], "awsRegion": "us-east-1",
		"sourceIPAddress": fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), r.IntN(256)), "userAgent": "aws-sdk-go-v2/1.30.0 os/linux lang/go#1.22 md/GOOS#linux {\"quoted\": \"}\"}",
		"requestParameters": map[string]any{"bucketName": fmt.Sprintf("logs-%d", r.IntN(100)), "key": fmt.Sprintf("a/b/%d.json", r.IntN(1e6))},
		"responseElements":  nil, "eventID": id, "readOnly": true, "eventType": "AwsApiCall", "managementEvent": true, "recipientAccountId": Target,
	}
	if sources[i] == "kms.amazonaws.com" && r.IntN(10) == 0 {
		// an application refused a key: a KMS denial, but not a launch's
		ev["errorCode"] = "AccessDeniedException"
		ev["errorMessage"] = "User: " + ev["userIdentity"].(map[string]any)["arn"].(string) + " is not authorized to perform: kms:Decrypt on resource: " + Key + " because no identity-based policy allows the kms:Decrypt action"
	}
	return ev
}

// WriteLog writes one log file of n records, every `every`-th one (0:
// none) the write-up's denial; it returns how many denials it wrote.
func WriteLog(w io.Writer, n, every int, start time.Time, r *rand.Rand) (int, error) {
	bw := bufio.NewWriter(w)
	if _, err := bw.WriteString(`{"Records":[`); err != nil {
		return 0, err
	}
	enc := json.NewEncoder(bw)
	denials := 0
	for i := 0; i < n; i++ {
		if i > 0 {
			bw.WriteByte(',')
		}
		at := start.Add(time.Duration(i) * time.Second)
		id := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), r.IntN(1<<12), r.Uint64()&(1<<48-1))
		ev := noise(id, at, r)
		if every > 0 && i%every == every-1 {
			ev = AutoScalingDenial(id, at)
			denials++
		}
		if err := enc.Encode(ev); err != nil {
			return denials, err
		}
	}
	if _, err := bw.WriteString("]}"); err != nil {
		return denials, err
	}
	return denials, bw.Flush()
}

// WriteTree writes gzipped log files under dir, in CloudTrail's S3 layout
// (AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/...json.gz), until about
// size bytes of uncompressed JSON; it returns the files and the denials.
func WriteTree(dir string, size int64, recordsPerFile, every int, seed uint64) ([]string, int, error) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var files []string
	denials := 0
	var written int64
	for i := 0; written < size; i++ {
		day := start.Add(time.Duration(i) * time.Hour)
		sub := filepath.Join(dir, "AWSLogs", Target, "CloudTrail", "us-east-1", day.Format("2006/01/02"))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return nil, 0, err
		}
		name := filepath.Join(sub, fmt.Sprintf("%s_CloudTrail_us-east-1_%sZ_%04d.json.gz", Target, day.Format("20060102T1504"), i))
		f, err := os.Create(name)
		if err != nil {
			return nil, 0, err
		}
		zw := gzip.NewWriter(f)
		cw := &countingWriter{w: zw}
		n, err := WriteLog(cw, recordsPerFile, every, day, r)
		if err == nil {
			err = zw.Close()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, 0, err
		}
		denials += n
		written += cw.n
		files = append(files, name)
	}
	return files, denials, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Gzip compresses data as CloudTrail does its log files.
func Gzip(tb testing.TB, data []byte) []byte {
	tb.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// WriteFile writes data to name, making its folders, and returns name.
func WriteFile(tb testing.TB, name string, data []byte) string {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return name
}
