package push

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
)

// TestRclone drives the server with a real WebDAV client: MKCOL (mkdir),
// PUT (copy), PROPFIND (lsjson) and DELETE (delete, rmdir), each checked in
// the store.
func TestRclone(t *testing.T) {
	rc, err := exec.LookPath("rclone")
	if err != nil {
		t.Skip("rclone not installed: the WebDAV client test needs it")
	}
	e := newEnv(t, teststoresDisk(t))
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		obscured, err := exec.CommandContext(ctx, rc, "obscure", testPass).Output()
		if err != nil {
			t.Fatal(err)
		}
		base := []string{"--config", filepath.Join(t.TempDir(), "none.conf"),
			"--webdav-url", e.url(e.id, ""), "--webdav-user", testUser, "--webdav-pass", strings.TrimSpace(string(obscured)),
			"--no-check-certificate", "--retries", "1", "--low-level-retries", "1"}
		cmd := exec.CommandContext(ctx, rc, append(args, base...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("rclone %v: %v\n%s%s", args, err, out, stderr.String())
		}
		return string(out)
	}
	root := keys.RolePrefix(e.id, keys.Primary)

	run("mkdir", ":webdav:720p")
	if r := e.do(t, "PROPFIND", e.url(e.id, "720p/"), nil, testUser, testPass, "Depth", "0"); r.status != 207 {
		t.Fatalf("collection made by rclone mkdir not found: %d", r.status)
	}
	src := filepath.Join(t.TempDir(), "seg1.ts")
	if err := os.WriteFile(src, []byte(strings.Repeat("media", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	run("copy", src, ":webdav:720p")
	if i, ok := e.stat(t, root+"720p/seg1.ts"); !ok || i.Size != 5000 {
		t.Fatalf("rclone copy: stored %+v ok=%v", i, ok)
	}
	var list []struct {
		Path  string
		Size  int64
		IsDir bool
	}
	if err := json.Unmarshal([]byte(run("lsjson", "-R", ":webdav:")), &list); err != nil {
		t.Fatal(err)
	}
	var sawDir, sawFile bool
	for _, l := range list {
		sawDir = sawDir || (l.Path == "720p" && l.IsDir)
		sawFile = sawFile || (l.Path == "720p/seg1.ts" && l.Size == 5000)
	}
	if !sawDir || !sawFile {
		t.Fatalf("rclone lsjson = %+v", list)
	}
	run("delete", ":webdav:720p/seg1.ts")
	if _, ok := e.stat(t, root+"720p/seg1.ts"); ok {
		t.Fatal("rclone delete left the object")
	}
	run("copy", src, ":webdav:720p")
	run("purge", ":webdav:720p")
	if objs := e.objects(t, keys.MediaPrefix(e.id)); len(objs) != 0 {
		t.Fatalf("rclone purge left %v", objs)
	}
}
