// Package keypolicy decides whether principals can use a KMS key the way the
// EC2 and Auto Scaling launch paths need, and plans the smallest key-policy
// change that makes them able to.
//
// It is pure: it parses and evaluates policy documents and grants as AWS
// documents them, and it imports neither the AWS SDK nor the Packer SDK, so
// the gate, the provisioner and the CLI share one verdict.
//
// References for the rules implemented here:
//   - IAM JSON policy elements and evaluation logic (IAM User Guide),
//   - condition operators and policy variables (IAM User Guide),
//   - global condition keys, the organization keys and multivalued keys
//     (IAM User Guide, "AWS global condition context keys" and
//     "Single-valued vs. multivalued context keys"),
//   - key policies, grants and KMS condition keys (AWS KMS Developer Guide),
//   - "Required AWS KMS key policy for use with encrypted volumes"
//     (Amazon EC2 Auto Scaling User Guide).
package keypolicy
