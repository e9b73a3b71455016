// Command packer-plugin-amigate is the Packer plugin binary: it registers the
// amigate components with Packer and serves them.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/plugin"

	amigatepp "github.com/amigate/packer-plugin-amigate/post-processor/amigate"
	"github.com/amigate/packer-plugin-amigate/provisioner/preflight"
	"github.com/amigate/packer-plugin-amigate/version"
)

func main() {
	pps := plugin.NewSet()
	pps.RegisterPostProcessor(plugin.DEFAULT_NAME, new(amigatepp.PostProcessor))
	pps.RegisterProvisioner("preflight", new(preflight.Provisioner))
	pps.SetVersion(version.PluginVersion)
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}
