package slots

import (
	"fmt"
	"net/url"
	"unicode/utf8"
)

// Limits of the numeric fields. The upper bounds are not in the spec; they
// keep obviously wrong values (a unit mix-up, an extra zero) out.
const (
	MaxNameLen           = 63
	MaxDescriptionLen    = 255    // runes
	MaxIngestBitrateKbps = 100000 // 100 Mbit/s total: above any 1080p/4K contribution feed
	MinSegmentDuration   = 1
	MaxSegmentDuration   = 10
	MaxFileExpiry        = 7 * 24 * 3600 // a week; longer archives are VOD, not live
	MaxUsernameLen       = 64
	MinSRTPassphraseLen  = 10 // libsrt's limits for SRTO_PASSPHRASE
	MaxSRTPassphraseLen  = 79
	MinTokenSecretLen    = 16 // bytes: 128-bit HMAC keys at least
	MaxListLen           = 100
)

// ValidateName checks a slot name (R-SLOT-1): 1–63 ASCII letters, digits and
// hyphens, no leading or trailing hyphen. Uniqueness is the repository's job.
func ValidateName(name string) error {
	if name == "" {
		return fieldErr("name", "is required")
	}
	if len(name) > MaxNameLen {
		return fieldErr("name", fmt.Sprintf("must be at most %d characters", MaxNameLen))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fieldErr("name", "may hold only ASCII letters, digits and '-' (no spaces)")
		}
	}
	if name[0] == '-' || name[len(name)-1] == '-' {
		return fieldErr("name", "must not start or end with '-'")
	}
	return nil
}

// Validate checks every rule of the slot except name uniqueness and the
// password lengths (plaintext passwords exist only in an Input; see apply).
// The error is a *FieldError naming the first offending field.
func (s *Slot) Validate(d Deployment) error {
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	if utf8.RuneCountInString(s.Description) > MaxDescriptionLen || !utf8.ValidString(s.Description) {
		return fieldErr("description", fmt.Sprintf("must be valid UTF-8 of at most %d characters", MaxDescriptionLen))
	}
	if !s.Type.Valid() {
		return fieldErr("type", fmt.Sprintf("must be one of %v", Types))
	}
	if _, ok := d.Region(s.Region); !ok {
		return fieldErr("region", fmt.Sprintf("must be one of the configured regions %v", d.RegionIDs()))
	}
	if s.IngestBitrateKbps <= 0 || s.IngestBitrateKbps > MaxIngestBitrateKbps {
		return fieldErr("ingest_bitrate_kbps", fmt.Sprintf("must be 1-%d", MaxIngestBitrateKbps))
	}
	if s.SegmentDuration < MinSegmentDuration || s.SegmentDuration > MaxSegmentDuration {
		return fieldErr("segment_duration", fmt.Sprintf("must be %d-%d seconds", MinSegmentDuration, MaxSegmentDuration))
	}
	if s.FileExpiry < s.SegmentDuration || s.FileExpiry > MaxFileExpiry {
		return fieldErr("file_expiry", fmt.Sprintf("must be at least segment_duration and at most %d seconds", MaxFileExpiry))
	}
	if s.DVRWindow <= 0 || s.DVRWindow < s.SegmentDuration || s.DVRWindow > s.FileExpiry {
		return fieldErr("dvr_window", "must be at least segment_duration and at most file_expiry (segments listed must still exist)")
	}
	if err := s.validateCredentials(); err != nil {
		return err
	}
	if p := s.SRTPassphrase.Reveal(); p != "" && (len(p) < MinSRTPassphraseLen || len(p) > MaxSRTPassphraseLen) {
		return fieldErr("srt_passphrase", fmt.Sprintf("must be %d-%d characters", MinSRTPassphraseLen, MaxSRTPassphraseLen))
	}
	for _, l := range []struct {
		field string
		list  IPList
	}{{"publish_ip_allow", s.PublishIPAllow}, {"viewer_ip_allow", s.ViewerIPAllow}, {"viewer_ip_deny", s.ViewerIPDeny}} {
		if len(l.list) > MaxListLen {
			return fieldErr(l.field, fmt.Sprintf("must have at most %d entries", MaxListLen))
		}
	}
	if err := s.validateTokenAuth(); err != nil {
		return err
	}
	return s.validatePullURLs()
}

