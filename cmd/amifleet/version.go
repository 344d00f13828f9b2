package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// buildDate may be set at link time (-ldflags "-X main.buildDate=2026-11-27T12:00:00Z");
// without it the date is the commit's, from the build info.
var buildDate string

// versionText is what `amifleet --version` and `amifleet version` print: the
// module version, the VCS commit and the date, from the build info that the Go
// toolchain stamps into the binary ("(devel)" and "unknown" where it has none, as
// in a build outside a git checkout or with -buildvcs=false).
func versionText(info *debug.BuildInfo, ok bool) string {
	version, commit, date, modified := "(devel)", "unknown", "unknown", false
	goVersion := runtime.Version()
	if ok && info != nil {
		if v := info.Main.Version; v != "" {
			version = v
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if s.Value != "" {
					commit = s.Value
				}
			case "vcs.time":
				if s.Value != "" {
					date = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if buildDate != "" {
		date = buildDate
	}
	if modified && commit != "unknown" {
		commit += " (with uncommitted changes)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "amifleet %s\n", version)
	fmt.Fprintf(&b, "commit: %s\n", commit)
	fmt.Fprintf(&b, "date:   %s\n", date)
	fmt.Fprintf(&b, "go:     %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}

// buildVersion is this binary's versionText.
func buildVersion() string {
	return versionText(debug.ReadBuildInfo())
}

func versionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print amifleet's version, the commit it was built from and its date (as --version)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprint(g.stdout, buildVersion())
			return err
		},
	}
}
