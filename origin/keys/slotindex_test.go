package keys

import (
	"errors"
	"strings"
	"testing"
)

func TestSlotNameIndex(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"cam-1", "config/slot-names/cam-1.json", true},
		{"Cam-1", "config/slot-names/cam-1.json", true},
		{strings.Repeat("a", 63), "config/slot-names/" + strings.Repeat("a", 63) + ".json", true},
		{strings.Repeat("a", 64), "", false},
		{"", "", false},
		{"a b", "", false},
		{"a/b", "", false},
		{"..", "", false},
		{"café", "", false},
	}
	for _, c := range cases {
		got, err := SlotNameIndex(c.in)
		if c.ok {
			if err != nil || got != c.want {
				t.Errorf("SlotNameIndex(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
			if err := ValidateObjectKey(got); err != nil {
				t.Errorf("SlotNameIndex(%q) built an invalid key: %v", c.in, err)
			}
			if strings.HasPrefix(got, SlotConfigPrefix()) {
				t.Errorf("name index %q lies under the slot config prefix", got)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("SlotNameIndex(%q) = %q, %v; want ErrInvalid", c.in, got, err)
		}
	}
}

func TestSlotKeyIndex(t *testing.T) {
	h := strings.Repeat("0123456789abcdef", 4)
	got, err := SlotKeyIndex(h)
	if err != nil || got != "config/slot-keys/"+h+".json" {
		t.Fatalf("SlotKeyIndex = %q, %v", got, err)
	}
	if strings.HasPrefix(got, SlotConfigPrefix()) {
		t.Fatalf("key index %q lies under the slot config prefix", got)
	}
	for _, bad := range []string{"", h[:63], h + "0", strings.ToUpper(h), strings.Repeat("g", 64)} {
		if _, err := SlotKeyIndex(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SlotKeyIndex(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}
