package btrfs

import (
	"testing"
	"unsafe"
)

// The ioctl numbers encode the argument sizes; these pin the Go structs to
// the kernel's layout field by field.
func TestStructLayout(t *testing.T) {
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof btrfs_ioctl_search_key", unsafe.Sizeof(searchKey{}), searchKeySize},
		{"search_key.nr_items", unsafe.Offsetof(searchKey{}.NrItems), 64},
		{"search_key.min_type", unsafe.Offsetof(searchKey{}.MinType), 56},
		{"search_key.max_transid", unsafe.Offsetof(searchKey{}.MaxTransID), 48},
		{"sizeof btrfs_ioctl_search_args", unsafe.Sizeof(searchArgs{}), 4096},
		{"sizeof btrfs_ioctl_search_args_v2 head", unsafe.Sizeof(searchArgsV2Header{}), 0x70},
		{"sizeof btrfs_ioctl_ino_lookup_args", unsafe.Sizeof(inoLookupArgs{}), 4096},
		{"sizeof btrfs_ioctl_ino_lookup_user_args", unsafe.Sizeof(inoLookupUserArgs{}), 4096},
		{"ino_lookup_user.path", unsafe.Offsetof(inoLookupUserArgs{}.Path), 16 + 256},
		{"sizeof btrfs_ioctl_get_subvol_rootref_args", unsafe.Sizeof(getSubvolRootrefArgs{}), 4096},
		{"rootref.num_items", unsafe.Offsetof(getSubvolRootrefArgs{}.NumItems), 8 + 255*16},
		{"sizeof btrfs_ioctl_get_subvol_info_args", unsafe.Sizeof(getSubvolInfoArgs{}), 504},
		{"subvol_info.name", unsafe.Offsetof(getSubvolInfoArgs{}.Name), 8},
		{"subvol_info.parent_id", unsafe.Offsetof(getSubvolInfoArgs{}.ParentID), 264},
		{"subvol_info.dirid", unsafe.Offsetof(getSubvolInfoArgs{}.DirID), 272},
		{"subvol_info.generation", unsafe.Offsetof(getSubvolInfoArgs{}.Generation), 280},
		{"subvol_info.flags", unsafe.Offsetof(getSubvolInfoArgs{}.Flags), 288},
		{"subvol_info.uuid", unsafe.Offsetof(getSubvolInfoArgs{}.UUID), 296},
		{"subvol_info.parent_uuid", unsafe.Offsetof(getSubvolInfoArgs{}.ParentUUID), 312},
		{"subvol_info.received_uuid", unsafe.Offsetof(getSubvolInfoArgs{}.ReceivedUUID), 328},
		{"subvol_info.ctransid", unsafe.Offsetof(getSubvolInfoArgs{}.CTransID), 344},
		{"subvol_info.rtransid", unsafe.Offsetof(getSubvolInfoArgs{}.RTransID), 368},
		{"subvol_info.ctime", unsafe.Offsetof(getSubvolInfoArgs{}.CTime), 376},
		{"subvol_info.otime", unsafe.Offsetof(getSubvolInfoArgs{}.OTime), 392},
		{"subvol_info.stime", unsafe.Offsetof(getSubvolInfoArgs{}.STime), 408},
		{"subvol_info.rtime", unsafe.Offsetof(getSubvolInfoArgs{}.RTime), 424},
		{"sizeof btrfs_ioctl_vol_args", unsafe.Sizeof(volArgs{}), 4096},
		{"sizeof btrfs_ioctl_vol_args_v2", unsafe.Sizeof(volArgsV2{}), 4096},
		{"vol_args_v2.flags", unsafe.Offsetof(volArgsV2{}.Flags), 16},
		{"vol_args_v2.name", unsafe.Offsetof(volArgsV2{}.Name), 56},
		{"sizeof btrfs_ioctl_received_subvol_args", unsafe.Sizeof(receivedSubvolArgs{}), 200},
		{"received_subvol.stransid", unsafe.Offsetof(receivedSubvolArgs{}.STransID), 16},
		{"received_subvol.rtransid", unsafe.Offsetof(receivedSubvolArgs{}.RTransID), 24},
		{"received_subvol.stime", unsafe.Offsetof(receivedSubvolArgs{}.STime), 32},
		{"received_subvol.rtime", unsafe.Offsetof(receivedSubvolArgs{}.RTime), 48},
		{"received_subvol.flags", unsafe.Offsetof(receivedSubvolArgs{}.Flags), 64},
		{"sizeof btrfs_ioctl_encoded_io_args", unsafe.Sizeof(encodedIOArgs{}), 128},
		{"encoded_io.offset", unsafe.Offsetof(encodedIOArgs{}.Offset), 16},
		{"encoded_io.len", unsafe.Offsetof(encodedIOArgs{}.Len), 32},
		{"encoded_io.unencoded_offset", unsafe.Offsetof(encodedIOArgs{}.UnencodedOffset), 48},
		{"encoded_io.compression", unsafe.Offsetof(encodedIOArgs{}.Compression), 56},
		{"encoded_io.encryption", unsafe.Offsetof(encodedIOArgs{}.Encryption), 60},
		{"sizeof btrfs_ioctl_send_args", unsafe.Sizeof(sendArgs{}), 72},
		{"send.clone_sources", unsafe.Offsetof(sendArgs{}.CloneSources), 16},
		{"send.parent_root", unsafe.Offsetof(sendArgs{}.ParentRoot), 24},
		{"send.flags", unsafe.Offsetof(sendArgs{}.Flags), 32},
		{"send.version", unsafe.Offsetof(sendArgs{}.Version), 40},
		{"sizeof btrfs_ioctl_fs_info_args", unsafe.Sizeof(fsInfoArgs{}), 1024},
		{"fs_info.fsid", unsafe.Offsetof(fsInfoArgs{}.FSID), 16},
		{"fs_info.nodesize", unsafe.Offsetof(fsInfoArgs{}.NodeSize), 32},
		{"fs_info.flags", unsafe.Offsetof(fsInfoArgs{}.Flags), 48},
		{"fs_info.generation", unsafe.Offsetof(fsInfoArgs{}.Generation), 56},
		{"fs_info.metadata_uuid", unsafe.Offsetof(fsInfoArgs{}.MetadataUUID), 64},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

// The size field of each ioctl number (bits 16..29) must equal the Go
// struct size, or the kernel copies the wrong amount.
func TestIoctlSizes(t *testing.T) {
	tests := []struct {
		name string
		req  uintptr
		size uintptr
	}{
		{"TREE_SEARCH", iocTreeSearch, unsafe.Sizeof(searchArgs{})},
		{"TREE_SEARCH_V2", iocTreeSearchV2, unsafe.Sizeof(searchArgsV2Header{})},
		{"INO_LOOKUP", iocInoLookup, unsafe.Sizeof(inoLookupArgs{})},
		{"INO_LOOKUP_USER", iocInoLookupUser, unsafe.Sizeof(inoLookupUserArgs{})},
		{"GET_SUBVOL_ROOTREF", iocGetSubvolRootref, unsafe.Sizeof(getSubvolRootrefArgs{})},
		{"GET_SUBVOL_INFO", iocGetSubvolInfo, unsafe.Sizeof(getSubvolInfoArgs{})},
		{"SNAP_CREATE_V2", iocSnapCreateV2, unsafe.Sizeof(volArgsV2{})},
		{"SNAP_DESTROY", iocSnapDestroy, unsafe.Sizeof(volArgs{})},
		{"SNAP_DESTROY_V2", iocSnapDestroyV2, unsafe.Sizeof(volArgsV2{})},
		{"SUBVOL_GETFLAGS", iocSubvolGetFlags, 8},
		{"SUBVOL_SETFLAGS", iocSubvolSetFlags, 8},
		{"FS_INFO", iocFSInfo, unsafe.Sizeof(fsInfoArgs{})},
		{"SET_RECEIVED_SUBVOL", iocSetReceivedSubvol, unsafe.Sizeof(receivedSubvolArgs{})},
		{"SEND", iocSend, unsafe.Sizeof(sendArgs{})},
		{"SUBVOL_CREATE", iocSubvolCreate, unsafe.Sizeof(volArgs{})},
		{"ENCODED_WRITE", iocEncodedWrite, unsafe.Sizeof(encodedIOArgs{})},
	}
	for _, tt := range tests {
		if got := (tt.req >> 16) & 0x3fff; got != tt.size {
			t.Errorf("%s: ioctl size %d, struct size %d", tt.name, got, tt.size)
		}
		if typ := (tt.req >> 8) & 0xff; typ != 0x94 {
			t.Errorf("%s: ioctl type %#x, want 0x94", tt.name, typ)
		}
	}
}
