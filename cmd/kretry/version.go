package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func (a *app) newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the versions of kretry, franz-go and Go",
		RunE: func(*cobra.Command, []string) error {
			v := buildVersions()
			if a.json {
				return json.NewEncoder(a.stdout).Encode(v)
			}
			rev := ""
			if v.Revision != "" && v.Kretry == "(devel)" { // a pseudo-version already names the commit
				rev = " rev " + v.Revision
			}
			_, err := fmt.Fprintf(a.stdout, "kretry %s%s (franz-go %s, %s, %s)\n", v.Kretry, rev, v.FranzGo, v.Go, v.Platform)
			return err
		},
	}
}

type versions struct {
	Kretry   string `json:"kretry"`
	Revision string `json:"revision,omitempty"` // VCS commit, "+dirty" with local changes
	FranzGo  string `json:"franz_go"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// buildVersions reads the versions that the go command stamped into the
// binary: kretry's module version ("(devel)" when built from a checkout, a
// tag or pseudo-version when installed with go install), the commit when
// built in a git checkout, and franz-go's.
func buildVersions() versions {
	v := versions{Kretry: "unknown", FranzGo: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Kretry = bi.Main.Version
	}
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value[:min(12, len(s.Value))]
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && v.Revision != "" {
		v.Revision += "+dirty"
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/twmb/franz-go" {
			v.FranzGo = d.Version
			if d.Replace != nil {
				v.FranzGo = d.Replace.Version
			}
		}
	}
	return v
}
