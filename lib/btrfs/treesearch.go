package btrfs

import (
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"

	"github.com/buttersink/buttersink/lib/uuid"
)

// searchItem is one item returned by a tree search: its key and data.
// Data points into the search buffer and is valid only during the callback.
type searchItem struct {
	ObjectID uint64
	Offset   uint64
	Type     uint32
	TransID  uint64
	Data     []byte
}

// searchBufSize is the TREE_SEARCH_V2 result buffer: large enough that a
// listing of thousands of subvolumes takes a handful of ioctls, small enough
// to stay a bounded allocation.
const searchBufSize = 256 << 10

// parseSearchBuf walks the btrfs_ioctl_search_header + item records the
// kernel packed into buf (n of them) and calls fn for each. It rejects a
// buffer whose headers point past its end instead of trusting them.
func parseSearchBuf(buf []byte, n uint32, fn func(searchItem) error) (last searchItem, err error) {
	off := 0
	for i := uint32(0); i < n; i++ {
		if len(buf)-off < searchHeaderSize {
			return last, fmt.Errorf("tree search: item %d header past the buffer end", i)
		}
		h := buf[off : off+searchHeaderSize]
		// struct btrfs_ioctl_search_header: transid@0 objectid@8 offset@16 type@24 len@28 (native endian).
		it := searchItem{
			TransID:  binary.NativeEndian.Uint64(h[0:]),
			ObjectID: binary.NativeEndian.Uint64(h[8:]),
			Offset:   binary.NativeEndian.Uint64(h[16:]),
			Type:     binary.NativeEndian.Uint32(h[24:]),
		}
		l := int(binary.NativeEndian.Uint32(h[28:]))
		off += searchHeaderSize
		if l > len(buf)-off {
			return last, fmt.Errorf("tree search: item %d length %d past the buffer end", i, l)
		}
		it.Data = buf[off : off+l]
		off += l
		if err := fn(it); err != nil {
			return last, err
		}
		last = it
	}
	return last, nil
}

// nextKey advances the search key's minimum just past the item last seen,
// in compound (objectid, type, offset) order. It reports false when the key
// space is exhausted.
func nextKey(k *searchKey, last searchItem) bool {
	k.MinObjectID, k.MinType, k.MinOffset = last.ObjectID, last.Type, last.Offset
	switch {
	case k.MinOffset < ^uint64(0):
		k.MinOffset++
	case k.MinType < 255:
		k.MinOffset = 0
		k.MinType++
	case k.MinObjectID < ^uint64(0):
		k.MinOffset, k.MinType = 0, 0
		k.MinObjectID++
	default:
		return false
	}
	// The range is over the compound key; stop once past its maximum.
	if k.MinObjectID > k.MaxObjectID ||
		k.MinObjectID == k.MaxObjectID && (k.MinType > k.MaxType || k.MinType == k.MaxType && k.MinOffset > k.MaxOffset) {
		return false
	}
	return true
}

// treeSearch calls fn for every item in the key range of key (a privileged
// TREE_SEARCH_V2, falling back to v1 on kernels without it).
func treeSearch(fd int, key searchKey, fn func(searchItem) error) error {
	// Back the buffer with uint64s so the header is 8-byte aligned.
	words := make([]uint64, (int(unsafe.Sizeof(searchArgsV2Header{}))+searchBufSize)/8)
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
	hdr := (*searchArgsV2Header)(unsafe.Pointer(&words[0]))
	buf := raw[unsafe.Sizeof(searchArgsV2Header{}):]
	for {
		k := key
		k.NrItems = ^uint32(0)
		hdr.Key = k
		hdr.BufSize = uint64(len(buf))
		err := ioctl(fd, iocTreeSearchV2, unsafe.Pointer(hdr))
		if err != nil {
			if isNotSupported(err) {
				return treeSearchV1(fd, key, fn)
			}
			return err
		}
		n := hdr.Key.NrItems
		if n == 0 {
			return nil
		}
		last, err := parseSearchBuf(buf, n, fn)
		if err != nil {
			return err
		}
		if !nextKey(&key, last) {
			return nil
		}
	}
}

