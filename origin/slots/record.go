package slots

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
)

// record is the stored form of a slot at keys.SlotConfig(id). It is a
// separate struct with plain strings because secret.String redacts itself in
// JSON: persisting a Slot directly would store "[redacted]". Passwords are
// bcrypt hashes and the stream key a SHA-256; the SRT passphrase and token
// secrets are stored as they are, because the edge needs the passphrase for
// AES and playback needs the HMAC keys (the store is the trust boundary).
type record struct {
	Format            int          `json:"format"`
	ID                string       `json:"id"`
	Name              string       `json:"name"`
	Description       string       `json:"description"`
	Type              Type         `json:"type"`
	Region            string       `json:"region"`
	Backup            bool         `json:"backup"`
	IngestBitrateKbps int          `json:"ingest_bitrate_kbps"`
	SegmentDuration   int          `json:"segment_duration"`
	FileExpiry        int          `json:"file_expiry"`
	DVRWindow         int          `json:"dvr_window"`
	Credentials       []recordCred `json:"credentials"`
	StreamKeySHA256   string       `json:"stream_key_sha256"`
	SRTPassphrase     string       `json:"srt_passphrase,omitempty"`
	PublishIPAllow    []string     `json:"publish_ip_allow"`
	ViewerIPAllow     []string     `json:"viewer_ip_allow"`
	ViewerIPDeny      []string     `json:"viewer_ip_deny"`
	TokenMode         TokenMode    `json:"token_mode"`
	TokenSecrets      []string     `json:"token_secrets,omitempty"`
	PullURLs          []string     `json:"pull_urls"`
	Status            Status       `json:"status"`
	StatusReason      string       `json:"status_reason"`
	CreatedAt         time.Time    `json:"created_at"`
	UpdatedAt         time.Time    `json:"updated_at"`
	Version           int64        `json:"version"`
}

type recordCred struct {
	Username     string `json:"username"`
	PasswordHash string `json:"password_bcrypt"`
}

const recordFormat = 1

func encodeRecord(s *Slot) []byte {
	r := record{
		Format: recordFormat, ID: string(s.ID), Name: s.Name, Description: s.Description,
		Type: s.Type, Region: s.Region, Backup: s.Backup, IngestBitrateKbps: s.IngestBitrateKbps,
		SegmentDuration: s.SegmentDuration, FileExpiry: s.FileExpiry, DVRWindow: s.DVRWindow,
		StreamKeySHA256: s.streamKeyHash, SRTPassphrase: s.SRTPassphrase.Reveal(),
		PublishIPAllow: s.PublishIPAllow.Strings(), ViewerIPAllow: s.ViewerIPAllow.Strings(),
		ViewerIPDeny: s.ViewerIPDeny.Strings(), TokenMode: s.TokenAuth.Mode,
		PullURLs: append([]string{}, s.PullURLs...), Status: s.Status, StatusReason: s.StatusReason,
		CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC(), Version: s.Version,
		Credentials: make([]recordCred, 0, len(s.Credentials)),
	}
	for _, c := range s.Credentials {
		r.Credentials = append(r.Credentials, recordCred{Username: c.Username, PasswordHash: c.hash})
	}
	for _, sec := range s.TokenAuth.Secrets {
		r.TokenSecrets = append(r.TokenSecrets, sec.Reveal())
	}
	b, _ := json.Marshal(r) // plain strings, ints and times: cannot fail
	return b
}

func decodeRecord(b []byte) (*Slot, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("slot record: %w", err)
	}
	if r.Format != recordFormat {
		return nil, fmt.Errorf("slot record: unknown format %d", r.Format)
	}
	id, err := keys.ParseSlotID(r.ID)
	if err != nil {
		return nil, fmt.Errorf("slot record: %w", err)
	}
	s := &Slot{
		ID: id, Name: r.Name, Description: r.Description, Type: r.Type, Region: r.Region,
		Backup: r.Backup, IngestBitrateKbps: r.IngestBitrateKbps, SegmentDuration: r.SegmentDuration,
		FileExpiry: r.FileExpiry, DVRWindow: r.DVRWindow, SRTPassphrase: secret.String(r.SRTPassphrase),
		TokenAuth: TokenAuth{Mode: r.TokenMode}, PullURLs: r.PullURLs, Status: r.Status,
		StatusReason: r.StatusReason, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		Version: r.Version, streamKeyHash: r.StreamKeySHA256,
	}
	for _, c := range r.Credentials {
		s.Credentials = append(s.Credentials, Credential{Username: c.Username, hash: c.PasswordHash})
	}
	for _, sec := range r.TokenSecrets {
		s.TokenAuth.Secrets = append(s.TokenAuth.Secrets, secret.String(sec))
	}
	// The lists were canonical when written; parse them back to prefixes.
	for _, l := range []struct {
		in  []string
		dst *IPList
	}{{r.PublishIPAllow, &s.PublishIPAllow}, {r.ViewerIPAllow, &s.ViewerIPAllow}, {r.ViewerIPDeny, &s.ViewerIPDeny}} {
		if *l.dst, err = ParseIPList("ip list", l.in); err != nil {
			return nil, fmt.Errorf("slot record: %w", err)
		}
	}
	return s, nil
}
