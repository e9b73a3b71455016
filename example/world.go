// Package example holds the examples of the repository; sim-world.json, the
// first reference write-up's two accounts, is also embedded for
// `amigate demo`, and sim-world-org.json, an organization releasing to an
// OU, for the tests.
package example

import _ "embed"

// SimWorld is sim-world.json.
//
//go:embed sim-world.json
var SimWorld []byte

// SimWorldOrg is sim-world-org.json: the source account manages an
// organization whose prod OU (with a nested OU) holds three accounts, and
// whose sandbox OU holds a suspended one; each account has the role
// amigate, and the golden AMI is not shared yet.
//
//go:embed sim-world-org.json
var SimWorldOrg []byte
