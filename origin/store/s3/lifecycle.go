package s3

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// LifecycleRuleIDPrefix marks the bucket lifecycle rules this package owns.
// InstallLifecycle replaces owned rules and never touches others, so an
// operator's own rules on the bucket survive every start.
const LifecycleRuleIDPrefix = "liveingest-"

// LifecycleRule is one expiration rule: objects under Prefix carrying every
// tag in Tags expire Days days after creation. Its fields match
// lifecycle.S3Rule, so callers convert with s3.LifecycleRule(r).
type LifecycleRule struct {
	ID     string // must start with LifecycleRuleIDPrefix
	Prefix string
	Tags   map[string]string
	Days   int32
}

func (r LifecycleRule) validate() error {
	switch {
	case !strings.HasPrefix(r.ID, LifecycleRuleIDPrefix) || len(r.ID) > 255:
		return fmt.Errorf("s3: lifecycle rule ID %q must start with %q (at most 255 bytes)", r.ID, LifecycleRuleIDPrefix)
	case r.Days < 1:
		return fmt.Errorf("s3: lifecycle rule %s: Days must be at least 1, got %d", r.ID, r.Days)
	}
	return nil
}

// sdk converts to the SDK's rule. S3 wants a filter with exactly one
// element, so prefix and tags together go in an And.
func (r LifecycleRule) sdk() types.LifecycleRule {
	var filter types.LifecycleRuleFilter
	tags := make([]types.Tag, 0, len(r.Tags))
	for _, k := range slices.Sorted(maps.Keys(r.Tags)) {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(r.Tags[k])})
	}
	switch {
	case len(tags) == 0:
		filter.Prefix = aws.String(r.Prefix)
	case len(tags) == 1 && r.Prefix == "":
		filter.Tag = &tags[0]
	default:
		filter.And = &types.LifecycleRuleAndOperator{Prefix: aws.String(r.Prefix), Tags: tags}
	}
	return types.LifecycleRule{
		ID:         aws.String(r.ID),
		Status:     types.ExpirationStatusEnabled,
		Filter:     &filter,
		Expiration: &types.LifecycleExpiration{Days: aws.Int32(r.Days)},
	}
}

// InstallLifecycle makes rules the bucket's owned lifecycle rules: it reads
// the configuration, drops every rule whose ID starts with
// LifecycleRuleIDPrefix, keeps all others as they are, adds rules, and
// writes the result. A bucket without a configuration is not an error.
// Installing the same rules again leaves the same configuration
// (idempotent); an empty rules removes the owned rules.
//
// Concurrent installs from several processes may interleave read and
// write (S3 has no conditional lifecycle writes); as all install the same
// rules at start-up, the last write is as good as any.
func (s *Store) InstallLifecycle(ctx context.Context, rules []LifecycleRule) error {
	seen := map[string]bool{}
	for _, r := range rules {
		if err := r.validate(); err != nil {
			return err
		}
		if seen[r.ID] {
			return fmt.Errorf("s3: lifecycle rule ID %q given twice", r.ID)
		}
		seen[r.ID] = true
	}
	existing, err := s.lifecycleRules(ctx)
	if err != nil {
		return err
	}
	var merged []types.LifecycleRule
	for _, r := range existing {
		if !strings.HasPrefix(aws.ToString(r.ID), LifecycleRuleIDPrefix) {
			merged = append(merged, r)
		}
	}
	for _, r := range rules {
		merged = append(merged, r.sdk())
	}
	if len(merged) == 0 {
		if len(existing) == 0 {
			return nil
		}
		// S3 refuses a configuration without rules; deleting it is the same.
		_, err := s.client.DeleteBucketLifecycle(ctx, &awss3.DeleteBucketLifecycleInput{Bucket: &s.bucket})
		if err != nil {
			return fmt.Errorf("s3: delete lifecycle of bucket %q: %w", s.bucket, mapErr(err))
		}
		return nil
	}
	_, err = s.client.PutBucketLifecycleConfiguration(ctx, &awss3.PutBucketLifecycleConfigurationInput{
		Bucket:                 &s.bucket,
		LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: merged},
	})
	if err != nil {
		return fmt.Errorf("s3: put lifecycle of bucket %q: %w", s.bucket, mapErr(err))
	}
	return nil
}

// lifecycleRules returns the bucket's current rules; none when it has no
// lifecycle configuration.
func (s *Store) lifecycleRules(ctx context.Context) ([]types.LifecycleRule, error) {
	out, err := s.client.GetBucketLifecycleConfiguration(ctx, &awss3.GetBucketLifecycleConfigurationInput{Bucket: &s.bucket})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchLifecycleConfiguration" {
			return nil, nil
		}
		return nil, fmt.Errorf("s3: get lifecycle of bucket %q: %w", s.bucket, mapErr(err))
	}
	return out.Rules, nil
}

// LifecycleRules returns the bucket's owned rules as installed, for checks
// and the ops report; foreign rules and rules this package could not have
// written (other actions, other filters) are left out.
func (s *Store) LifecycleRules(ctx context.Context) ([]LifecycleRule, error) {
	all, err := s.lifecycleRules(ctx)
	if err != nil {
		return nil, err
	}
	var out []LifecycleRule
	for _, r := range all {
		id := aws.ToString(r.ID)
		if !strings.HasPrefix(id, LifecycleRuleIDPrefix) || r.Expiration == nil || r.Filter == nil {
			continue
		}
		lr := LifecycleRule{ID: id, Days: aws.ToInt32(r.Expiration.Days)}
		f := r.Filter
		var tags []types.Tag
		switch {
		case f.And != nil:
			lr.Prefix = aws.ToString(f.And.Prefix)
			tags = f.And.Tags
		case f.Tag != nil:
			tags = []types.Tag{*f.Tag}
		default:
			lr.Prefix = aws.ToString(f.Prefix)
		}
		if len(tags) > 0 {
			lr.Tags = map[string]string{}
			for _, t := range tags {
				lr.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
		}
		out = append(out, lr)
	}
	return out, nil
}
