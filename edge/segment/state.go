package segment

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/liveingest/liveingest/origin/store"
)

// The state object.
//
// Everything a writer needs to continue a slot/role's stream — the media
// and discontinuity sequence numbers, the segments of the DVR window with
// their exact per-track times, the DASH periods, and the fencing token of
// the writer that owns it — is one object, stateName, under the role
// prefix. It is the single point of linearisation for fencing: every change
// to the public manifests is first committed to it with a conditional Put
// (IfMatch on the ETag this writer last wrote or read), so two writers can
// never both commit a change on top of the same version.
//
// Why not parse the public playlists back: HLS EXTINF values are rounded
// and carry no per-track DASH timeline, and there are four public
// manifests, none of which alone is a consistent record.
//
// Why the ".m3u8" name: lifecycle.ClassOf classes objects by name only, and
// the state must be kept as long as the stream has segments and be deleted
// with the slot's media (R-EXPIRE-1), which is exactly the manifest class.
// The file is framed as an HLS document — "#EXTM3U" then one
// "#EXT-X-LIVEINGEST-STATE:" tag holding JSON — so a tool that opens it by
// its extension sees a (trivial) playlist; no playlist references it.
// Proposal for origin/lifecycle: a "state" class by name so this can become
// state.json.
const (
	stateName   = "state.m3u8"
	stateTag    = "#EXT-X-LIVEINGEST-STATE:"
	stateFormat = 1
)

// state is the durable record of one slot/role's stream.
type state struct {
	Format int    `json:"format"`
	Token  uint64 `json:"token"` // fencing token of the owning writer
	// AvailabilityStart anchors the DASH timeline (ISO 23009-1 5.3.1.2
	// availabilityStartTime): the wall clock of the first segment ever.
	AvailabilityStart time.Time `json:"availability_start"`
	NextSeq           uint64    `json:"next_seq"` // number of the next segment
	DiscSeq           uint64    `json:"disc_seq"` // EXT-X-DISCONTINUITY-SEQUENCE
	Periods           []period  `json:"periods"`  // DASH periods with segments in the window
	Segments          []segRec  `json:"segments"` // the window, oldest first
	Ended             bool      `json:"ended"`    // the last session closed
	PeakBandwidth     int       `json:"peak_bps"` // of the current period, bits/s
	AvgBandwidth      int       `json:"avg_bps"`  // of the current period, bits/s
}

// period is one publish session (one writer): its tracks and where it sits
// on the DASH timeline.
type period struct {
	ID     string        `json:"id"`
	Token  uint64        `json:"token"`
	Start  time.Duration `json:"start"` // Period@start, since AvailabilityStart
	Tracks []trackRec    `json:"tracks"`
}

// trackRec describes one rendition of a period.
type trackRec struct {
	Kind       string `json:"kind"`  // "v" or "a": also the directory
	Codec      string `json:"codec"` // RFC 6381 codecs parameter
	TimeScale  uint32 `json:"timescale"`
	Width      int    `json:"width,omitempty"`
	Height     int    `json:"height,omitempty"`
	SampleRate int    `json:"sample_rate,omitempty"`
	Channels   int    `json:"channels,omitempty"`
	Init       string `json:"init"` // relative path of the init file
	// PTO is the period's presentationTimeOffset in TimeScale units: the
	// base media decode time of its first segment.
	PTO uint64 `json:"pto"`
}

// segRec is one segment of the window. Tracks are the period's, same order.
type segRec struct {
	Seq    uint64     `json:"seq"`
	Period string     `json:"period"`
	Disc   bool       `json:"disc,omitempty"` // first segment after a session switch
	PDT    time.Time  `json:"pdt"`            // wall clock of its first sample
	Tracks []segTrack `json:"tracks"`
}

// segTrack is one track's part of a segment.
type segTrack struct {
	Kind  string `json:"kind"`
	URI   string `json:"uri"`
	T     uint64 `json:"t"` // baseMediaDecodeTime, track timescale
	D     uint64 `json:"d"` // duration, track timescale
	Bytes int    `json:"bytes"`
}

func (s *state) periodByID(id string) *period {
	for i := range s.Periods {
		if s.Periods[i].ID == id {
			return &s.Periods[i]
		}
	}
	return nil
}

func (s *state) clone() *state {
	c := *s
	c.Periods = append([]period(nil), s.Periods...)
	c.Segments = append([]segRec(nil), s.Segments...)
	return &c
}

func (s *state) marshal() ([]byte, error) {
	js, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n")
	b.WriteString("# liveingest segmenter state: not a playlist for players.\n")
	b.WriteString(stateTag)
	b.Write(js)
	b.WriteString("\n")
	return b.Bytes(), nil
}

func parseState(b []byte) (*state, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 64<<20)
	for sc.Scan() {
		line := sc.Text()
		if js, ok := strings.CutPrefix(line, stateTag); ok {
			var s state
			if err := json.Unmarshal([]byte(js), &s); err != nil {
				return nil, fmt.Errorf("segment: state: %w", err)
			}
			if s.Format != stateFormat {
				return nil, fmt.Errorf("segment: state format %d is not %d", s.Format, stateFormat)
			}
			return &s, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("segment: state: %w", err)
	}
	return nil, errors.New("segment: state: no state tag")
}

// loadState reads the state; a missing object is (nil, "", nil).
func loadState(ctx context.Context, st store.Store, key string) (*state, string, error) {
	rc, info, err := st.Get(ctx, key)
	if errors.Is(err, store.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("segment: read state: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		return nil, "", fmt.Errorf("segment: read state: %w", err)
	}
	s, err := parseState(b)
	if err != nil {
		return nil, "", err
	}
	return s, info.ETag, nil
}
