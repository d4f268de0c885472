package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/coord/memory"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
)

// failingSlots answers every call with err; Get answers getErr.
type failingSlots struct {
	Slots  // nil: methods not overridden are not called
	err    error
	getErr error
}

func (f failingSlots) List(context.Context, slots.ListOptions) ([]*slots.Slot, error) {
	return nil, f.err
}
func (f failingSlots) Get(context.Context, keys.SlotID) (*slots.Slot, error) { return nil, f.getErr }
func (f failingSlots) Delete(context.Context, keys.SlotID, int64) error      { return f.err }
func (f failingSlots) Deployment() slots.Deployment                          { return slots.DevDeployment("", "") }

// TestStoreFailures: store trouble is 503 with Retry-After when retriable,
// else 500 with a generic message (detail in the log only); a delete whose
// media cleanup failed after the slot was removed is still 204.
func TestStoreFailures(t *testing.T) {
	cleanup := fmt.Errorf("delete media of slot x: %w: %w", slots.ErrMediaCleanup, errors.New("disk on fire"))
	for _, c := range []struct {
		name, method string
		fake         failingSlots
		status       int
	}{
		{"unavailable", "GET", failingSlots{err: fmt.Errorf("list: %w", store.ErrUnavailable)}, http.StatusServiceUnavailable},
		{"internal", "GET", failingSlots{err: errors.New("disk on fire")}, http.StatusInternalServerError},
		{"media cleanup", "DELETE", failingSlots{err: cleanup}, http.StatusNoContent},
		{"delete failed", "DELETE", failingSlots{err: errors.New("disk on fire")}, http.StatusInternalServerError},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs testenv.Buffer
			co := memory.New(nil)
			lim, err := co.NewLimiter(DefaultAuthFailRate)
			if err != nil {
				t.Fatal(err)
			}
			a, err := New(Config{AdminToken: testToken}, Deps{Slots: c.fake, Registry: co, AuthLimiter: lim, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			path := "/api/v1/slots"
			if c.method == "DELETE" {
				path += "/x"
			}
			req := httptest.NewRequestWithContext(t.Context(), c.method, path, nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			rec := httptest.NewRecorder()
			a.Handler().ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.status, rec.Body)
			}
			if strings.Contains(rec.Body.String(), "fire") {
				t.Fatalf("detail sent to the client: %s", rec.Body)
			}
			if c.status == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
				t.Fatalf("503 without Retry-After")
			}
			if c.status >= 500 && !strings.Contains(logs.String(), "fire") && c.status != http.StatusServiceUnavailable {
				t.Fatalf("detail not logged: %s", logs.String())
			}
		})
	}
}
