package test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/s3store"
	"github.com/buttersink/buttersink/lib/objstore/storetest"
	"github.com/buttersink/buttersink/test/harness"
)

// TestS3Store runs the store contract against MinIO, each behaviour under
// a prefix of its own.
func TestS3Store(t *testing.T) {
	m := harness.StartMinIO(t)
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	var n atomic.Int32
	storetest.Run(t, storetest.Config{
		Open: func(t *testing.T) objstore.Store {
			loc, err := location.Parse(fmt.Sprintf("s3://%s/contract/%d/", m.Bucket, n.Add(1)))
			if err != nil {
				t.Fatal(err)
			}
			st, err := s3store.Open(context.Background(), loc, objstore.Options{EndpointURL: m.Endpoint})
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		Resumable: true,
	})
}
