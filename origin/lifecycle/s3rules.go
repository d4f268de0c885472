package lifecycle

import (
	"time"

	"github.com/liveingest/liveingest/origin/store"
)

// S3Rule describes one S3 lifecycle rule. Its fields match
// s3.LifecycleRule exactly, so the wiring converts one into the other
// (s3.LifecycleRule(r)) without the s3 package depending on this one or
// this one on the AWS SDK.
type S3Rule struct {
	ID     string            // owned rules start with "liveingest-"
	Prefix string            // key prefix the rule applies to
	Tags   map[string]string // every tag must match (object tags)
	Days   int32             // expire objects this many days after creation
}

// BackstopRuleID is the ID of the segment backstop rule.
const BackstopRuleID = "liveingest-segment-backstop"

// S3BackstopDays is the expiration in days of the S3 backstop rule for
// segments: the sweeper deletes at second granularity, and S3 lifecycle
// rules count whole days (and run about once a day), so the rule must never
// fire before the longest file_expiry a slot may have. One extra day covers
// S3's rounding of creation times to the next midnight UTC.
// days = ceil(maxFileExpiry / 24h) + 1, at least 1.
func S3BackstopDays(maxFileExpiry time.Duration) int32 {
	if maxFileExpiry <= 0 {
		return 1
	}
	days := int64((maxFileExpiry + 24*time.Hour - 1) / (24 * time.Hour))
	return int32(days + 1)
}

// S3Rules are the lifecycle rules the origin installs on an S3 bucket: the
// backstop that deletes segments (object tag class=segment, set by the s3
// backend on every Put) under live/ that the sweeper missed, e.g. of a
// deleted slot. Manifests and init files carry class=manifest and
// class=init, so the tag filter never matches them: their removal needs the
// per-slot decision of Plan, which a lifecycle rule cannot make.
func S3Rules(maxFileExpiry time.Duration) []S3Rule {
	return []S3Rule{{
		ID:     BackstopRuleID,
		Prefix: "live/",
		Tags:   map[string]string{"class": string(store.ClassSegment)},
		Days:   S3BackstopDays(maxFileExpiry),
	}}
}
