package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/liveingest/liveingest/origin/secret"
)

// SlotsCmd is the CLI of the slots API (R-CLI-1): the same operations as
// /api/v1, for scripts and people.
type SlotsCmd struct {
	// Server is the base URL of an origin or dev process. Default: http://localhost:8080.
	Server string `help:"Base URL of the API server." default:"http://localhost:8080"`
	// Token is the admin bearer token. Default: none (required).
	Token secret.String `help:"Admin API token." env:"LIVEINGEST_ADMIN_TOKEN"`
	// CACert trusts an extra PEM certificate, e.g. dev's data/tls/cert.pem. Default: none.
	CACert string `name:"ca-cert" help:"PEM certificate to trust for https (dev's data/tls/cert.pem)." type:"existingfile"`
	// Output selects table or json. Default: table.
	Output string `short:"o" help:"Output format: table or json." default:"table" enum:"table,json"`

	List      SlotsListCmd      `cmd:"" help:"List slots."`
	Get       SlotsGetCmd       `cmd:"" help:"Show one slot."`
	Create    SlotsCreateCmd    `cmd:"" help:"Create a slot; prints its stream key once."`
	Update    SlotsUpdateCmd    `cmd:"" help:"Change a slot (fields not given stay as they are)."`
	Clone     SlotsCloneCmd     `cmd:"" help:"Copy a slot's settings to a new slot with a new name and stream key."`
	Delete    SlotsDeleteCmd    `cmd:"" help:"Delete a slot and its stored media."`
	RotateKey SlotsRotateKeyCmd `cmd:"" name:"rotate-key" help:"Replace a slot's stream key; the old one stops working at once."`
	Live      SlotsLiveCmd      `cmd:"" help:"Show who publishes to a slot right now."`
}

// Validate checks the flags common to every slots command.
func (c *SlotsCmd) Validate() error {
	u, err := url.Parse(c.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--server: %q is not an http(s) URL", c.Server)
	}
	if c.Token.IsZero() {
		return errors.New("--token: required (or set LIVEINGEST_ADMIN_TOKEN)")
	}
	return nil
}

// apiError is the API's error body.
type apiError struct {
	Status int    `json:"-"`
	Msg    string `json:"error"`
	Field  string `json:"field"`
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s
}

// slotsClient talks to /api/v1.
type slotsClient struct {
	base  string
	token secret.String
	http  *http.Client
}

func (c *SlotsCmd) client() (*slotsClient, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c.CACert != "" {
		pem, err := os.ReadFile(c.CACert)
		if err != nil {
			return nil, fmt.Errorf("--ca-cert: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-cert: no certificate in %s", c.CACert)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &slotsClient{
		base:  strings.TrimSuffix(c.Server, "/") + "/api/v1",
		token: c.Token,
		http:  &http.Client{Timeout: 30 * time.Second, Transport: tr},
	}, nil
}

// do sends a request and decodes a JSON answer into out (when not nil). It
// returns the response's ETag.
func (c *slotsClient) do(ctx context.Context, method, path string, body any, header http.Header, out any) (string, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return "", err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.token.Reveal())
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode >= 300 {
		e := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Msg == "" {
			e.Msg = strings.TrimSpace(string(data))
		}
		return "", e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return "", fmt.Errorf("decode answer: %w", err)
		}
	}
	return resp.Header.Get("ETag"), nil
}

// slotPath is the API path of one slot; the id is escaped so that no
// argument can address another route.
func slotPath(id string, sub ...string) string {
	p := "/slots/" + url.PathEscape(id)
	for _, s := range sub {
		p += "/" + s
	}
	return p
}

// SlotsListCmd lists slots.
type SlotsListCmd struct {
	Region string `help:"Only slots of this region."`
	Type   string `help:"Only slots of this type."`
	Sort   string `help:"Sort by created, name, region or type." default:"created" enum:"created,name,region,type"`
	Order  string `help:"asc or desc." default:"asc" enum:"asc,desc"`
}