func (s *Slot) validateCredentials() error {
	if s.Type == TypeLivePush && len(s.Credentials) == 0 {
		return fieldErr("credentials", "live-push slots need at least one credential")
	}
	if len(s.Credentials) > MaxListLen {
		return fieldErr("credentials", fmt.Sprintf("must have at most %d entries", MaxListLen))
	}
	seen := map[string]bool{}
	for i, c := range s.Credentials {
		f := fmt.Sprintf("credentials[%d].username", i)
		if err := validateUsername(f, c.Username); err != nil {
			return err
		}
		if seen[c.Username] {
			return fieldErr(f, "is used twice in this slot")
		}
		seen[c.Username] = true
		if c.hash == "" {
			return fieldErr(fmt.Sprintf("credentials[%d].password", i), "is required")
		}
	}
	return nil
}

// validateUsername applies RFC 7617 §2: the user-id of Basic Auth cannot
// contain a colon; control characters would not survive the header either.
func validateUsername(field, u string) error {
	if u == "" || len(u) > MaxUsernameLen {
		return fieldErr(field, fmt.Sprintf("must be 1-%d characters", MaxUsernameLen))
	}
	if !utf8.ValidString(u) {
		return fieldErr(field, "must be valid UTF-8")
	}
	for _, r := range u {
		if r == ':' {
			return fieldErr(field, "must not contain ':' (RFC 7617)")
		}
		if r < 0x20 || r == 0x7f {
			return fieldErr(field, "must not contain control characters")
		}
	}
	return nil
}

func validatePassword(field, pw string) error {
	if len(pw) < minPasswordLen || len(pw) > maxPasswordLen {
		return fieldErr(field, fmt.Sprintf("must be %d-%d bytes", minPasswordLen, maxPasswordLen))
	}
	return nil
}

func (s *Slot) validateTokenAuth() error {
	switch s.TokenAuth.Mode {
	case TokenOff:
	case TokenURL, TokenCookie:
		if len(s.TokenAuth.Secrets) == 0 {
			return fieldErr("token_auth.secrets", "at least one secret is needed when mode is not off")
		}
	default:
		return fieldErr("token_auth.mode", `must be "off", "url" or "cookie"`)
	}
	if len(s.TokenAuth.Secrets) > MaxListLen {
		return fieldErr("token_auth.secrets", fmt.Sprintf("must have at most %d entries", MaxListLen))
	}
	for i, sec := range s.TokenAuth.Secrets {
		if len(sec.Reveal()) < MinTokenSecretLen {
			return fieldErr(fmt.Sprintf("token_auth.secrets[%d]", i), fmt.Sprintf("must be at least %d bytes", MinTokenSecretLen))
		}
	}
	return nil
}

func (s *Slot) validatePullURLs() error {
	if s.Type != TypePull {
		if len(s.PullURLs) > 0 {
			return fieldErr("pull_urls", "only pull slots have pull URLs")
		}
		return nil
	}
	if len(s.PullURLs) == 0 {
		return fieldErr("pull_urls", "pull slots need at least one URL")
	}
	if len(s.PullURLs) > MaxListLen {
		return fieldErr("pull_urls", fmt.Sprintf("must have at most %d entries", MaxListLen))
	}
	for i, raw := range s.PullURLs {
		f := fmt.Sprintf("pull_urls[%d]", i)
		u, err := url.Parse(raw)
		if err != nil {
			return fieldErr(f, "is not a URL")
		}
		switch u.Scheme {
		case "rtmp", "rtmps", "srt":
		default:
			return fieldErr(f, "must be an rtmp://, rtmps:// or srt:// URL")
		}
		if u.Hostname() == "" {
			return fieldErr(f, "must name a host")
		}
	}
	return nil
}
