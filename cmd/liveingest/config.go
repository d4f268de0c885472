package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"
	"go.yaml.in/yaml/v3"
)

// maxConfigSize caps the YAML file: configuration is small, and a huge or
// deeply aliased file must not take the process down at start-up.
const maxConfigSize = 1 << 20

// yamlLoader reads the --config file. Keys are flag names ("public-host" or
// "public_host"). Precedence is flags, then LIVEINGEST_* variables, then the
// file, then defaults: kong applies environment variables as defaults and
// lets a configuration resolver override them, so the resolver steps aside
// for every flag whose variable is set.
func yamlLoader(r io.Reader) (kong.Resolver, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxConfigSize+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxConfigSize {
		return nil, fmt.Errorf("config file larger than %d bytes", maxConfigSize)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	// kong.JSON looks keys up as "public_host" or "publicHost"; accept the
	// flag's own spelling "public-host" too.
	normalized := make(map[string]any, len(values))
	for k, v := range values {
		normalized[strings.ReplaceAll(k, "-", "_")] = v
	}
	js, err := json.Marshal(normalized)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	inner, err := kong.JSON(bytes.NewReader(js))
	if err != nil {
		return nil, err
	}
	return configResolver{inner: inner, values: values}, nil
}

type configResolver struct {
	inner  kong.Resolver
	values map[string]any
}

// Validate rejects keys that name no flag of the application, so a typo in
// the file is an error rather than a silently ignored setting.
func (c configResolver) Validate(app *kong.Application) error {
	flags := map[string]bool{}
	_ = kong.Visit(app, func(node kong.Visitable, next kong.Next) error {
		if f, ok := node.(*kong.Flag); ok {
			flags[f.Name] = true
			flags[strings.ReplaceAll(f.Name, "-", "_")] = true
		}
		return next(nil)
	})
	for k := range c.values {
		if !flags[k] {
			return fmt.Errorf("config file: unknown key %q", k)
		}
	}
	return nil
}

func (c configResolver) Resolve(ctx *kong.Context, parent *kong.Path, flag *kong.Flag) (any, error) {
	for _, e := range flag.Envs {
		if _, ok := os.LookupEnv(e); ok {
			return nil, nil
		}
	}
	return c.inner.Resolve(ctx, parent, flag)
}

// checkAddr validates a listen address "host:port" (host may be empty).
func checkAddr(field, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: invalid address %q: %v", field, addr, err)
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil && !validHostname(host) {
		return fmt.Errorf("%s: invalid host %q in %q", field, host, addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%s: invalid port %q in %q", field, port, addr)
	}
	return nil
}

// validHostname checks a DNS name (RFC 1123 labels) or an IP literal.
func validHostname(h string) bool {
	if net.ParseIP(strings.Trim(h, "[]")) != nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// checkRegion validates a region id: 1–32 of a-z, 0-9 and hyphen.
func checkRegion(field, id string) error {
	if id == "" || len(id) > 32 {
		return fmt.Errorf("%s: region id must be 1-32 characters", field)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%s: region id %q may hold only a-z, 0-9 and '-'", field, id)
		}
	}
	return nil
}
