// Package config is fabricd's configuration: the Config fields, their defaults, the YAML file
// and the command-line flags bound to the same fields in one place (Bind, Resolve), and
// Validate, which parses a Config once into the typed Settings the rest of fabricd uses.
package config
