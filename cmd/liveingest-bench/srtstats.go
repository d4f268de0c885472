package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SRTRun is what an SRT run says about the link, from both ends: the
// callers' counters, the kernel's drops at the server's UDP socket, and the
// server's own per-connection counters from its log. Over loopback nothing
// should be lost; whatever is, is the server (or the machine) not keeping up.
//
// What the counters mean is gosrt v0.11.0's (both ends use it): a packet
// the receiver gave up on is skipped without being counted anywhere (the
// receiver's "dropped" are late or duplicate arrivals it discarded, and the
// cumulative ACK past the gap clears it at the sender), so media lost for
// good shows only as MPEG-TS continuity errors at the server
// (SRTServerLog.TSDecodeErrors), which is what judge uses.
type SRTRun struct {
	// Caller side, summed over the publishers (SRTStats).
	Packets       uint64  `json:"packets_written"`
	Sent          uint64  `json:"packets_sent"`
	Retransmitted uint64  `json:"packets_retransmitted"`
	Dropped       uint64  `json:"packets_sender_dropped"` // unacknowledged past the sender's drop threshold (~1.2 s)
	Unacked       uint64  `json:"packets_unacked_at_close"`
	TSBytes       uint64  `json:"ts_bytes"`
	TSOverheadPct float64 `json:"ts_overhead_pct"` // MPEG-TS bytes over the frames' payload bytes, minus 100 %
	RTTmsMax      float64 `json:"rtt_ms_max"`
	// UDPDrops are datagrams the kernel dropped at the server's SRT socket
	// during the load, its receive buffer being full (the drops column of
	// /proc/net/udp); -1 when the socket was not found.
	UDPDrops int64 `json:"udp_rcvbuf_drops"`
	// Server is the server's account, from its log; nil when the log had
	// no SRT connection lines.
	Server *SRTServerLog `json:"server,omitempty"`
}

// addSRT sums the publishers' SRT counters into res.SRT.
func addSRT(res *RunResult, results []PubResult) {
	var r SRTRun
	for _, p := range results {
		if p.SRT == nil {
			continue
		}
		r.Packets += p.SRT.Packets
		r.Sent += p.SRT.Sent
		r.Retransmitted += p.SRT.Retransmitted
		r.Dropped += p.SRT.Dropped
		r.Unacked += p.SRT.Unacked
		r.TSBytes += p.SRT.Bytes
		r.RTTmsMax = max(r.RTTmsMax, p.SRT.RTTms)
	}
	var payload int64
	for _, p := range results {
		payload += p.Bytes
	}
	if payload > 0 {
		r.TSOverheadPct = 100 * (float64(r.TSBytes)/float64(payload) - 1)
	}
	r.UDPDrops = -1
	res.SRT = &r
}

// ParseUDPDrops sums the drops column of the sockets bound to local port
// port in the contents of /proc/net/udp or /proc/net/udp6 (proc(5)); found
// is false when no such socket is listed.
func ParseUDPDrops(b []byte, port int) (drops int64, found bool) {
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
		if len(f) < 13 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if !ok || err != nil || int(p) != port {
			continue
		}
		d, err := strconv.ParseInt(f[12], 10, 64)
		if err != nil {
			continue
		}
		drops += d
		found = true
	}
	return drops, found
}

// udpDrops reads the kernel's drops at the UDP sockets bound to port; -1
// when none is listed or port is not one.
func (p Proc) udpDrops(port int) int64 {
	if port <= 0 {
		return -1
	}
	var sum int64
	found := false
	for _, name := range []string{"udp", "udp6"} {
		b, err := os.ReadFile(filepath.Join(p.Root, "net", name))
		if err != nil {
			continue
		}
		if d, ok := ParseUDPDrops(b, port); ok {
			sum += d
			found = true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// SRTServerLog is what liveingest's JSON log says about a run's SRT
// connections: edge/srt logs one "srt connection closed" line per
// connection with the reason and the receiver's link counters.
type SRTServerLog struct {
	Closed         int            `json:"connections_closed"`
	Reasons        map[string]int `json:"close_reasons,omitempty"`
	Received       int64          `json:"packets_received"`
	Lost           int64          `json:"packets_lost"` // detected missing (a gap), recovered or not
	Retransmitted  int64          `json:"packets_retransmitted"`
	Dropped        int64          `json:"packets_dropped"` // discarded: arrived after their delivery or ACK, or twice (not lost media)
	TSDecodeErrors int64          `json:"ts_decode_errors"`
	// Warnings and Errors count the log's WARN and ERROR lines, whatever
	// their source; FirstProblem is the first one's message.
	Warnings     int    `json:"log_warnings"`
	Errors       int    `json:"log_errors"`
	FirstProblem string `json:"first_problem,omitempty"`
}

// srtClosedMsg is edge/srt's message for a connection's end.
const srtClosedMsg = "srt connection closed"

// ParseSRTServerLog reads a liveingest JSON log (one object per line;
// other lines are skipped). It returns nil when the log has no SRT
// connection line and no warning or error.
func ParseSRTServerLog(r io.Reader) *SRTServerLog {
	var l SRTServerLog
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e struct {
			Level          string `json:"level"`
			Msg            string `json:"msg"`
			Reason         string `json:"reason"`
			Packets        int64  `json:"packets"`
			Lost           int64  `json:"lost"`
			Retransmitted  int64  `json:"retransmitted"`
			Dropped        int64  `json:"dropped"`
			TSDecodeErrors int64  `json:"ts_decode_errors"`
			Err            string `json:"err"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch e.Level {
		case "WARN", "ERROR":
			if e.Level == "WARN" {
				l.Warnings++
			} else {
				l.Errors++
			}
			if l.FirstProblem == "" {
				l.FirstProblem = e.Msg
				if e.Reason != "" {
					l.FirstProblem += ": " + e.Reason
				}
				if e.Err != "" {
					l.FirstProblem += ": " + e.Err
				}
			}
		}
		if e.Msg != srtClosedMsg {
			continue
		}
		l.Closed++
		if l.Reasons == nil {
			l.Reasons = map[string]int{}
		}
		l.Reasons[e.Reason]++
		l.Received += e.Packets
		l.Lost += e.Lost
		l.Retransmitted += e.Retransmitted
		l.Dropped += e.Dropped
		l.TSDecodeErrors += e.TSDecodeErrors
	}
	if l.Closed == 0 && l.Warnings == 0 && l.Errors == 0 {
		return nil
	}
	return &l
}

// readSRTServerLog parses the log file at path; nil when it cannot be read.
func readSRTServerLog(path string) *SRTServerLog {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	return ParseSRTServerLog(f)
}

// srtPublisherLeft is edge/srt's close reason for a caller that ended its
// session itself: the normal end of every publisher of a run.
const srtPublisherLeft = "publisher disconnected"

// serverLog is q.Server, nil-safe.
func (q *SRTRun) serverLog() *SRTServerLog {
	if q == nil {
		return nil
	}
	return q.Server
}
