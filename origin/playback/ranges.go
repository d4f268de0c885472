package playback

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/liveingest/liveingest/origin/store"
)

// byteRange is a resolved, satisfiable range: length > 0 bytes from start.
type byteRange struct{ start, length int64 }

func (b byteRange) contentRange(size int64) string {
	return "bytes " + strconv.FormatInt(b.start, 10) + "-" + strconv.FormatInt(b.start+b.length-1, 10) +
		"/" + strconv.FormatInt(size, 10)
}

// parseRange resolves a Range header (RFC 9110 §14.1.2) against an object
// of size bytes. Only one range is served:
//
//   - "bytes=a-b", "bytes=a-", "bytes=-n" → ranged (206), b capped at the end;
//   - a syntactically valid range that starts at or past the end, or
//     "-0" → not satisfiable (416);
//   - several ranges, another unit or bad syntax → ranged false: the whole
//     object with 200, which RFC 9110 allows (a server MAY ignore Range).
//     Players never send multi-range requests, and multipart/byteranges
//     bodies are a poor fit for a CDN.
func parseRange(h string, size int64) (r byteRange, ranged, satisfiable bool) {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return byteRange{}, false, true
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return byteRange{}, false, true
	}
	if first == "" {
		n, err := parseDigits(last)
		if err != nil {
			return byteRange{}, false, true
		}
		if n == 0 || size == 0 {
			return byteRange{}, true, false
		}
		n = min(n, size)
		return byteRange{start: size - n, length: n}, true, true
	}
	start, err := parseDigits(first)
	if err != nil {
		return byteRange{}, false, true
	}
	end := size - 1
	if last != "" {
		e, err := parseDigits(last)
		if err != nil || e < start {
			return byteRange{}, false, true
		}
		end = min(e, size-1)
	}
	if start >= size {
		return byteRange{}, true, false
	}
	return byteRange{start: start, length: end - start + 1}, true, true
}

// parseDigits accepts only ASCII digits (ParseInt would take a sign).
func parseDigits(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, 10, 64)
}

// conditional reports whether the request has a validator to check.
func conditional(r *http.Request) bool {
	return r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != ""
}

// notModified applies If-None-Match, and If-Modified-Since only without it
// (RFC 9110 §13.2.2), to a GET or HEAD.
func notModified(r *http.Request, info store.Info) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		return etagListMatches(inm, info.ETag)
	}
	ims := r.Header.Get("If-Modified-Since")
	if ims == "" || info.Modified.IsZero() {
		return false
	}
	t, err := http.ParseTime(ims)
	if err != nil {
		return false
	}
	return !info.Modified.Truncate(time.Second).After(t)
}

// etagListMatches is the weak comparison of If-None-Match.
func etagListMatches(list, etag string) bool {
	if etag == "" {
		return false
	}
	want := strings.TrimPrefix(etag, "W/")
	for tag := range strings.SplitSeq(list, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == want {
			return true
		}
	}
	return false
}

// ifRangeHolds reports whether a Range may be honoured under If-Range
// (RFC 9110 §13.1.5): absent, a strong ETag equal to the object's, or a
// date equal to its Last-Modified. Otherwise the whole object is sent.
func ifRangeHolds(r *http.Request, info store.Info) bool {
	ir := r.Header.Get("If-Range")
	if ir == "" {
		return true
	}
	if strings.HasPrefix(ir, `"`) {
		return ir == info.ETag
	}
	t, err := http.ParseTime(ir)
	return err == nil && info.Modified.Truncate(time.Second).Equal(t)
}
