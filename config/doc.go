// Package config loads and validates kretry's YAML configuration file.
package config
