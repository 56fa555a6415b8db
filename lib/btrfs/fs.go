package btrfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/uuid"
)

// FSInfo describes a mounted btrfs filesystem (FS_INFO).
type FSInfo struct {
	FSID         uuid.UUID
	MetadataUUID uuid.UUID // zero unless the kernel reports it
	NumDevices   uint64
	MaxID        uint64
	NodeSize     uint32
	SectorSize   uint32
	Generation   uint64 // zero unless the kernel reports it
}

// GetFSInfo describes the btrfs filesystem holding path.
func GetFSInfo(path string) (FSInfo, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return FSInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	defer unix.Close(fd)
	a := new(fsInfoArgs)
	a.Flags = fsInfoFlagGen | fsInfoFlagMetaUUID // input: the fields wanted
	if err := ioctl(fd, iocFSInfo, unsafe.Pointer(a)); err != nil {
		if errors.Is(err, unix.ENOTTY) {
			return FSInfo{}, fmt.Errorf("%s: %w", path, ErrNotBtrfs)
		}
		return FSInfo{}, fmt.Errorf("%s: filesystem info: %w", path, err)
	}
	fi := FSInfo{
		FSID:       uuid.UUID(a.FSID),
		NumDevices: a.NumDevices,
		MaxID:      a.MaxID,
		NodeSize:   a.NodeSize,
		SectorSize: a.SectorSize,
	}
	// On output flags say which optional fields the kernel filled.
	if a.Flags&fsInfoFlagGen != 0 {
		fi.Generation = a.Generation
	}
	if a.Flags&fsInfoFlagMetaUUID != 0 {
		fi.MetadataUUID = uuid.UUID(a.MetadataUUID)
	}
	return fi, nil
}

// Qgroup holds the sizes of one subvolume's level-0 qgroup, in bytes.
type Qgroup struct{ Referenced, Exclusive uint64 }

// sysfsRoot is where the kernel publishes btrfs state.
var sysfsRoot = "/sys/fs/btrfs"

// Qgroups returns the qgroup sizes of every subvolume (by subvolume id) of
// the filesystem holding path, read from /sys/fs/btrfs/FSID/qgroups. It
// reports false, and no error, when quotas are off or their numbers are
// marked inconsistent (a rescan is due). It only reads: it never
// enables quotas nor starts a rescan (both can stall a big filesystem for
// hours).
func Qgroups(path string) (map[uint64]Qgroup, bool, error) {
	fi, err := GetFSInfo(path)
	if err != nil {
		return nil, false, err
	}
	dir := filepath.Join(sysfsRoot, fi.FSID.Canonical(), "qgroups")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("qgroups: %w", err)
	}
	// While inconsistent (quotas just enabled, a rescan pending or
	// running) the numbers are wrong: report them as unknown.
	if v, err := readSysfsUint(filepath.Join(dir, "inconsistent")); err == nil && v != 0 {
		return nil, false, nil
	}
	out := map[uint64]Qgroup{}
	for _, e := range ents {
		level, id, ok := strings.Cut(e.Name(), "_")
		if !ok || level != "0" {
			continue
		}
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			continue
		}
		var q Qgroup
		if q.Referenced, err = readSysfsUint(filepath.Join(dir, e.Name(), "referenced")); err == nil {
			q.Exclusive, err = readSysfsUint(filepath.Join(dir, e.Name(), "exclusive"))
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue // the qgroup went away while we read
		}
		if err != nil {
			return nil, false, fmt.Errorf("qgroups: %w", err)
		}
		out[n] = q
	}
	return out, true, nil
}

func readSysfsUint(p string) (uint64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p, err)
	}
	return v, nil
}

// SendProtoMax is the highest send stream version the kernel offers, from
// /sys/fs/btrfs/features/send_stream_version; 1 when the file is absent.
func SendProtoMax() uint32 {
	v, err := readSysfsUint(filepath.Join(sysfsRoot, "features", "send_stream_version"))
	if err != nil || v == 0 || v > 1<<16 {
		return 1
	}
	return uint32(v)
}
