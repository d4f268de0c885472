package slots

import (
	"fmt"
	"net/netip"
	"strings"
)

// IPList is a canonical list of address prefixes (R-SLOT-6, R-SLOT-7). IPv4
// entries are stored as IPv4 (an IPv4-mapped IPv6 entry such as
// "::ffff:10.0.0.0/104" becomes "10.0.0.0/8"), host bits are cleared, and a
// bare address is a /32 or /128.
type IPList []netip.Prefix

// ParseIPList parses and canonicalises IPs and CIDRs; field names the input
// field in the error (with the element's index).
func ParseIPList(field string, in []string) (IPList, error) {
	out := make(IPList, 0, len(in))
	for i, s := range in {
		p, err := parsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("%s[%d]", field, i), err.Error())
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		if a.Zone() != "" {
			return p, fmt.Errorf("%q: zoned addresses are not allowed", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return p, fmt.Errorf("%q mixes IPv4-mapped and other IPv6 addresses; use a /96 or longer", s)
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Contains reports whether addr is in any prefix of the list. An
// IPv4-mapped IPv6 address (what a dual-stack listener reports for an IPv4
// peer) is matched as the IPv4 address it maps.
func (l IPList) Contains(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	for _, p := range l {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Strings returns the canonical text of every prefix (never nil, so JSON
// shows []).
func (l IPList) Strings() []string {
	out := make([]string, 0, len(l))
	for _, p := range l {
		out = append(out, p.String())
	}
	return out
}
