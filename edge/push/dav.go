package push

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
)

// WebDAV class 1 (RFC 4918) on an object store, which has no directories: a
// collection is a key prefix that has objects under it, or an empty one that
// a client made with MKCOL on this edge. Empty collections are remembered in
// memory only (collections below): nothing is written to the store, so no
// marker object can ever show up in playback or expiry. They are forgotten
// on restart and not shared between edges; that costs nothing, because PUT
// creates missing parent collections implicitly (object-store semantics,
// more lenient than RFC 4918 §9.7.1's 409), so a client that made a
// directory on one edge can still upload into it through another.

const (
	// maxPropfindBody caps a PROPFIND request body. The body is read up to
	// the cap and not parsed: the server always answers with the standard
	// property set (RFC 4918 §9.1 allows answering allprop-like), so no XML
	// from the network is ever decoded.
	maxPropfindBody = 64 << 10
	// maxDirsPerSlot bounds the in-memory empty collections of one slot.
	maxDirsPerSlot = 1000
	// deleteBatch is how many keys one Store.Delete call gets.
	deleteBatch = 500
)

// mkcol makes an (empty) collection: RFC 4918 §9.3.
func (s *Server) mkcol(w http.ResponseWriter, r *http.Request, t target) *rejection {
	if r.ContentLength > 0 || r.ContentLength < 0 {
		// §9.3: a body the server does not understand → 415.
		return reject(http.StatusUnsupportedMediaType, ErrUnsupported, "MKCOL with a request body is not supported")
	}
	if t.rel == "" {
		return reject(http.StatusMethodNotAllowed, ErrMethod, "the slot root already exists")
	}
	ctx := r.Context()
	if _, err := s.st.Stat(ctx, t.key(s.cfg.Role)); err == nil {
		return reject(http.StatusMethodNotAllowed, ErrMethod, "%s exists as a file", t.rel)
	} else if !errors.Is(err, store.ErrNotExist) {
		return storeRejection(err)
	}
	exists, err := s.isCollection(r, t)
	if err != nil {
		return storeRejection(err)
	}
	if exists {
		// §9.3.1: MKCOL on an existing resource → 405.
		return reject(http.StatusMethodNotAllowed, ErrMethod, "collection %s already exists", t.rel)
	}
	if !s.dirs.add(t.id, s.cfg.Role, t.rel) {
		return reject(http.StatusInsufficientStorage, ErrTooLarge, "too many empty collections in this slot")
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// isCollection reports whether t names a collection: the root, an empty
// collection made with MKCOL, or a prefix with at least one object.
func (s *Server) isCollection(r *http.Request, t target) (bool, error) {
	if t.rel == "" || s.dirs.has(t.id, s.cfg.Role, t.rel) {
		return true, nil
	}
	found := false
	err := s.st.List(r.Context(), t.prefix(s.cfg.Role), func(store.Info) error {
		found = true
		return errStop
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return found, err
}

var errStop = errors.New("stop listing")

// delete removes an object, or a collection with everything below it
// (RFC 4918 §9.6: DELETE on a collection acts as Depth: infinity).
func (s *Server) delete(w http.ResponseWriter, r *http.Request, t target) *rejection {
	if t.rel == "" {
		return reject(http.StatusForbidden, ErrForbidden, "the slot root cannot be deleted; delete its members")
	}
	if d := r.Header.Get("Depth"); d != "" && !strings.EqualFold(d, "infinity") {
		return reject(http.StatusBadRequest, ErrForbidden, "DELETE allows only Depth: infinity (RFC 4918 §9.6.1)")
	}
	ctx := r.Context()
	key := t.key(s.cfg.Role)
	if !t.dir {
		if _, err := s.st.Stat(ctx, key); err == nil {
			if err := s.st.Delete(ctx, key); err != nil {
				return storeRejection(err)
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		} else if !errors.Is(err, store.ErrNotExist) {
			return storeRejection(err)
		}
	}
	hadDir := s.dirs.dropTree(t.id, s.cfg.Role, t.rel)
	var batch []string
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.st.Delete(ctx, batch...)
		batch = batch[:0]
		return err
	}
	err := s.st.List(ctx, t.prefix(s.cfg.Role), func(i store.Info) error {
		batch = append(batch, i.Key)
		n++
		if len(batch) >= deleteBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return storeRejection(err)
	}
	if n == 0 && !hadDir {
		return reject(http.StatusNotFound, ErrNotFound, "%s does not exist", t.rel)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// propfind answers RFC 4918 §9.1 with Depth 0 or 1. Depth: infinity
// (explicit, or implied by a missing header) is refused with 403 and the
// DAV:propfind-finite-depth precondition (§9.1, §16): a listing of a whole
// live slot is unbounded work for one request.
func (s *Server) propfind(w http.ResponseWriter, r *http.Request, t target) *rejection {
	depth := r.Header.Get("Depth")
	if depth != "0" && depth != "1" {
		rej := reject(http.StatusForbidden, ErrForbidden, "PROPFIND needs Depth: 0 or 1 (infinity is not supported)")
		rej.body = xml.Header + `<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>` + "\n"
		return rej
	}
	n, err := io.Copy(io.Discard, io.LimitReader(r.Body, maxPropfindBody+1))
	if err != nil {
		return reject(http.StatusBadRequest, ErrAborted, "cannot read the request body")
	}
	if n > maxPropfindBody {
		return reject(http.StatusRequestEntityTooLarge, ErrTooLarge, "PROPFIND body larger than %d bytes", maxPropfindBody)
	}
	ctx := r.Context()
	var out []entry
	if t.rel != "" && !t.dir {
		info, err := s.st.Stat(ctx, t.key(s.cfg.Role))
		switch {
		case err == nil:
			out = append(out, fileEntry(t.id, string(t.rel), info))
			return writeMultistatus(w, out)
		case !errors.Is(err, store.ErrNotExist):
			return storeRejection(err)
		}
	}
	// A collection: gather its direct members from one listing.
	prefix := t.prefix(s.cfg.Role)
	files := []entry{}
	subdirs := map[string]time.Time{}
	found := t.rel == ""
	var newest time.Time
	err = s.st.List(ctx, prefix, func(i store.Info) error {
		found = true
		if i.Modified.After(newest) {
			newest = i.Modified
		}
		rest := strings.TrimPrefix(i.Key, prefix)
		if name, _, ok := strings.Cut(rest, "/"); ok {
			if i.Modified.After(subdirs[name]) {
				subdirs[name] = i.Modified
			}
			return nil
		}
		if depth == "1" {
			files = append(files, fileEntry(t.id, joinRel(t.rel, rest), i))
		}
		return nil
	})
	if err != nil {
		return storeRejection(err)
	}
	for _, name := range s.dirs.children(t.id, s.cfg.Role, t.rel) {
		found = true
		if _, ok := subdirs[name]; !ok {
			subdirs[name] = time.Time{}
		}
	}
	if !found && !s.dirs.has(t.id, s.cfg.Role, t.rel) {
		return reject(http.StatusNotFound, ErrNotFound, "%s does not exist", t.rel)
	}
	out = append(out, dirEntry(t.id, string(t.rel), newest))
	if depth == "1" {
		names := make([]string, 0, len(subdirs))
		for n := range subdirs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			out = append(out, dirEntry(t.id, joinRel(t.rel, n), subdirs[n]))
		}
		out = append(out, files...)
	}
	return writeMultistatus(w, out)
}

func joinRel(dir keys.RelPath, name string) string {
	if dir == "" {
		return name
	}
	return string(dir) + "/" + name
}

// entry is one DAV:response of a multistatus.
type entry struct {
	href       string
	name       string
	collection bool
	size       int64
	modified   time.Time
	etag       string
	ctype      string
}

func fileEntry(id keys.SlotID, rel string, i store.Info) entry {
	ct := i.ContentType
	return entry{href: href(id, rel, false), name: lastSegment(rel), size: i.Size, modified: i.Modified, etag: i.ETag, ctype: ct}
}

func dirEntry(id keys.SlotID, rel string, modified time.Time) entry {
	if modified.IsZero() {
		modified = time.Now()
	}
	return entry{href: href(id, rel, true), name: lastSegment(rel), collection: true, modified: modified}
}

func lastSegment(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[i+1:]
	}
	return rel
}

// writeMultistatus writes the 207 (RFC 4918 §13) with, per resource, the
// live properties clients such as rclone and cadaver read (§15):
// resourcetype, getcontentlength, getlastmodified (RFC 1123 date, §15.7),
// getetag, getcontenttype and displayname.
func writeMultistatus(w http.ResponseWriter, es []entry) *rejection {
	var b strings.Builder
	b.WriteString(xml.Header)
	b.WriteString(`<D:multistatus xmlns:D="DAV:">` + "\n")
	for _, e := range es {
		b.WriteString("<D:response><D:href>")
		xmlText(&b, e.href)
		b.WriteString("</D:href><D:propstat><D:prop>")
		if e.name != "" {
			b.WriteString("<D:displayname>")
			xmlText(&b, e.name)
			b.WriteString("</D:displayname>")
		}
		if e.collection {
			b.WriteString("<D:resourcetype><D:collection/></D:resourcetype>")
		} else {
			b.WriteString("<D:resourcetype/><D:getcontentlength>")
			b.WriteString(itoa(e.size))
			b.WriteString("</D:getcontentlength>")
			if e.etag != "" {
				b.WriteString("<D:getetag>")
				xmlText(&b, e.etag)
				b.WriteString("</D:getetag>")
			}
			ct := e.ctype
			if ct == "" {
				ct = "application/octet-stream"
			}
			b.WriteString("<D:getcontenttype>")
			xmlText(&b, ct)
			b.WriteString("</D:getcontenttype>")
		}
		b.WriteString("<D:getlastmodified>")
		b.WriteString(e.modified.UTC().Format(http.TimeFormat))
		b.WriteString("</D:getlastmodified>")
		b.WriteString("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>\n")
	}
	b.WriteString("</D:multistatus>\n")
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(http.StatusMultiStatus)
	_, _ = io.WriteString(w, b.String())
	return nil
}

func xmlText(b *strings.Builder, s string) { _ = xml.EscapeText(b, []byte(s)) }

func itoa(n int64) string {
	var buf [20]byte
	i := len(buf)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return string(buf[i:])
}

// collections are the empty collections made with MKCOL on this edge, per
// slot role prefix. An entry is dropped once an object lands below it (the
// prefix then implies it) or it is deleted.
type collections struct {
	mu sync.Mutex
	m  map[string]map[keys.RelPath]struct{} // role prefix → rel paths
}

func newCollections() *collections { return &collections{m: map[string]map[keys.RelPath]struct{}{}} }

func (c *collections) add(id keys.SlotID, role keys.Role, rel keys.RelPath) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := keys.RolePrefix(id, role)
	set := c.m[p]
	if set == nil {
		set = map[keys.RelPath]struct{}{}
		c.m[p] = set
	}
	if len(set) >= maxDirsPerSlot {
		return false
	}
	set[rel] = struct{}{}
	return true
}

func (c *collections) has(id keys.SlotID, role keys.Role, rel keys.RelPath) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[keys.RolePrefix(id, role)][rel]
	return ok
}

// dropAncestors forgets the collections above rel: an object at rel makes
// them implied by its key.
func (c *collections) dropAncestors(id keys.SlotID, role keys.Role, rel keys.RelPath) {
	c.mu.Lock()
	defer c.mu.Unlock()
	set := c.m[keys.RolePrefix(id, role)]
	for d := range set {
		if strings.HasPrefix(string(rel), string(d)+"/") {
			delete(set, d)
		}
	}
}

// dropTree forgets rel and every collection below it; it reports whether
// any was there.
func (c *collections) dropTree(id keys.SlotID, role keys.Role, rel keys.RelPath) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	set := c.m[keys.RolePrefix(id, role)]
	found := false
	for d := range set {
		if d == rel || strings.HasPrefix(string(d), string(rel)+"/") {
			delete(set, d)
			found = true
		}
	}
	return found
}

// children are the names of the empty collections directly below rel.
func (c *collections) children(id keys.SlotID, role keys.Role, rel keys.RelPath) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	pre := ""
	if rel != "" {
		pre = string(rel) + "/"
	}
	for d := range c.m[keys.RolePrefix(id, role)] {
		if rest, ok := strings.CutPrefix(string(d), pre); ok && rest != "" {
			name, _, _ := strings.Cut(rest, "/")
			out = append(out, name)
		}
	}
	return out
}
