// Package extent decodes the compressed extents that a btrfs send with
// --compressed-data carries in ENCODED_WRITE commands, for a receiver
// that cannot hand them to the kernel as they are (the ioctl refused, or
// the destination is no btrfs).
//
// The input is hostile: Decode never writes past dst, never allocates in
// proportion to a length the input claims, and takes time linear in
// len(src)+len(dst).
package extent

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// MaxLen is the most a btrfs compressed extent decodes to; the kernel
// refuses an ENCODED_WRITE with a longer UNENCODED_LEN, so a caller can
// refuse it before allocating dst.
const MaxLen = 128 << 10

// Compression values of ENCODED_WRITE (BTRFS_ENCODED_IO_COMPRESSION_*).
const (
	Zlib   = 1
	Zstd   = 2
	LZO4K  = 3 // LZO with 4 KiB sectors; 4..7 double the sector each
	LZO64K = 7
)

// Decode fills dst, whose length is the extent's UNENCODED_LEN and which
// the caller zeroed, with the decoded src. Output shorter than dst leaves
// the rest zero; output longer than dst is an error.
func Decode(dst []byte, compression uint32, src []byte) error {
	if len(dst) > MaxLen {
		return fmt.Errorf("extent: unencoded length %d over %d", len(dst), MaxLen)
	}
	switch {
	case compression == Zlib:
		return inflate(dst, src)
	case compression == Zstd:
		return unzstd(dst, src)
	case compression >= LZO4K && compression <= LZO64K:
		return unlzo(dst, src, 4096<<(compression-LZO4K))
	}
	return fmt.Errorf("extent: unknown compression %d", compression)
}

var errLonger = errors.New("output longer than the unencoded length")

// zlibReaders keeps inflaters (each holds tens of KiB of tables) across
// extents.
var zlibReaders sync.Pool

func inflate(dst, src []byte) error {
	in := bytes.NewReader(src)
	var zr io.ReadCloser
	if r, ok := zlibReaders.Get().(io.ReadCloser); ok {
		if err := r.(zlib.Resetter).Reset(in, nil); err != nil {
			return fmt.Errorf("extent: zlib: %w", err)
		}
		zr = r
	} else {
		r, err := zlib.NewReader(in)
		if err != nil {
			return fmt.Errorf("extent: zlib: %w", err)
		}
		zr = r
	}
	defer zlibReaders.Put(zr)
	// A stream that ends before dst is full and a truncated one both
	// give ErrUnexpectedEOF here; the reader's errors are sticky, so the
	// read below tells them apart.
	if _, err := io.ReadFull(zr, dst); err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return fmt.Errorf("extent: zlib: %w", err)
	}
	// One more read ends the stream: it checks the Adler-32 trailer and
	// shows output beyond dst. btrfs's zero padding after the stream is
	// never read.
	var more [1]byte
	n, err := zr.Read(more[:])
	if n > 0 {
		return fmt.Errorf("extent: zlib: %w", errLonger)
	}
	if err != io.EOF {
		return fmt.Errorf("extent: zlib: %w", err)
	}
	return nil
}

// zstdDecoder is shared: with one block decoder and windows capped at
// btrfs's 128 KiB (windowLog 17), its memory stays small and fixed. The
// cap limit makes DecodeAll fail rather than grow dst.
var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(MaxLen),
		zstd.WithDecoderMaxMemory(MaxLen),
		zstd.WithDecodeAllCapLimit(true))
})

func unzstd(dst, src []byte) error {
	n, err := zstdFrameLen(src)
	if err != nil {
		return err
	}
	d, err := zstdDecoder()
	if err != nil {
		return fmt.Errorf("extent: zstd: %w", err)
	}
	out, err := d.DecodeAll(src[:n], dst[:0:len(dst)])
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return fmt.Errorf("extent: zstd: %w", errLonger)
	}
	if err != nil {
		return fmt.Errorf("extent: zstd: %w", err)
	}
	if len(out) > len(dst) || len(out) > 0 && &out[0] != &dst[0] {
		return fmt.Errorf("extent: zstd: %w", errLonger)
	}
	// The decoder uses dst's capacity past its output as scratch space.
	clear(dst[len(out):])
	return nil
}

const zstdMagic = 0xfd2fb528

// zstdFrameLen is the length of the one zstd frame src starts with (RFC
// 8878, 3.1.1), found from its header and block headers alone: btrfs pads
// the frame with zeros to a sector, which the decoder would take for a
// second frame with a bad magic number.
func zstdFrameLen(src []byte) (int, error) {
	if len(src) < 5 || binary.LittleEndian.Uint32(src) != zstdMagic {
		return 0, errors.New("extent: zstd: no frame")
	}
	desc := src[4]
	n := 5 + [4]int{0, 1, 2, 4}[desc&3] // dictionary id
	single := desc&0x20 != 0
	if !single {
		n++ // window descriptor
	}
	fcs := [4]int{0, 2, 4, 8}[desc>>6]
	if fcs == 0 && single {
		fcs = 1
	}
	n += fcs
	for {
		if len(src)-n < 3 {
			return 0, errors.New("extent: zstd: truncated frame")
		}
		h := int(src[n]) | int(src[n+1])<<8 | int(src[n+2])<<16
		n += 3
		size := h >> 3
		switch h >> 1 & 3 {
		case 1: // RLE: one byte, repeated size times
			size = 1
		case 3:
			return 0, errors.New("extent: zstd: reserved block type")
		}
		if len(src)-n < size {
			return 0, errors.New("extent: zstd: truncated frame")
		}
		n += size
		if h&1 != 0 {
			break
		}
	}
	if desc&4 != 0 {
		n += 4 // content checksum
	}
	if n > len(src) {
		return 0, errors.New("extent: zstd: truncated frame")
	}
	return n, nil
}
