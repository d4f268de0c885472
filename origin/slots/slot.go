// Package slots is the slot model (SPEC §1, R-SLOT-1…12), its validation
// rules, and its durable repository in the object store (R-API-2).
//
// A Slot is the in-memory model: secrets it must keep retrievable (SRT
// passphrase, token secrets) are secret.String so they never reach a log or
// JSON by accident; passwords are only bcrypt hashes and the stream key only a
// SHA-256 hash. The API shows a slot through View (the exact JSON of SPEC §8),
// which holds no secret except the stream key right after create or rotate.
package slots

import (
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
)

// Type is the kind of ingest a slot does (R-SLOT-2).
type Type string

// The slot types.
const (
	TypeTransmux      Type = "transmux"
	TypeTranscode576  Type = "transcode-576p"
	TypeTranscode720  Type = "transcode-720p"
	TypeTranscode1080 Type = "transcode-1080p"
	TypeLivePush      Type = "live-push"
	TypePull          Type = "pull"
)

// Types lists every slot type in a stable order.
var Types = []Type{TypeTransmux, TypeTranscode576, TypeTranscode720, TypeTranscode1080, TypeLivePush, TypePull}

// Valid reports whether t is a known type.
func (t Type) Valid() bool { return slices.Contains(Types, t) }

// Pushed reports whether encoders push the stream over RTMP, RTMPS, SRT or
// WHIP (and so need a stream key URL).
func (t Type) Pushed() bool { return t != TypeLivePush && t != TypePull }

// Status is where a slot is in its life (R-SLOT-10).
type Status string

// The slot statuses.
const (
	StatusProvisioning Status = "provisioning"
	StatusPublished    Status = "published"
	StatusError        Status = "error"
)

// TokenMode says how viewers prove they may watch (R-SLOT-8).
type TokenMode string

// The token modes.
const (
	TokenOff    TokenMode = "off"
	TokenURL    TokenMode = "url"
	TokenCookie TokenMode = "cookie"
)

// Defaults applied on create to fields the input leaves out.
const (
	DefaultIngestBitrateKbps = 6000
	DefaultSegmentDuration   = 2
	DefaultFileExpiry        = 300
	DefaultDVRWindow         = 60
)

// Credential is one live-push Basic Auth user. Only the bcrypt hash of the
// password is kept.
type Credential struct {
	Username string
	hash     string
}

// TokenAuth is the viewer token configuration. Secrets are HMAC keys, newest
// first; more than one allows rotation (R-SLOT-8).
type TokenAuth struct {
	Mode    TokenMode
	Secrets []secret.String
}

// Slot is one ingest configuration. Values returned by the repository are
// copies: changing one changes nothing stored.
type Slot struct {
	ID                keys.SlotID
	Name              string
	Description       string
	Type              Type
	Region            string
	Backup            bool
	IngestBitrateKbps int
	SegmentDuration   int // seconds
	FileExpiry        int // seconds
	DVRWindow         int // seconds

	Credentials   []Credential
	SRTPassphrase secret.String // "" when SRT encryption is off
	TokenAuth     TokenAuth

	PublishIPAllow IPList
	ViewerIPAllow  IPList
	ViewerIPDeny   IPList
	PullURLs       []string

	Status       Status
	StatusReason string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	Version      int64 // counts configuration writes; status changes do not count

	streamKeyHash string // hex SHA-256 of the stream key
}

// clone returns a deep copy, so cached and stored values are never shared.
func (s *Slot) clone() *Slot {
	c := *s
	c.Credentials = slices.Clone(s.Credentials)
	c.TokenAuth.Secrets = slices.Clone(s.TokenAuth.Secrets)
	c.PublishIPAllow = slices.Clone(s.PublishIPAllow)
	c.ViewerIPAllow = slices.Clone(s.ViewerIPAllow)
	c.ViewerIPDeny = slices.Clone(s.ViewerIPDeny)
	c.PullURLs = slices.Clone(s.PullURLs)
	return &c
}

// String names the slot without any secret.
func (s *Slot) String() string { return "slot " + string(s.ID) + " (" + s.Name + ")" }

// LogValue logs the identifying fields only; no secret or hash is logged.
func (s *Slot) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", string(s.ID)),
		slog.String("name", s.Name),
		slog.String("type", string(s.Type)),
		slog.String("region", s.Region),
		slog.Int64("version", s.Version),
	)
}

// HasStreamKey reports whether key is this slot's current stream key, in
// constant time.
func (s *Slot) HasStreamKey(key string) bool {
	return s.streamKeyHash != "" && secret.String(s.streamKeyHash).Equal(hashStreamKey(key))
}

// CheckPassword verifies a live-push Basic Auth pair with bcrypt. An unknown
// username costs a bcrypt comparison too, so timing does not reveal which
// usernames exist. It returns ErrBadCredentials on any mismatch.
func (s *Slot) CheckPassword(username, password string) error {
	hash := dummyHash
	for _, c := range s.Credentials {
		if c.Username == username {
			hash = c.hash
			break
		}
	}
	if !checkPassword(hash, password) || hash == dummyHash {
		return ErrBadCredentials
	}
	return nil
}

// ViewerAllowed applies the viewer IP lists (R-SLOT-7): deny wins; an empty
// allow list allows everyone not denied.
func (s *Slot) ViewerAllowed(addr netip.Addr) bool {
	if s.ViewerIPDeny.Contains(addr) {
		return false
	}
	return len(s.ViewerIPAllow) == 0 || s.ViewerIPAllow.Contains(addr)
}

// PublisherAllowed applies publish_ip_allow (R-SLOT-6): empty allows any.
func (s *Slot) PublisherAllowed(addr netip.Addr) bool {
	return len(s.PublishIPAllow) == 0 || s.PublishIPAllow.Contains(addr)
}
