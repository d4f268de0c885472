package srt

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// panicLogInterval is how often a recovered panic of one kind is logged
// after the first: a flood of crafted datagrams must not become a flood of
// log lines (each with a stack).
const panicLogInterval = time.Minute

// maxPanicText bounds the panic value's text in the log: a value may be
// built from what a client sent.
const maxPanicText = 256

// errInternal is why a connection ended after one of its goroutines
// panicked.
var errInternal = errors.New("internal error")

// panicLog decides which recovered panics of one kind are logged: the
// first, then at most one per interval, each saying how many were not
// logged since the one before. Safe for concurrent use.
type panicLog struct {
	every time.Duration

	mu        sync.Mutex
	last      time.Time // zero until the first was logged
	notLogged int
}

// allow reports whether a panic at now is logged and, if so, how many
// were not logged since the last one that was.
func (p *panicLog) allow(now time.Time) (bool, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.last.IsZero() && now.Sub(p.last) < p.every {
		p.notLogged++
		return false, 0
	}
	n := p.notLogged
	p.last, p.notLogged = now, 0
	return true, n
}

// logPanic logs the recovered value v with the stack of the goroutine
// that panicked, if pl allows it. It must be called from the deferred
// function that recovered, so that the stack is still the panic's.
func logPanic(pl *panicLog, log *slog.Logger, msg string, v any) {
	ok, n := pl.allow(time.Now())
	if !ok {
		return
	}
	log.Error(msg, "panic", capText(fmt.Sprint(v), maxPanicText), "not_logged_since_last", n,
		"stack", panicStack(debug.Stack()))
}

// panicStack is the part of a goroutine's stack (debug.Stack, taken in
// the recovering deferred function) from the frame that panicked down:
// the recovery's own frames and the runtime's panic frames come first and
// say nothing, and a log handler may cut a long attribute.
func panicStack(stack []byte) string {
	// The frames above the panic site end with "panic(…)\n\t<file:line>\n".
	if i := bytes.LastIndex(stack, []byte("\npanic(")); i >= 0 {
		rest := stack[i+1:]
		// Skip the panic( line and its file line.
		for range 2 {
			if j := bytes.IndexByte(rest, '\n'); j >= 0 {
				rest = rest[j+1:]
			}
		}
		if len(rest) > 0 {
			return string(rest)
		}
	}
	return string(stack)
}

// safely runs f and reports whether it panicked, swallowing the panic:
// for the teardown steps after a recovered panic, which call into the same
// library that may have panicked (the first panic is the one logged).
func safely(f func()) (panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	f()
	return false
}
