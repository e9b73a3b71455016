// Package example holds the examples of the repository; sim-world.json, the
// first reference write-up's two accounts, is also embedded for
// `amigate demo`.
package example

import _ "embed"

// SimWorld is sim-world.json.
//
//go:embed sim-world.json
var SimWorld []byte
