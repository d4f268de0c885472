package slots

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/liveingest/liveingest/origin/secret"
)

// Input is the writable part of a slot as the API receives it (SPEC §8), for
// create (absent fields take defaults) and for update (absent fields are left
// as they are: PATCH semantics). Write-only secrets arrive here and nowhere
// else in plaintext.
type Input struct {
	Name              *string         `json:"name"`
	Description       *string         `json:"description"`
	Type              *Type           `json:"type"`
	Region            *string         `json:"region"`
	Backup            *bool           `json:"backup"`
	IngestBitrateKbps *int            `json:"ingest_bitrate_kbps"`
	SegmentDuration   *int            `json:"segment_duration"`
	FileExpiry        *int            `json:"file_expiry"`
	DVRWindow         *int            `json:"dvr_window"`
	Credentials       *[]CredentialIn `json:"credentials"`
	SRTPassphrase     *secret.String  `json:"srt_passphrase"` // "" clears it
	PublishIPAllow    *[]string       `json:"publish_ip_allow"`
	ViewerIPAllow     *[]string       `json:"viewer_ip_allow"`
	ViewerIPDeny      *[]string       `json:"viewer_ip_deny"`
	TokenAuth         *TokenAuthIn    `json:"token_auth"`
	PullURLs          *[]string       `json:"pull_urls"`
}

// CredentialIn is one credential in an Input. On update, an entry whose
// password is empty keeps the stored password of that username, so a client
// can send back the list it read (which has no passwords) with changes.
type CredentialIn struct {
	Username string        `json:"username"`
	Password secret.String `json:"password"`
}

// TokenAuthIn is token_auth in an Input. Secrets absent (nil) keep the stored
// secrets; a present list replaces them.
type TokenAuthIn struct {
	Mode    *TokenMode       `json:"mode"`
	Secrets *[]secret.String `json:"secrets"`
}

// readOnlyFields are fields of the View that a client may send back
// unchanged (GET, edit, PATCH); they are ignored rather than refused.
var readOnlyFields = []string{"id", "stream_key", "status", "status_reason", "created_at", "updated_at", "version", "ingest_urls", "playback_urls"}

// DecodeInput decodes one JSON object into an Input. Unknown fields are
// refused (a typo must not be silently ignored); read-only View fields are
// ignored. Errors are *FieldError when a field can be named.
func DecodeInput(r io.Reader) (Input, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(r)
	if err := dec.Decode(&raw); err != nil {
		return Input{}, decodeErr(err)
	}
	if dec.More() {
		return Input{}, errors.New("body must hold one JSON object")
	}
	for _, f := range readOnlyFields {
		delete(raw, f)
	}
	clean, _ := json.Marshal(raw)
	var in Input
	dec = json.NewDecoder(strings.NewReader(string(clean)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return Input{}, decodeErr(err)
	}
	return in, nil
}

func decodeErr(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fieldErr(te.Field, "has the wrong JSON type ("+te.Value+")")
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fieldErr(strings.Trim(f, `"`), "is not a slot field")
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// newDraft is a slot with the defaults of a create, before the input is
// applied.
func newDraft(d Deployment) *Slot {
	return &Slot{
		Type:              TypeTransmux,
		Region:            d.DefaultRegion(),
		IngestBitrateKbps: DefaultIngestBitrateKbps,
		SegmentDuration:   DefaultSegmentDuration,
		FileExpiry:        DefaultFileExpiry,
		DVRWindow:         DefaultDVRWindow,
		TokenAuth:         TokenAuth{Mode: TokenOff},
	}
}

// apply sets the fields present in in onto s, then validates the result and
// hashes new passwords with bcrypt at cost (last, so that invalid input costs
// no bcrypt time).
func (s *Slot) apply(in Input, d Deployment, cost int) error {
	set(&s.Name, in.Name)
	set(&s.Description, in.Description)
	set(&s.Type, in.Type)
	set(&s.Region, in.Region)
	set(&s.Backup, in.Backup)
	set(&s.IngestBitrateKbps, in.IngestBitrateKbps)
	set(&s.SegmentDuration, in.SegmentDuration)
	set(&s.FileExpiry, in.FileExpiry)
	set(&s.DVRWindow, in.DVRWindow)
	set(&s.SRTPassphrase, in.SRTPassphrase)
	if in.PullURLs != nil {
		s.PullURLs = append([]string{}, (*in.PullURLs)...)
	}
	for _, l := range []struct {
		field string
		in    *[]string
		dst   *IPList
	}{
		{"publish_ip_allow", in.PublishIPAllow, &s.PublishIPAllow},
		{"viewer_ip_allow", in.ViewerIPAllow, &s.ViewerIPAllow},
		{"viewer_ip_deny", in.ViewerIPDeny, &s.ViewerIPDeny},
	} {
		if l.in == nil {
			continue
		}
		parsed, err := ParseIPList(l.field, *l.in)
		if err != nil {
			return err
		}
		*l.dst = parsed
	}
	if t := in.TokenAuth; t != nil {
		set(&s.TokenAuth.Mode, t.Mode)
		if t.Secrets != nil {
			s.TokenAuth.Secrets = append([]secret.String{}, (*t.Secrets)...)
		}
	}
	var plain map[int]string // index in s.Credentials → new password
	if in.Credentials != nil {
		old := s.Credentials
		s.Credentials = make([]Credential, 0, len(*in.Credentials))
		plain = map[int]string{}
		for i, c := range *in.Credentials {
			cred := Credential{Username: c.Username}
			if c.Password.IsZero() {
				for _, o := range old {
					if o.Username == c.Username {
						cred.hash = o.hash
					}
				}
			} else {
				if err := validatePassword(fmt.Sprintf("credentials[%d].password", i), c.Password.Reveal()); err != nil {
					return err
				}
				cred.hash = "pending" // replaced below, after validation
				plain[i] = c.Password.Reveal()
			}
			s.Credentials = append(s.Credentials, cred)
		}
	}
	if err := s.Validate(d); err != nil {
		return err
	}
	for i, pw := range plain {
		h, err := hashPassword(pw, cost)
		if err != nil {
			return fieldErr(fmt.Sprintf("credentials[%d].password", i), err.Error())
		}
		s.Credentials[i].hash = h
	}
	return nil
}

func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}
