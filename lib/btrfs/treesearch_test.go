package btrfs

import (
	"encoding/binary"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/uuid"
)

// searchRecord builds one btrfs_ioctl_search_header + item as the kernel
// packs it into a tree search buffer.
func searchRecord(objectid, offset uint64, typ uint32, data []byte) []byte {
	h := make([]byte, searchHeaderSize)
	binary.NativeEndian.PutUint64(h[0:], 42)
	binary.NativeEndian.PutUint64(h[8:], objectid)
	binary.NativeEndian.PutUint64(h[16:], offset)
	binary.NativeEndian.PutUint32(h[24:], typ)
	binary.NativeEndian.PutUint32(h[28:], uint32(len(data)))
	return append(h, data...)
}

// rootItemBytes is a btrfs_root_item with every field parseRootItem reads
// set to a distinct value.
func rootItemBytes(size int, gen, genV2 uint64) []byte {
	b := make([]byte, size)
	le := binary.LittleEndian
	le.PutUint64(b[rootItemGeneration:], gen)
	le.PutUint64(b[rootItemFlags:], rootSubvolRdonly)
	if size < rootItemSize {
		return b
	}
	le.PutUint64(b[rootItemGenerationV2:], genV2)
	for i := 0; i < 16; i++ {
		b[rootItemUUID+i] = 0x10 + byte(i)
		b[rootItemParentUUID+i] = 0x20 + byte(i)
		b[rootItemReceivedUUID+i] = 0x30 + byte(i)
	}
	le.PutUint64(b[rootItemCTransID:], 101)
	le.PutUint64(b[rootItemOTransID:], 102)
	le.PutUint64(b[rootItemSTransID:], 103)
	le.PutUint64(b[rootItemRTransID:], 104)
	for i, off := range []int{rootItemCTime, rootItemOTime, rootItemSTime, rootItemRTime} {
		le.PutUint64(b[off:], 1700000000+uint64(i))
		le.PutUint32(b[off+8:], 500+uint32(i))
	}
	return b
}

func backrefBytes(dirid uint64, name string) []byte {
	b := make([]byte, 18+len(name))
	binary.LittleEndian.PutUint64(b, dirid)
	binary.LittleEndian.PutUint64(b[8:], 7)
	binary.LittleEndian.PutUint16(b[16:], uint16(len(name)))
	copy(b[18:], name)
	return b
}

