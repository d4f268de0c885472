package keys

import (
	"fmt"
	"net/netip"
	"strings"
)

// Coordination keys. Callers of origin/coord name what they coordinate with
// these logical names; the coord implementations turn a logical name into a
// Redis key with Redis below. Names are short ASCII without spaces.

// SlotLease names the lease that makes one publisher per slot and role
// (R-EDGE-1, R-EDGE-2).
func SlotLease(id SlotID, role Role) string { return "slot:" + string(id) + ":" + string(role) }

// IngestKeyLimit names the budget of publish attempts on one slot and role
// (R-EDGE-3: the per stream key limit). It is built from the slot id, never
// from the key, so that no secret ever becomes a Redis key.
func IngestKeyLimit(id SlotID, role Role) string {
	return "ingest:key:" + string(id) + ":" + string(role)
}

// IngestAuthFailLimit names the failed-authentication budget of one source
// of publishers (R-EDGE-3), whatever the protocol and the credential (stream
// key, SRT passphrase, Live Push password): src is an IPv4 address (/32) or
// an IPv6 /64, the unit edge admission counts per.
func IngestAuthFailLimit(src netip.Prefix) string { return "ingest:authfail:" + src.String() }

// APIAuthFailLimit names the budget of failed admin-token attempts of one
// source (AuthSource), shared by every origin serving the API.
func APIAuthFailLimit(src netip.Prefix) string { return "api:authfail:" + src.String() }

// AuthSource is the unit failed-authentication budgets count per: the IPv4
// address, or the IPv6 /64 (one subscriber's LAN), so that rotating through
// the addresses of a /64 buys no fresh budget. IPv4-mapped IPv6 addresses
// count as IPv4.
func AuthSource(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap().WithZone("")
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return p
}

// ValidateCoordName checks a logical coordination name (lease, limiter or
// registry key) before an implementation uses it.
func ValidateCoordName(name string) error {
	if name == "" || len(name) > maxCoordKeyLen {
		return fmt.Errorf("%w: coordination name must be 1-%d bytes", ErrInvalid, maxCoordKeyLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == '{' || c == '}' {
			return fmt.Errorf("%w: character %q not allowed in a coordination name", ErrInvalid, c)
		}
	}
	return nil
}

// Redis builds the Redis key for one kind of record about a logical name.
// The name sits in a hash tag ({…}) so that every record about one name (a
// lease and its fencing counter) lands on the same Redis Cluster slot, which
// the atomic scripts of the redis implementation need. namespace separates
// deployments sharing one Redis; it must itself be a valid coordination name.
func Redis(namespace, kind, name string) string {
	var b strings.Builder
	b.Grow(len(namespace) + len(kind) + len(name) + 4)
	b.WriteString(namespace)
	b.WriteString(":{")
	b.WriteString(name)
	b.WriteString("}:")
	b.WriteString(kind)
	return b.String()
}
