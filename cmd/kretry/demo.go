package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newDemoCommand is a placeholder until the demo of issue 6 replaces this
// file.
func newDemoCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Run the whole ladder on an embedded broker (not built yet)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("kretry demo is not built yet: try \"kretry broker\" and \"kretry topics apply\" meanwhile")
		},
	}
}
