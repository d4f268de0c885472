package s3_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/s3"
)

// backstop is the rule set the origin installs, converted as the wiring
// will convert it.
func backstop() []s3.LifecycleRule {
	var out []s3.LifecycleRule
	for _, r := range lifecycle.S3Rules(time.Duration(slots.MaxFileExpiry) * time.Second) {
		out = append(out, s3.LifecycleRule(r))
	}
	return out
}

func TestInstallLifecycle(t *testing.T) {
	st, srv, bucket := newStore(t)
	ctx := ctxFor(t)
	raw := srv.Client()

	// A bucket without any configuration.
	if err := st.InstallLifecycle(ctx, backstop()); err != nil {
		t.Fatalf("install on a bare bucket: %v", err)
	}

	// An operator's rule appears beside ours.
	foreign := types.LifecycleRule{
		ID:         aws.String("operator-archive"),
		Status:     types.ExpirationStatusEnabled,
		Filter:     &types.LifecycleRuleFilter{Prefix: aws.String("archive/")},
		Expiration: &types.LifecycleExpiration{Days: aws.Int32(30)},
	}
	cur, err := raw.GetBucketLifecycleConfiguration(ctx, &awss3.GetBucketLifecycleConfigurationInput{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	_, err = raw.PutBucketLifecycleConfiguration(ctx, &awss3.PutBucketLifecycleConfigurationInput{
		Bucket:                 &bucket,
		LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: append(cur.Rules, foreign)},
	})
	if err != nil {
		t.Fatal(err)
	}

	// Installing twice: no duplicate, the foreign rule kept.
	for range 2 {
		if err := st.InstallLifecycle(ctx, backstop()); err != nil {
			t.Fatal(err)
		}
	}
	got, err := raw.GetBucketLifecycleConfiguration(ctx, &awss3.GetBucketLifecycleConfigurationInput{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got.Rules {
		ids = append(ids, aws.ToString(r.ID))
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{lifecycle.BackstopRuleID, "operator-archive"}) {
		t.Fatalf("rules %q", ids)
	}
	for _, r := range got.Rules {
		switch aws.ToString(r.ID) {
		case "operator-archive":
			if r.Filter == nil || aws.ToString(r.Filter.Prefix) != "archive/" || aws.ToInt32(r.Expiration.Days) != 30 {
				t.Errorf("foreign rule changed: %+v", r)
			}
		case lifecycle.BackstopRuleID:
			f := r.Filter
			if r.Status != types.ExpirationStatusEnabled || f == nil || f.And == nil ||
				aws.ToString(f.And.Prefix) != "live/" || len(f.And.Tags) != 1 ||
				aws.ToString(f.And.Tags[0].Key) != "class" || aws.ToString(f.And.Tags[0].Value) != "segment" {
				t.Errorf("backstop rule: %+v filter %+v", r, f)
			}
			if r.Expiration == nil || aws.ToInt32(r.Expiration.Days) != 8 {
				t.Errorf("backstop expiration %+v, want 8 days", r.Expiration)
			}
		}
	}

	// The typed read-back shows our rule only.
	owned, err := st.LifecycleRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(owned) != 1 || owned[0].ID != lifecycle.BackstopRuleID || owned[0].Prefix != "live/" ||
		owned[0].Tags["class"] != "segment" || owned[0].Days != 8 {
		t.Fatalf("owned rules %+v", owned)
	}

	// Removing our rules keeps the foreign one; then nothing is left to remove.
	if err := st.InstallLifecycle(ctx, nil); err != nil {
		t.Fatal(err)
	}
	got, err = raw.GetBucketLifecycleConfiguration(ctx, &awss3.GetBucketLifecycleConfigurationInput{Bucket: &bucket})
	if err != nil || len(got.Rules) != 1 || aws.ToString(got.Rules[0].ID) != "operator-archive" {
		t.Fatalf("after removal: %+v, %v", got, err)
	}
}

func TestInstallLifecycleOnlyOwnedRulesDeletesConfiguration(t *testing.T) {
	st, _, _ := newStore(t)
	ctx := ctxFor(t)
	if err := st.InstallLifecycle(ctx, backstop()); err != nil {
		t.Fatal(err)
	}
	if err := st.InstallLifecycle(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if owned, err := st.LifecycleRules(ctx); err != nil || len(owned) != 0 {
		t.Fatalf("rules left: %+v, %v", owned, err)
	}
}

func TestInstallLifecycleRejectsBadRules(t *testing.T) {
	st, _, _ := newStore(t)
	for _, r := range [][]s3.LifecycleRule{
		{{ID: "operator-rule", Prefix: "live/", Days: 1}},
		{{ID: "liveingest-x", Prefix: "live/", Days: 0}},
		{{ID: "liveingest-x", Days: 1}, {ID: "liveingest-x", Days: 2}},
	} {
		if err := st.InstallLifecycle(ctxFor(t), r); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
}

// TestBackstopNeverMatchesExemptObjects checks the tags the backend puts on
// media: only segments carry class=segment, the backstop's filter.
func TestBackstopNeverMatchesExemptObjects(t *testing.T) {
	st, srv, bucket := newStore(t)
	ctx := ctxFor(t)
	for name, want := range map[string]string{
		"index.m3u8": "manifest", "manifest.mpd": "manifest", "init.mp4": "init",
		"video.init": "init", "seg1.m4s": "segment", "seg2.ts": "segment",
	} {
		key := keys.Media("cam", keys.Primary, keys.RelPath(name))
		if _, err := st.Put(ctx, key, strings.NewReader("x"), store.Meta{Class: lifecycle.ClassOf(name)}); err != nil {
			t.Fatal(err)
		}
		out, err := srv.Client().GetObjectTagging(ctx, &awss3.GetObjectTaggingInput{Bucket: &bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		var class string
		for _, tag := range out.TagSet {
			if aws.ToString(tag.Key) == "class" {
				class = aws.ToString(tag.Value)
			}
		}
		if class != want {
			t.Errorf("%s tagged class=%q, want %q", name, class, want)
		}
		matches := class == backstop()[0].Tags["class"] && strings.HasPrefix(key, backstop()[0].Prefix)
		if matches != (want == "segment") {
			t.Errorf("%s: backstop matches = %v", name, matches)
		}
	}
}