func TestParseRootItem(t *testing.T) {
	seq := func(base byte) (u uuid.UUID) {
		for i := range u {
			u[i] = base + byte(i)
		}
		return u
	}
	full := Subvol{
		Generation: 9, Flags: rootSubvolRdonly, ReadOnly: true,
		UUID: seq(0x10), ParentUUID: seq(0x20), ReceivedUUID: seq(0x30),
		CTransID: 101, OTransID: 102, STransID: 103, RTransID: 104,
		CTime: time.Unix(1700000000, 500), OTime: time.Unix(1700000001, 501),
		STime: time.Unix(1700000002, 502), RTime: time.Unix(1700000003, 503),
	}
	legacy := Subvol{Generation: 9, Flags: rootSubvolRdonly, ReadOnly: true}
	tests := []struct {
		name    string
		data    []byte
		want    Subvol
		wantErr string
	}{
		{"current", rootItemBytes(rootItemSize, 9, 9), full, ""},
		{"longer than known", append(rootItemBytes(rootItemSize, 9, 9), 0, 0, 0), full, ""},
		{"written by an old kernel: stale generation_v2", rootItemBytes(rootItemSize, 9, 3), legacy, ""},
		{"legacy size", rootItemBytes(rootItemLegacySize, 9, 0), legacy, ""},
		{"truncated", rootItemBytes(rootItemLegacySize-1, 9, 0), Subvol{}, "root item of 238 bytes"},
		{"empty", nil, Subvol{}, "root item of 0 bytes"},
	}
	for _, tt := range tests {
		var got Subvol
		err := parseRootItem(tt.data, &got)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: got %+v, %v\nwant %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestParseRootBackref(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		want    rootBackref
		wantErr string
	}{
		{"plain", backrefBytes(258, "snap-1"), rootBackref{258, "snap-1"}, ""},
		{"max name", backrefBytes(256, strings.Repeat("n", 255)), rootBackref{256, strings.Repeat("n", 255)}, ""},
		{"name past the end", backrefBytes(256, "abc")[:20], rootBackref{}, "name length 3"},
		{"empty name", backrefBytes(256, ""), rootBackref{}, "name length 0"},
		{"short", make([]byte, 17), rootBackref{}, "17 bytes"},
	}
	for _, tt := range tests {
		got, err := parseRootBackref(tt.data)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: got %+v, %v, want %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestParseSearchBuf(t *testing.T) {
	var buf []byte
	buf = append(buf, searchRecord(256, 0, rootItemKey, rootItemBytes(rootItemSize, 5, 5))...)
	buf = append(buf, searchRecord(256, 5, rootBackrefKey, backrefBytes(256, "vol"))...)
	buf = append(buf, searchRecord(257, 0, rootItemKey, nil)...)
	tests := []struct {
		name    string
		buf     []byte
		n       uint32
		keys    string
		wantErr string
	}{
		{"three items", buf, 3, "256/132/0:439 256/144/5:21 257/132/0:0", ""},
		{"fewer than in the buffer", buf, 2, "256/132/0:439 256/144/5:21", ""},
		{"none", buf, 0, "", ""},
		{"count past the end", buf, 4, "256/132/0:439 256/144/5:21 257/132/0:0", "item 3 header past the buffer end"},
		{"item length past the end", buf[:searchHeaderSize+100], 1, "", "item 0 length 439 past the buffer end"},
	}
	for _, tt := range tests {
		var keys []string
		_, err := parseSearchBuf(tt.buf, tt.n, func(it searchItem) error {
			keys = append(keys, strings.Join([]string{u64(it.ObjectID) + "/" + u64(uint64(it.Type)) + "/" + u64(it.Offset), u64(uint64(len(it.Data)))}, ":"))
			return nil
		})
		if got := strings.Join(keys, " "); got != tt.keys {
			t.Errorf("%s: keys %q, want %q", tt.name, got, tt.keys)
		}
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

func TestNextKey(t *testing.T) {
	max := searchKey{MaxObjectID: 1000, MaxType: 144, MaxOffset: ^uint64(0)}
	tests := []struct {
		name     string
		last     searchItem
		ok       bool
		obj, off uint64
		typ      uint32
	}{
		{"next offset", searchItem{ObjectID: 300, Type: 132, Offset: 7}, true, 300, 8, 132},
		{"offset wraps to next type", searchItem{ObjectID: 300, Type: 132, Offset: ^uint64(0)}, true, 300, 0, 133},
		{"type wraps to next objectid", searchItem{ObjectID: 300, Type: 255, Offset: ^uint64(0)}, true, 301, 0, 0},
		{"past the max objectid", searchItem{ObjectID: 1000, Type: 144, Offset: ^uint64(0)}, false, 0, 0, 0},
		{"past the max type", searchItem{ObjectID: 1000, Type: 200, Offset: 0}, false, 0, 0, 0},
		{"end of key space", searchItem{ObjectID: ^uint64(0), Type: 255, Offset: ^uint64(0)}, false, 0, 0, 0},
	}
	for _, tt := range tests {
		k := max
		k.MaxObjectID = max.MaxObjectID
		if tt.last.ObjectID == ^uint64(0) {
			k.MaxObjectID = ^uint64(0)
		}
		ok := nextKey(&k, tt.last)
		if ok != tt.ok || ok && (k.MinObjectID != tt.obj || k.MinOffset != tt.off || k.MinType != tt.typ) {
			t.Errorf("%s: ok=%v key %d/%d/%d, want %v %d/%d/%d", tt.name, ok, k.MinObjectID, k.MinType, k.MinOffset, tt.ok, tt.obj, tt.typ, tt.off)
		}
	}
}

// The buffer parser must never read outside what it is given, whatever
// the headers claim.
func FuzzParseSearchBuf(f *testing.F) {
	f.Add(searchRecord(256, 0, rootItemKey, rootItemBytes(rootItemSize, 5, 5)), uint32(1))
	f.Add(searchRecord(256, 5, rootBackrefKey, backrefBytes(256, "vol")), uint32(2))
	f.Fuzz(func(t *testing.T, buf []byte, n uint32) {
		_, _ = parseSearchBuf(buf, n%64, func(it searchItem) error {
			var s Subvol
			switch it.Type {
			case rootItemKey:
				_ = parseRootItem(it.Data, &s)
			case rootBackrefKey:
				_, _ = parseRootBackref(it.Data)
			}
			return nil
		})
	})
}