func treeSearchV1(fd int, key searchKey, fn func(searchItem) error) error {
	args := new(searchArgs)
	for {
		args.Key = key
		args.Key.NrItems = 4096
		if err := ioctl(fd, iocTreeSearch, unsafe.Pointer(args)); err != nil {
			return err
		}
		n := args.Key.NrItems
		if n == 0 {
			return nil
		}
		last, err := parseSearchBuf(args.Buf[:], n, fn)
		if err != nil {
			return err
		}
		if !nextKey(&key, last) {
			return nil
		}
	}
}

// Offsets in struct btrfs_root_item (packed, little endian, 439 bytes).
const (
	rootItemGeneration   = 160
	rootItemFlags        = 208
	rootItemRefs         = 216
	rootItemGenerationV2 = 239
	rootItemUUID         = 247
	rootItemParentUUID   = 263
	rootItemReceivedUUID = 279
	rootItemCTransID     = 295
	rootItemOTransID     = 303
	rootItemSTransID     = 311
	rootItemRTransID     = 319
	rootItemCTime        = 327 // struct btrfs_timespec: le64 sec, le32 nsec
	rootItemOTime        = 339
	rootItemSTime        = 351
	rootItemRTime        = 363
	rootItemSize         = 439
	// rootItemLegacySize is the item before generation_v2 and the UUID
	// fields were added (kernels before 3.6).
	rootItemLegacySize = rootItemGenerationV2
)

// parseRootItem fills the root item fields of s from a ROOT_ITEM's data.
// An item written by an old kernel (short, or generation_v2 stale) has no
// valid UUIDs, transids or times; they stay zero, as the kernel treats them.
func parseRootItem(b []byte, s *Subvol) error {
	if len(b) < rootItemLegacySize {
		return fmt.Errorf("root item of %d bytes, want at least %d", len(b), rootItemLegacySize)
	}
	le := binary.LittleEndian
	s.Generation = le.Uint64(b[rootItemGeneration:])
	s.Flags = le.Uint64(b[rootItemFlags:])
	s.ReadOnly = s.Flags&rootSubvolRdonly != 0
	if len(b) < rootItemSize || le.Uint64(b[rootItemGenerationV2:]) != s.Generation {
		return nil
	}
	copy(s.UUID[:], b[rootItemUUID:])
	copy(s.ParentUUID[:], b[rootItemParentUUID:])
	copy(s.ReceivedUUID[:], b[rootItemReceivedUUID:])
	s.CTransID = le.Uint64(b[rootItemCTransID:])
	s.OTransID = le.Uint64(b[rootItemOTransID:])
	s.STransID = le.Uint64(b[rootItemSTransID:])
	s.RTransID = le.Uint64(b[rootItemRTransID:])
	s.CTime = diskTime(b[rootItemCTime:])
	s.OTime = diskTime(b[rootItemOTime:])
	s.STime = diskTime(b[rootItemSTime:])
	s.RTime = diskTime(b[rootItemRTime:])
	return nil
}

// diskTime reads a struct btrfs_timespec (le64 sec, le32 nsec); zero is
// "unset" and gives the zero time.
func diskTime(b []byte) time.Time {
	sec := binary.LittleEndian.Uint64(b)
	nsec := binary.LittleEndian.Uint32(b[8:])
	return unixTime(sec, nsec)
}

func unixTime(sec uint64, nsec uint32) time.Time {
	if sec == 0 && nsec == 0 {
		return time.Time{}
	}
	return time.Unix(int64(sec), int64(nsec))
}

// rootBackref is a ROOT_BACKREF item (key: child, 144, parent tree).
type rootBackref struct {
	DirID uint64
	Name  string
}

// parseRootBackref reads struct btrfs_root_ref (packed, little endian):
// dirid@0 sequence@8 name_len@16, then the name.
func parseRootBackref(b []byte) (rootBackref, error) {
	if len(b) < 18 {
		return rootBackref{}, fmt.Errorf("root backref of %d bytes, want at least 18", len(b))
	}
	n := int(binary.LittleEndian.Uint16(b[16:]))
	if n > len(b)-18 || n == 0 || n > volNameMax {
		return rootBackref{}, fmt.Errorf("root backref name length %d in a %d-byte item", n, len(b))
	}
	return rootBackref{DirID: binary.LittleEndian.Uint64(b), Name: string(b[18 : 18+n])}, nil
}

func uuidOf(b [16]byte) uuid.UUID { return uuid.UUID(b) }
