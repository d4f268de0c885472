package main

import (
	"strings"
	"testing"
)

// procNetUDP6 is /proc/net/udp6 with liveingest's SRT socket on port 0x8CA1
// (36001) and a caller's socket connected to it.
const procNetUDP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 1029: 00000000000000000000FFFF0100007F:8CA1 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 812345 2 0000000000000000 17
 1030: 00000000000000000000FFFF0100007F:C350 00000000000000000000FFFF0100007F:8CA1 01 00000000:00000000 00:00000000 00000000     0        0 812399 2 0000000000000000 4
`

const procNetUDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  125: 0100007F:8CA1 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 99 2 0000000000000000 3
  126: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 17 2 0000000000000000 0
`

func TestParseUDPDrops(t *testing.T) {
	for _, c := range []struct {
		name  string
		in    string
		port  int
		drops int64
		found bool
	}{
		{"udp6 listener, not the caller bound elsewhere", procNetUDP6, 0x8CA1, 17, true},
		{"the caller's own port", procNetUDP6, 0xC350, 4, true},
		{"udp", procNetUDP, 0x8CA1, 3, true},
		{"no such port", procNetUDP, 9000, 0, false},
		{"header only", "  sl  local_address rem_address st\n", 53, 0, false},
		{"garbage", "1: zz:zz\n", 53, 0, false},
	} {
		d, ok := ParseUDPDrops([]byte(c.in), c.port)
		if d != c.drops || ok != c.found {
			t.Errorf("%s: %d, %v; want %d, %v", c.name, d, ok, c.drops, c.found)
		}
	}
	if (Proc{Root: t.TempDir()}).udpDrops(36001) != -1 || (Proc{Root: "/proc"}).udpDrops(-1) != -1 {
		t.Error("udpDrops without a socket: want -1")
	}
}

// serverLog is edge/srt's JSON log as liveingest dev writes it.
const serverLog = `{"time":"2026-11-21T09:25:06Z","level":"INFO","msg":"listening","proto":"srt","addr":"127.0.0.1:36001"}
not json: a panic trace or a line of a library
{"time":"2026-11-21T09:25:22Z","level":"INFO","msg":"srt connection closed","service":"dev","proto":"srt","role":"primary","reason":"publisher disconnected","duration":11024000000,"packets":3200,"lost":2,"retransmitted":2,"dropped":0,"rtt_ms":0.32,"ts_decode_errors":0,"ts_discontinuities":0}
{"time":"2026-11-21T09:25:23Z","level":"WARN","msg":"srt connection closed","reason":"publisher disconnected: no data for 10s","packets":3100,"lost":40,"retransmitted":30,"dropped":10,"ts_decode_errors":3}
{"time":"2026-11-21T09:25:24Z","level":"ERROR","msg":"segment write failed","err":"disk full"}
{"time":"2026-11-21T09:25:25Z","level":"INFO","msg":"srt connection closed","reason":"publisher disconnected","packets":3200,"lost":0,"retransmitted":0,"dropped":0,"ts_decode_errors":0}
`

func TestParseSRTServerLog(t *testing.T) {
	l := ParseSRTServerLog(strings.NewReader(serverLog))
	if l == nil {
		t.Fatal("nil")
	}
	if l.Closed != 3 || l.Reasons["publisher disconnected"] != 2 || l.Reasons["publisher disconnected: no data for 10s"] != 1 {
		t.Errorf("closes %d, reasons %v", l.Closed, l.Reasons)
	}
	if l.Received != 9500 || l.Lost != 42 || l.Retransmitted != 32 || l.Dropped != 10 || l.TSDecodeErrors != 3 {
		t.Errorf("counters %+v", l)
	}
	if l.Warnings != 1 || l.Errors != 1 || l.FirstProblem != "srt connection closed: publisher disconnected: no data for 10s" {
		t.Errorf("warnings %d errors %d first %q", l.Warnings, l.Errors, l.FirstProblem)
	}
	if l := ParseSRTServerLog(strings.NewReader(`{"level":"INFO","msg":"listening"}` + "\n")); l != nil {
		t.Errorf("a log without SRT connections: %+v, want nil", l)
	}
	if readSRTServerLog(t.TempDir()+"/missing.log") != nil {
		t.Error("a missing log: want nil")
	}
}

func TestAddSRTAndJudge(t *testing.T) {
	res := RunResult{Watched: true, SegExpected: 4, SegFound: 4}
	addSRT(&res, []PubResult{
		{Bytes: 1000, SRT: &SRTStats{Packets: 10, Sent: 10, Retransmitted: 1, Bytes: 1050, RTTms: 0.4}},
		{Bytes: 1000, SRT: &SRTStats{Packets: 12, Sent: 12, Dropped: 2, Unacked: 1, Bytes: 1050, RTTms: 1.5}},
	})
	q := res.SRT
	if q.Packets != 22 || q.Sent != 22 || q.Retransmitted != 1 || q.Dropped != 2 || q.Unacked != 1 || q.RTTmsMax != 1.5 || q.UDPDrops != -1 {
		t.Errorf("summed %+v", q)
	}
	if q.TSOverheadPct < 4.99 || q.TSOverheadPct > 5.01 {
		t.Errorf("TS overhead %v%%, want 5", q.TSOverheadPct)
	}
	// Packets the callers or the server counted as dropped are not lost
	// media in gosrt's terms; continuity errors in the MPEG-TS are.
	q.Server = &SRTServerLog{Closed: 2, Dropped: 7}
	judge(&res, RunConfig{CPUCores: 1})
	if !res.Clean {
		t.Errorf("drops without decode errors: not clean: %q", res.Why)
	}
	res.Why, q.Server.TSDecodeErrors = nil, 4
	judge(&res, RunConfig{CPUCores: 1})
	if why := strings.Join(res.Why, "; "); res.Clean || why != "4 MPEG-TS decode error(s) at the server: media lost on the way" {
		t.Errorf("clean %v why %q", res.Clean, why)
	}
	// Retransmissions alone are SRT working: clean.
	res = RunResult{Watched: true, SegExpected: 4, SegFound: 4, SRT: &SRTRun{Retransmitted: 50, Server: &SRTServerLog{Lost: 50}}}
	judge(&res, RunConfig{CPUCores: 1})
	if !res.Clean {
		t.Errorf("recovered loss: not clean: %q", res.Why)
	}
}
