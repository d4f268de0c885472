package s3

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/liveingest/liveingest/origin/secret"
)

// Limits S3 puts on multipart uploads.
const (
	minPartSize     = 5 << 20
	maxPartSize     = 5 << 30
	maxParts        = 10000
	maxSinglePut    = 5 << 30
	defaultPartSize = 8 << 20
	defaultAttempts = 5
	defaultRegion   = "us-east-1"
)

// Config configures the S3 backend. The zero value of every field but Bucket
// is usable.
type Config struct {
	// Endpoint is the base URL of an S3-compatible service, such as
	// "http://127.0.0.1:9000" for MinIO. Empty means AWS S3 in Region.
	// Default: "".
	Endpoint string

	// Region is the bucket's region. Empty means the region of the standard
	// AWS configuration (AWS_REGION, the shared config file), else us-east-1.
	// Default: "".
	Region string

	// Bucket holds every object. It must exist: New checks it and does not
	// create it. Default: none, it is required.
	Bucket string

	// PathStyle addresses objects as <endpoint>/<bucket>/<key> instead of
	// <bucket>.<endpoint>/<key>; MinIO and most self-hosted services need
	// it. Default: false.
	PathStyle bool

	// AccessKey is the access key id of static credentials; with SecretKey
	// empty too, credentials come from the standard AWS chain (environment,
	// shared files, SSO, container and instance roles). Default: "".
	AccessKey string

	// SecretKey is the secret of static credentials; as a secret.String it
	// prints, logs and marshals as "[redacted]". Default: "".
	SecretKey secret.String

	// PartSize is the part size of multipart uploads, which is also the most
	// of a body a Put holds in memory; 5 MiB to 5 GiB. Default: 8 MiB.
	PartSize int64

	// MaxAttempts is how often a request is tried in all on throttling,
	// server errors and network errors, with exponential backoff (the AWS
	// SDK's standard retryer); 1 turns retries off. Default: 5.
	MaxAttempts int
}

// Validate checks the configuration; each error names its field.
func (c Config) Validate() error {
	var errs []error
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("s3.endpoint: %w", err))
		case u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, fmt.Errorf("s3.endpoint: %q: scheme must be http or https", c.Endpoint))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("s3.endpoint: %q: no host", c.Endpoint))
		case u.User != nil:
			errs = append(errs, errors.New("s3.endpoint: must not hold credentials; use s3.access_key and s3.secret_key"))
		}
	}
	if c.Bucket == "" {
		errs = append(errs, errors.New("s3.bucket: required"))
	} else if err := checkBucketName(c.Bucket); err != nil {
		errs = append(errs, fmt.Errorf("s3.bucket: %q: %w", c.Bucket, err))
	}
	if (c.AccessKey == "") != c.SecretKey.IsZero() {
		errs = append(errs, errors.New("s3.access_key, s3.secret_key: set both or neither"))
	}
	if c.PartSize != 0 && (c.PartSize < minPartSize || c.PartSize > maxPartSize) {
		errs = append(errs, fmt.Errorf("s3.part_size: %d: must be between %d (5 MiB) and %d (5 GiB)", c.PartSize, minPartSize, int64(maxPartSize)))
	}
	if c.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("s3.max_attempts: %d: must not be negative", c.MaxAttempts))
	}
	return errors.Join(errs...)
}

// checkBucketName applies the S3 bucket naming rules that every
// S3-compatible service shares.
func checkBucketName(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return errors.New("must be 3-63 characters")
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && c != '-' && c != '.' {
			return errors.New("may hold only a-z, 0-9, '-' and '.'")
		}
		if !alnum && (i == 0 || i == len(b)-1) {
			return errors.New("must start and end with a letter or digit")
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.PartSize == 0 {
		c.PartSize = defaultPartSize
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = defaultAttempts
	}
	return c
}

// LogValue logs the configuration without the secret.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("region", c.Region),
		slog.String("bucket", c.Bucket),
		slog.Bool("path_style", c.PathStyle),
		slog.String("access_key", c.AccessKey),
		slog.Any("secret_key", c.SecretKey),
		slog.Int64("part_size", c.PartSize),
		slog.Int("max_attempts", c.MaxAttempts),
	)
}
