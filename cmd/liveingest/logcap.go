package main

import (
	"context"
	"fmt"
	"log/slog"
	"unicode/utf8"
)

// maxAttrLen caps one log attribute's text. Client-supplied strings reach
// some lines (an error's text, a user agent): without a cap one 700 KB RTMP
// connect command became a 1.6 MB log line, so that an unauthenticated peer
// could make the log cost more than its own bytes.
const maxAttrLen = 1024

// maxStackLen caps a "stack" attribute instead: a recovered panic's stack
// is the server's own text (the packages cap it at 8 KiB), and cut at 1 KiB
// it would not reach the frame that panicked.
const maxStackLen = 16 << 10

// limitFor is the cap for the attribute with key k.
func limitFor(k string) int {
	if k == "stack" {
		return maxStackLen
	}
	return maxAttrLen
}

// capHandler truncates every string attribute (and anything that prints as
// one: errors, Stringers, values of any kind) to maxAttrLen bytes, marking
// the cut with the original length. It wraps the role's JSON or text
// handler.
type capHandler struct{ next slog.Handler }

func (h capHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h capHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, capString(r.Message, maxAttrLen), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(capAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h capHandler) WithAttrs(as []slog.Attr) slog.Handler {
	capped := make([]slog.Attr, len(as))
	for i, a := range as {
		capped[i] = capAttr(a)
	}
	return capHandler{h.next.WithAttrs(capped)}
}

func (h capHandler) WithGroup(name string) slog.Handler { return capHandler{h.next.WithGroup(name)} }

func capAttr(a slog.Attr) slog.Attr {
	v, limit := a.Value.Resolve(), limitFor(a.Key)
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); len(s) > limit {
			return slog.String(a.Key, capString(s, limit))
		}
		return slog.Attr{Key: a.Key, Value: v}
	case slog.KindGroup:
		g := v.Group()
		capped := make([]slog.Attr, len(g))
		for i, ga := range g {
			capped[i] = capAttr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(capped...)}
	case slog.KindAny:
		// Errors and other values are printed by the handler; print them
		// here instead so that their text is capped too.
		var s string
		if err, ok := v.Any().(error); ok {
			s = err.Error()
		} else {
			s = fmt.Sprint(v.Any())
		}
		if len(s) > limit {
			return slog.String(a.Key, capString(s, limit))
		}
		return slog.Attr{Key: a.Key, Value: v}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// capString cuts s to limit bytes on a rune boundary and says how long it
// was.
func capString(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…[%d bytes]", s[:cut], len(s))
}
