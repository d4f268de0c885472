package slots

import "time"

// View is the slot as the API shows it: exactly the fields of SPEC §8 with
// write-only fields (passwords, SRT passphrase, token secrets) left out and
// stream_key present only on the create and rotate responses.
type View struct {
	ID                string           `json:"id"`
	Name              string           `json:"name"`
	Description       string           `json:"description"`
	Type              Type             `json:"type"`
	Region            string           `json:"region"`
	Backup            bool             `json:"backup"`
	IngestBitrateKbps int              `json:"ingest_bitrate_kbps"`
	SegmentDuration   int              `json:"segment_duration"`
	FileExpiry        int              `json:"file_expiry"`
	DVRWindow         int              `json:"dvr_window"`
	Credentials       []CredentialView `json:"credentials"`
	StreamKey         string           `json:"stream_key,omitempty"`
	PublishIPAllow    []string         `json:"publish_ip_allow"`
	ViewerIPAllow     []string         `json:"viewer_ip_allow"`
	ViewerIPDeny      []string         `json:"viewer_ip_deny"`
	TokenAuth         TokenAuthView    `json:"token_auth"`
	PullURLs          []string         `json:"pull_urls"`
	Status            Status           `json:"status"`
	StatusReason      string           `json:"status_reason"`
	CreatedAt         time.Time        `json:"created_at"`
	UpdatedAt         time.Time        `json:"updated_at"`
	Version           int64            `json:"version"`
	IngestURLs        IngestURLs       `json:"ingest_urls"`
	PlaybackURLs      PlaybackURLs     `json:"playback_urls"`
}

// CredentialView shows a credential's username; the password is write-only.
type CredentialView struct {
	Username string `json:"username"`
}

// TokenAuthView shows the token mode; the secrets are write-only.
type TokenAuthView struct {
	Mode TokenMode `json:"mode"`
}

// View builds the API view. streamKey is the plaintext key, known only right
// after Create, Clone or RotateKey (pass Created.StreamKey.Reveal()); "" on
// every other response, which then shows StreamKeyPlaceholder in the ingest
// URLs that embed the key.
func (s *Slot) View(d Deployment, streamKey string) View {
	v := View{
		ID:                string(s.ID),
		Name:              s.Name,
		Description:       s.Description,
		Type:              s.Type,
		Region:            s.Region,
		Backup:            s.Backup,
		IngestBitrateKbps: s.IngestBitrateKbps,
		SegmentDuration:   s.SegmentDuration,
		FileExpiry:        s.FileExpiry,
		DVRWindow:         s.DVRWindow,
		Credentials:       make([]CredentialView, 0, len(s.Credentials)),
		StreamKey:         streamKey,
		PublishIPAllow:    s.PublishIPAllow.Strings(),
		ViewerIPAllow:     s.ViewerIPAllow.Strings(),
		ViewerIPDeny:      s.ViewerIPDeny.Strings(),
		TokenAuth:         TokenAuthView{Mode: s.TokenAuth.Mode},
		PullURLs:          append([]string{}, s.PullURLs...),
		Status:            s.Status,
		StatusReason:      s.StatusReason,
		CreatedAt:         s.CreatedAt.UTC(),
		UpdatedAt:         s.UpdatedAt.UTC(),
		Version:           s.Version,
		IngestURLs:        d.IngestURLs(s, streamKey),
		PlaybackURLs:      d.PlaybackURLs(s),
	}
	for _, c := range s.Credentials {
		v.Credentials = append(v.Credentials, CredentialView{Username: c.Username})
	}
	return v
}
