package push

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/liveingest/liveingest/origin/keys"
)

// target is what a request path names: a slot and a path below its root.
type target struct {
	id  keys.SlotID
	rel keys.RelPath // "" is the slot root (a collection)
	dir bool         // the path ended with '/': the client means a collection
}

// parseTarget splits /push/<slot id>/<rel> and validates both parts.
//
// net/http decodes r.URL.Path once, which turns "a%2Fb" into "a/b": a
// separator the client did not send as one. So the path is taken from the
// escaped form and decoded segment by segment; a decoded segment holding
// '/', '\\', '%' (double encoding) or NUL is refused before
// keys.ParseRelPath (which refuses "..", '.'-prefixed names, absolute and
// empty segments, and every byte outside its small alphabet) sees the rest.
// Finally the result must agree with r.URL.Path, so that no later code that
// reads r.URL.Path could see a different path than the one validated.
func parseTarget(r *http.Request) (target, *rejection) {
	return parseEscapedPath(r.URL.EscapedPath(), r.URL.Path)
}

func parseEscapedPath(esc, decoded string) (target, *rejection) {
	bad := func(format string, args ...any) (target, *rejection) {
		return target{}, reject(http.StatusBadRequest, ErrBadPath, format, args...)
	}
	rest, ok := strings.CutPrefix(esc, PathPrefix)
	if !ok {
		return bad("path must start with %s<slot id>/", PathPrefix)
	}
	idPart, relEsc, _ := strings.Cut(rest, "/")
	id, err := keys.ParseSlotID(idPart)
	if err != nil {
		return bad("invalid slot id in path")
	}
	var t target
	t.id = id
	if relEsc != "" {
		if t.dir = strings.HasSuffix(relEsc, "/"); t.dir {
			relEsc = relEsc[:len(relEsc)-1]
		}
		segs := strings.Split(relEsc, "/")
		for i, s := range segs {
			d, err := url.PathUnescape(s)
			if err != nil {
				return bad("malformed percent-encoding in path")
			}
			if strings.ContainsAny(d, "/\\%\x00") {
				return bad("encoded '/', '\\\\', '%%' or NUL in path")
			}
			segs[i] = d
		}
		rel, err := keys.ParseRelPath(strings.Join(segs, "/"))
		if err != nil {
			return bad("%v", err)
		}
		t.rel = rel
	}
	if want := t.urlPath(); decoded != want && decoded+"/" != want && decoded != strings.TrimSuffix(want, "/") {
		return bad("path is not in canonical form")
	}
	return t, nil
}

// urlPath is the canonical decoded path of t ("/push/<id>/<rel>[/]").
func (t target) urlPath() string {
	p := PathPrefix + string(t.id) + "/" + string(t.rel)
	if t.dir && t.rel != "" {
		p += "/"
	}
	return p
}

// key is the object key of t in the store.
func (t target) key(role keys.Role) string { return keys.Media(t.id, role, t.rel) }

// prefix is the listing prefix of t seen as a collection (ends with '/').
func (t target) prefix(role keys.Role) string {
	if t.rel == "" {
		return keys.RolePrefix(t.id, role)
	}
	return keys.Media(t.id, role, t.rel) + "/"
}

// href is the escaped URL path of a resource below the slot root, as
// PROPFIND returns it (RFC 4918 §8.3: hrefs are URI references).
func href(id keys.SlotID, rel string, collection bool) string {
	p := PathPrefix + string(id) + "/" + rel
	if collection && rel != "" {
		p += "/"
	}
	return (&url.URL{Path: p}).EscapedPath()
}
