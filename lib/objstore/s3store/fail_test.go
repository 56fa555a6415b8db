package s3store

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
)

// TestFailShapes: the SDK's error shapes for a lost race, a server
// without conditional writes, an archived object and a bucket without
// object lock become the store's errors, one line each.
func TestFailShapes(t *testing.T) {
	loc, err := location.Parse("s3://bucket/p/")
	if err != nil {
		t.Fatal(err)
	}
	s := &s3Store{loc: loc}
	status := func(code int) error {
		return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: errors.New("x")}}
	}
	api := func(code string) error { return &smithy.GenericAPIError{Code: code, Message: "m"} }
	tests := []struct {
		name   string
		err    error
		is     error
		text   string
		hinted string
	}{
		{"412 code", fmt.Errorf("complete upload: %w", api("PreconditionFailed")), objstore.ErrExists, "another writer stored this object first", ""},
		{"412 status", status(412), objstore.ErrStoredFirst, "another writer stored this object first", ""},
		{"not implemented", conditional(api("NotImplemented")), objstore.ErrNoConditional, "does not implement conditional writes", "If-None-Match"},
		{"other not implemented passes", conditional(api("InvalidRequest")), nil, "InvalidRequest", ""},
		{"archived GET", api("InvalidObjectState"), objstore.ErrArchived, "archived and not restored", "--restore-tier"},
		{"no object lock", api("ObjectLockConfigurationNotFoundError"), nil, `bucket "bucket" has no object lock configuration`, "object-lock-enabled-for-bucket"},
	}
	for _, tc := range tests {
		got := s.fail("k", tc.err)
		if tc.is != nil && !errors.Is(got, tc.is) {
			t.Errorf("%s: %v is not %v", tc.name, got, tc.is)
		}
		if !strings.Contains(got.Error(), tc.text) || strings.Contains(got.Error(), "\n") || !strings.HasPrefix(got.Error(), "s3://bucket/p/k: ") {
			t.Errorf("%s: got %q, want one line with %q", tc.name, got, tc.text)
		}
		if !strings.Contains(hint.Of(got), tc.hinted) {
			t.Errorf("%s: hint %q, want %q", tc.name, hint.Of(got), tc.hinted)
		}
	}
}
