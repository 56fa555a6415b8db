package bss3put

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/filestore"
	"github.com/buttersink/buttersink/lib/sendstream"
)

// racedStore stores another writer's object under a key between Create
// and Close, as a second bss3put of the same key would.
type racedStore struct {
	objstore.Store
	other []byte // the raw stream the other writer stores
}

type racedPutter struct {
	objstore.Putter
	s   *racedStore
	key string
}

func (s *racedStore) Create(ctx context.Context, key string, meta objstore.Meta, opts objstore.PutOptions) (objstore.Putter, error) {
	p, err := s.Store.Create(ctx, key, meta, opts)
	return &racedPutter{Putter: p, s: s, key: key}, err
}

func (p *racedPutter) Close(meta objstore.Meta) (objstore.Object, error) {
	other, err := p.s.Store.Create(context.Background(), p.key, objstore.Meta{}, objstore.PutOptions{})
	if err != nil {
		return objstore.Object{}, err
	}
	other.Write(p.s.other)
	sum := sha256.Sum256(p.s.other)
	m := objstore.Meta{StreamSize: int64(len(p.s.other)), StreamSHA256: hex.EncodeToString(sum[:])}
	if _, err := other.Close(m); err != nil {
		return objstore.Object{}, err
	}
	return p.Putter.Close(meta)
}

// rawStream is a small send stream of a snapshot "s", its data from seed.
func rawStream(seed byte) []byte {
	b := sendstream.AppendHeader(nil, 1)
	b = sendstream.AppendCommand(b, 1, sendstream.CmdSubvol, sendstream.Attr{Type: sendstream.AttrPath, Value: []byte("s")},
		sendstream.Attr{Type: sendstream.AttrUUID, Value: bytes.Repeat([]byte{7}, 16)}, sendstream.Attr{Type: sendstream.AttrCTransID, Value: make([]byte, 8)})
	b = sendstream.AppendCommand(b, 1, sendstream.CmdWrite, sendstream.Attr{Type: sendstream.AttrPath, Value: []byte("f")},
		sendstream.Attr{Type: sendstream.AttrData, Value: bytes.Repeat([]byte{seed}, 1000)})
	return sendstream.AppendCommand(b, 1, sendstream.CmdEnd)
}

// TestPutStoredMeanwhile: when another writer stores the key while this
// one uploads (the store refuses to replace it), this one fails: with
// the same stream, saying another writer stored it first; with a
// different one, saying so.
func TestPutStoredMeanwhile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		other []byte
		want  string
	}{{"same", rawStream(1), "another writer stored this object first"}, {"different", rawStream(2), "already stored with different content"}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			loc, err := location.Parse("file://" + t.TempDir() + "/")
			if err != nil {
				t.Fatal(err)
			}
			fs, err := filestore.Open(ctx, loc, objstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			st := &racedStore{Store: fs, other: tc.other}
			s, err := sendstream.NewReader(bytes.NewReader(rawStream(1))).Next()
			if err != nil {
				t.Fatal(err)
			}
			env := &cli.Env{Name: "bss3put", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			rec, skipped, err := putStream(ctx, env, st, s, PutOptions{Dst: loc}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("putStream = %+v, %v, %v; want %q", rec, skipped, err, tc.want)
			}
		})
	}
}