// Run lists slots.
func (l *SlotsListCmd) Run(ctx context.Context, e env, c *SlotsCmd) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	q := url.Values{"sort": {l.Sort}, "order": {l.Order}}
	if l.Region != "" {
		q.Set("region", l.Region)
	}
	if l.Type != "" {
		q.Set("type", l.Type)
	}
	var raw json.RawMessage
	if _, err := cl.do(ctx, http.MethodGet, "/slots?"+q.Encode(), nil, nil, &raw); err != nil {
		return err
	}
	if c.Output == "json" {
		return printJSON(e.stdout, raw)
	}
	var list struct {
		Slots []map[string]any `json:"slots"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTYPE\tREGION\tSTATUS\tVERSION\tCREATED")
	for _, s := range list.Slots {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", str(s["id"]), str(s["name"]), str(s["type"]),
			str(s["region"]), str(s["status"]), str(s["version"]), str(s["created_at"]))
	}
	return tw.Flush()
}

// SlotsGetCmd shows one slot.
type SlotsGetCmd struct {
	ID string `arg:"" help:"Slot id."`
}

// Run shows the slot.
func (s *SlotsGetCmd) Run(ctx context.Context, e env, c *SlotsCmd) error {
	return c.showSlot(ctx, e, http.MethodGet, slotPath(s.ID))
}

// SlotsRotateKeyCmd replaces a slot's stream key.
type SlotsRotateKeyCmd struct {
	ID string `arg:"" help:"Slot id."`
}

// Run rotates the key and shows the slot with the new key, once.
func (s *SlotsRotateKeyCmd) Run(ctx context.Context, e env, c *SlotsCmd) error {
	return c.showSlot(ctx, e, http.MethodPost, slotPath(s.ID, "rotate-key"))
}

// showSlot sends a body-less request that answers with a slot view.
func (c *SlotsCmd) showSlot(ctx context.Context, e env, method, path string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if _, err := cl.do(ctx, method, path, nil, nil, &raw); err != nil {
		return err
	}
	return printSlot(e.stdout, c.Output, raw)
}

// SlotsLiveCmd shows a slot's live sessions.
type SlotsLiveCmd struct {
	ID string `arg:"" help:"Slot id."`
}

// Run shows the live status.
func (s *SlotsLiveCmd) Run(ctx context.Context, e env, c *SlotsCmd) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if _, err := cl.do(ctx, http.MethodGet, slotPath(s.ID, "live"), nil, nil, &raw); err != nil {
		return err
	}
	if c.Output == "json" {
		return printJSON(e.stdout, raw)
	}
	return printLive(e.stdout, raw)
}

// SlotFields are the slot settings a command line can give. Unset flags are
// left out of the request, so update changes only what is given. Secrets
// given as flags are visible in the process list: prefer --file.
type SlotFields struct {
	File            string   `short:"f" help:"JSON file with slot fields (SPEC §8 names; - for stdin); flags override it." type:"path"`
	Name            *string  `help:"Slot name: letters, digits, hyphen; 1-63."`
	Description     *string  `help:"Description, up to 255 characters."`
	Type            *string  `help:"transmux, transcode-576p, transcode-720p, transcode-1080p, live-push or pull."`
	Region          *string  `help:"Ingest region."`
	Backup          *bool    `help:"Also provision a backup ingest point." negatable:""`
	Bitrate         *int     `name:"bitrate" help:"Total ingest bitrate limit in kbit/s."`
	SegmentDuration *int     `help:"Segment duration in seconds (1-10)."`
	FileExpiry      *int     `help:"Seconds segments are kept."`
	DVRWindow       *int     `name:"dvr-window" help:"Seconds of segments listed in live playlists."`
	Credential      []string `help:"Live-push credential USER:PASSWORD (repeatable; replaces the list)."`
	PublishIPAllow  []string `name:"publish-ip-allow" help:"IP or CIDR allowed to publish (repeatable; replaces the list)."`
	ViewerIPAllow   []string `name:"viewer-ip-allow" help:"IP or CIDR allowed to play (repeatable)."`
	ViewerIPDeny    []string `name:"viewer-ip-deny" help:"IP or CIDR denied playback (repeatable)."`
	PullURL         []string `name:"pull-url" help:"Source URL of a pull slot (repeatable)."`
	TokenAuth       *string  `name:"token-auth" help:"Playback token mode: off, url or cookie."`
}

// body builds the JSON request from --file and the flags that were given.
func (f *SlotFields) body(stdin io.Reader) (map[string]any, error) {
	b := map[string]any{}
	if f.File != "" {
		var data []byte
		var err error
		if f.File == "-" {
			data, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
		} else {
			data, err = os.ReadFile(f.File)
		}
		if err != nil {
			return nil, fmt.Errorf("--file: %w", err)
		}
		if err := json.Unmarshal(data, &b); err != nil {
			return nil, fmt.Errorf("--file: %w", err)
		}
	}
	setIf(b, "name", f.Name)
	setIf(b, "description", f.Description)
	setIf(b, "type", f.Type)
	setIf(b, "region", f.Region)
	setIf(b, "backup", f.Backup)
	setIf(b, "ingest_bitrate_kbps", f.Bitrate)
	setIf(b, "segment_duration", f.SegmentDuration)
	setIf(b, "file_expiry", f.FileExpiry)
	setIf(b, "dvr_window", f.DVRWindow)
	if f.Credential != nil {
		creds := []map[string]string{}
		for _, c := range f.Credential {
			user, pass, ok := strings.Cut(c, ":")
			if !ok || user == "" {
				return nil, fmt.Errorf("--credential: want USER:PASSWORD")
			}
			creds = append(creds, map[string]string{"username": user, "password": pass})
		}
		b["credentials"] = creds
	}
	for name, list := range map[string][]string{"publish_ip_allow": f.PublishIPAllow, "viewer_ip_allow": f.ViewerIPAllow, "viewer_ip_deny": f.ViewerIPDeny, "pull_urls": f.PullURL} {
		if list != nil {
			b[name] = list
		}
	}
	if f.TokenAuth != nil {
		ta, _ := b["token_auth"].(map[string]any)
		if ta == nil {
			ta = map[string]any{}
		}
		ta["mode"] = *f.TokenAuth
		b["token_auth"] = ta
	}
	return b, nil
}

func setIf[T any](b map[string]any, key string, v *T) {
	if v != nil {
		b[key] = *v
	}
}

// SlotsCreateCmd creates a slot.
type SlotsCreateCmd struct {
	SlotFields `embed:""`
}

// Run creates the slot.
func (s *SlotsCreateCmd) Run(ctx context.Context, e env, c *SlotsCmd) error {
	body, err := s.body(os.Stdin)
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if _, err := cl.do(ctx, http.MethodPost, "/slots", body, nil, &raw); err != nil {
		return err
	}
	return printSlot(e.stdout, c.Output, raw)
}

// SlotsUpdateCmd changes a slot.
type SlotsUpdateCmd struct {
	ID         string `arg:"" help:"Slot id."`
	IfMatch    string `name:"if-match" help:"Only update if the slot is still at this version (from get)."`
	SlotFields `embed:""`
}

// Run updates the slot.
func (s *SlotsUpdateCmd) Run(ctx context.Context, e env, c *SlotsCmd) error {
	body, err := s.body(os.Stdin)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return errors.New("update: nothing to change (give flags or --file)")
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if _, err := cl.do(ctx, http.MethodPatch, slotPath(s.ID), body, ifMatch(s.IfMatch), &raw); err != nil {
		return err
	}
	return printSlot(e.stdout, c.Output, raw)
}

func ifMatch(v string) http.Header {
	if v == "" {
		return nil
	}
	if _, err := strconv.ParseInt(v, 10, 64); err == nil {
		v = `"` + v + `"`
	}
	return http.Header{"If-Match": {v}}
}

// SlotsCloneCmd copies a slot.
type SlotsCloneCmd struct {
	ID   string `arg:"" help:"Slot id to copy."`
	Name string `help:"Name of the new slot (required)." required:""`
}

// Run clones the slot.
func (s *SlotsCloneCmd) Run(ctx context.Context, e env, c *SlotsCmd) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if _, err := cl.do(ctx, http.MethodPost, slotPath(s.ID, "clone"), map[string]string{"name": s.Name}, nil, &raw); err != nil {
		return err
	}
	return printSlot(e.stdout, c.Output, raw)
}

// SlotsDeleteCmd deletes a slot.
type SlotsDeleteCmd struct {
	ID      string `arg:"" help:"Slot id."`
	IfMatch string `name:"if-match" help:"Only delete if the slot is still at this version."`
}

// Run deletes the slot.
func (s *SlotsDeleteCmd) Run(ctx context.Context, e env, c *SlotsCmd) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	if _, err := cl.do(ctx, http.MethodDelete, slotPath(s.ID), nil, ifMatch(s.IfMatch), nil); err != nil {
		return err
	}
	if c.Output == "json" {
		return printJSON(e.stdout, json.RawMessage(`{"deleted":`+strconv.Quote(s.ID)+`}`))
	}
	_, err = fmt.Fprintf(e.stdout, "deleted %s\n", s.ID)
	return err
}

func printJSON(w io.Writer, raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// printSlot shows a slot view: JSON as the API sent it, or a table of the
// fields people look for, the stream key first when the answer has it.
func printSlot(w io.Writer, format string, raw json.RawMessage) error {
	if format == "json" {
		return printJSON(w, raw)
	}
	var s map[string]any
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if k := str(s["stream_key"]); k != "" {
		fmt.Fprintf(tw, "stream key\t%s\t(shown once: store it now)\n", k)
	}
	for _, f := range []string{"id", "name", "description", "type", "region", "backup", "status", "status_reason",
		"ingest_bitrate_kbps", "segment_duration", "file_expiry", "dvr_window", "version", "created_at", "updated_at"} {
		if v := str(s[f]); v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", strings.ReplaceAll(f, "_", " "), v)
		}
	}
	for _, group := range []string{"ingest_urls", "playback_urls"} {
		m, _ := s[group].(map[string]any)
		for _, k := range sortedKeys(m) {
			switch v := m[k].(type) {
			case map[string]any:
				for _, role := range []string{"primary", "backup"} {
					if u := str(v[role]); u != "" {
						fmt.Fprintf(tw, "%s %s %s\t%s\n", strings.TrimSuffix(group, "_urls"), k, role, u)
					}
				}
			default:
				fmt.Fprintf(tw, "%s %s\t%s\n", strings.TrimSuffix(group, "_urls"), k, str(v))
			}
		}
	}
	return tw.Flush()
}

func printLive(w io.Writer, raw json.RawMessage) error {
	var l struct {
		Live     bool             `json:"live"`
		Sessions []map[string]any `json:"sessions"`
		Recent   []map[string]any `json:"recent"`
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if !l.Live {
		fmt.Fprintln(tw, "not live")
	} else {
		fmt.Fprintln(tw, "ROLE\tPROTOCOL\tREMOTE\tEDGE\tSINCE\tKBIT/S\tLINK")
		for _, s := range l.Sessions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", str(s["role"]), str(s["protocol"]), str(s["remote"]),
				str(s["edge"]), str(s["started"]), str(s["bitrate_kbps"]), linkSummary(s["link"]))
		}
	}
	if len(l.Recent) > 0 {
		fmt.Fprintln(tw, "\nRECENT\tROLE\tPROTOCOL\tREMOTE\tEDGE\tREASON")
		for _, s := range l.Recent {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", str(s["ended"]), str(s["role"]), str(s["protocol"]),
				str(s["remote"]), str(s["edge"]), str(s["end_reason"]))
		}
	}
	return tw.Flush()
}

// linkSummary is a transport's statistics (SRT) in one column: RTT and the
// packets lost, retransmitted and dropped out of those received.
func linkSummary(v any) string {
	l, ok := v.(map[string]any)
	if !ok {
		return "-"
	}
	rtt, _ := l["rtt_ms"].(float64)
	return fmt.Sprintf("rtt %.0fms, %s pkts: %s lost %s retransmitted %s dropped", rtt, str(l["packets_received"]),
		str(l["packets_lost"]), str(l["packets_retransmitted"]), str(l["packets_dropped"]))
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

func str(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}
