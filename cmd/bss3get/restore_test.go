package bss3get

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/filestore"
)

// TestDecideRestore: what bss3get does, before writing anything, for
// the objects' states as HeadObject gives them (MinIO cannot archive
// objects, so this table is where the decision is tested).
func TestDecideRestore(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	std := objstore.Object{Key: "a", StorageClass: "STANDARD"}
	glacier := objstore.Object{Key: "g", StorageClass: "GLACIER"}
	deep := objstore.Object{Key: "d", StorageClass: "DEEP_ARCHIVE"}
	restoring := objstore.Object{Key: "r", StorageClass: "GLACIER", Restore: `ongoing-request="true"`}
	restored := objstore.Object{Key: "x", StorageClass: "DEEP_ARCHIVE", Restore: `ongoing-request="false", expiry-date="Fri, 06 Mar 2026 00:00:00 GMT"`}
	tests := []struct {
		name    string
		objs    []objstore.Object
		tier    string
		request []int
		code    int    // 0: go on
		text    string // in the error
		hinted  string
	}{
		{name: "all readable", objs: []objstore.Object{std, restored, {Key: "ir", StorageClass: "GLACIER_IR"}}},
		{name: "readable with tier", objs: []objstore.Object{std}, tier: "Bulk"},
		{name: "archived without flags", objs: []objstore.Object{std, glacier, deep}, code: cli.ExitFailure,
			text: "g: object is archived and not restored: storage class GLACIER (and 1 more)", hinted: "--restore-tier"},
		{name: "archived, bulk", objs: []objstore.Object{std, glacier}, tier: "Bulk", request: []int{1}, code: cli.ExitTempFail,
			text: "restore requested of 1 archived object(s) (tier Bulk, readable for 7 days); nothing written; run again in about 12 hours (after 2026-03-02 00:00 UTC)"},
		{name: "deep archive, bulk waits longest", objs: []objstore.Object{glacier, deep}, tier: "Bulk", request: []int{0, 1}, code: cli.ExitTempFail,
			text: "run again in about 48 hours"},
		{name: "expedited", objs: []objstore.Object{glacier}, tier: "Expedited", request: []int{0}, code: cli.ExitTempFail,
			text: "run again in about 5 minutes"},
		{name: "restoring only, no flags", objs: []objstore.Object{std, restoring}, code: cli.ExitTempFail,
			text: "1 archived object(s) being restored; nothing written; run again in about 5 hours"},
		{name: "restoring and archived", objs: []objstore.Object{restoring, deep}, tier: "Standard", request: []int{1}, code: cli.ExitTempFail,
			text: "restore requested of 1 archived object(s) (tier Standard, readable for 7 days), 1 more being restored"},
	}
	for _, tc := range tests {
		d := decideRestore(tc.objs, tc.tier, 7, now)
		if !reflect.DeepEqual(d.request, tc.request) {
			t.Errorf("%s: requests %v, want %v", tc.name, d.request, tc.request)
		}
		if tc.code == 0 {
			if d.err != nil {
				t.Errorf("%s: %v", tc.name, d.err)
			}
			continue
		}
		if d.err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		code := cli.ExitFailure
		var ee *cli.ExitError
		if errors.As(d.err, &ee) {
			code = ee.Code
		}
		if code != tc.code || !strings.Contains(d.err.Error(), tc.text) || strings.Contains(d.err.Error(), "\n") {
			t.Errorf("%s: status %d %q, want %d with %q", tc.name, code, d.err, tc.code, tc.text)
		}
		if !strings.Contains(hint.Of(d.err), tc.hinted) {
			t.Errorf("%s: hint %q", tc.name, hint.Of(d.err))
		}
	}
}

// archivedStore is a file store whose every object reads as sitting in
// GLACIER (no S3 server archives objects in a test), recording the
// restores asked of it.
type archivedStore struct {
	objstore.Store
	requested []string
}

func (s *archivedStore) Stat(ctx context.Context, key string) (objstore.Object, error) {
	o, err := s.Store.Stat(ctx, key)
	o.StorageClass = "GLACIER"
	return o, err
}

func (s *archivedStore) Restore(_ context.Context, key, _ string, _ int) error {
	s.requested = append(s.requested, key)
	return nil
}

// TestCheckArchivedPieces: a stream stored as several objects has the
// restore of every piece requested, not only of the first.
func TestCheckArchivedPieces(t *testing.T) {
	ctx := context.Background()
	loc, _ := location.Parse("file://" + t.TempDir() + "/s/")
	fs, err := filestore.Open(ctx, loc, objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const head = "h/5a5a5a5a-5a5a-5a5a-5a5a-5a5a5a5a5a5a.full.ct7.bs1"
	want := []string{head, head + ".p2", head + ".p3"}
	for i, key := range want {
		b := []byte{byte(i), byte(i)}
		m := objstore.Meta{Piece: i + 1, PieceCRC32C: fmt.Sprintf("%08x", crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))}
		if i == len(want)-1 {
			m.StreamSHA256, m.StreamSize, m.Pieces, m.SetSize = strings.Repeat("a", 64), 6, len(want), int64(2*len(want))
		}
		p, err := fs.Create(ctx, key, objstore.Meta{}, objstore.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Write(b)
		if _, err := p.Close(m); err != nil {
			t.Fatal(err)
		}
	}
	st := &archivedStore{Store: fs}
	g := &getter{env: &cli.Env{Name: "bss3get", Log: slog.New(slog.DiscardHandler)}, opts: GetOptions{RestoreTier: "Bulk", RestoreDays: 1}}
	err = g.checkArchived(ctx, []source{{store: st, key: head}})
	var ee *cli.ExitError
	if !errors.As(err, &ee) || ee.Code != cli.ExitTempFail {
		t.Fatalf("checkArchived: %v, want exit %d", err, cli.ExitTempFail)
	}
	if !reflect.DeepEqual(st.requested, want) {
		t.Errorf("restores requested of %q, want %q", st.requested, want)
	}
}
