package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/liveingest/liveingest/origin/store"
)

// apiErr builds the error chain the SDK returns for an HTTP error response.
func apiErr(status int, code string) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code},
		},
	}}
}

func TestMapErr(t *testing.T) {
	for _, c := range []struct {
		err  error
		want error // nil: no store sentinel
	}{
		{apiErr(404, "NoSuchKey"), store.ErrNotExist},
		{apiErr(404, "NotFound"), store.ErrNotExist},
		{apiErr(404, ""), store.ErrNotExist},
		{apiErr(404, "NoSuchBucket"), nil},
		{apiErr(404, "NoSuchUpload"), nil},
		{apiErr(412, "PreconditionFailed"), store.ErrPrecondition},
		{apiErr(409, "ConditionalRequestConflict"), store.ErrPrecondition},
		{apiErr(409, "BucketNotEmpty"), nil},
		{apiErr(416, "InvalidRange"), store.ErrRange},
		{apiErr(500, "InternalError"), store.ErrUnavailable},
		{apiErr(503, "SlowDown"), store.ErrUnavailable},
		{apiErr(429, ""), store.ErrUnavailable},
		{apiErr(400, "RequestTimeout"), store.ErrUnavailable},
		{apiErr(403, "AccessDenied"), nil},
		{apiErr(400, "InvalidArgument"), nil},
		{&smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: errors.New("dial tcp: connection refused")}}, store.ErrUnavailable},
		{&smithy.OperationError{Err: &net.OpError{Op: "read", Err: errors.New("connection reset")}}, store.ErrUnavailable},
		{&smithy.OperationError{Err: ratelimit.QuotaExceededError{}}, store.ErrUnavailable},
		{&smithy.OperationError{Err: errors.New("failed to sign request")}, nil},
	} {
		got := mapErr(c.err)
		if !errors.Is(got, c.err) {
			t.Errorf("mapErr(%v) = %v: lost the SDK error", c.err, got)
		}
		for _, s := range []error{store.ErrNotExist, store.ErrPrecondition, store.ErrRange, store.ErrUnavailable} {
			if errors.Is(got, s) != (s == c.want) {
				t.Errorf("mapErr(%v) = %v: errors.Is(%v) = %v", c.err, got, s, errors.Is(got, s))
			}
		}
	}
	for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
		err := &smithy.OperationError{Err: &smithy.CanceledError{Err: fmt.Errorf("wrapped: %w", ctxErr)}}
		if got := mapErr(err); errors.Is(got, store.ErrUnavailable) || !errors.Is(got, ctxErr) {
			t.Errorf("mapErr(%v) = %v, want the context error alone", err, got)
		}
	}
}
