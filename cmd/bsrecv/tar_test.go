package bsrecv

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/uuid"
)

type tcmd struct {
	typ   uint16
	attrs []sendstream.Attr
}

func str(typ uint16, s string) sendstream.Attr { return sendstream.Attr{Type: typ, Value: []byte(s)} }
func u64(typ uint16, v uint64) sendstream.Attr {
	return sendstream.Attr{Type: typ, Value: binary.LittleEndian.AppendUint64(nil, v)}
}
func id(typ uint16, u uuid.UUID) sendstream.Attr { return sendstream.Attr{Type: typ, Value: u[:]} }

var uA, uB = uuid.UUID{1: 1}, uuid.UUID{1: 2}

// tstream is a stream of cmds after its first command (SUBVOL, or
// SNAPSHOT of parent when parent is not zero), ending in END.
func tstream(name string, self, parent uuid.UUID, cmds ...tcmd) []byte {
	b := sendstream.AppendHeader(nil, 1)
	if parent.IsZero() {
		b = sendstream.AppendCommand(b, 1, sendstream.CmdSubvol, str(sendstream.AttrPath, name), id(sendstream.AttrUUID, self), u64(sendstream.AttrCTransID, 5))
	} else {
		b = sendstream.AppendCommand(b, 1, sendstream.CmdSnapshot, str(sendstream.AttrPath, name), id(sendstream.AttrUUID, self), u64(sendstream.AttrCTransID, 6),
			id(sendstream.AttrCloneUUID, parent), u64(sendstream.AttrCloneCTransID, 5))
	}
	for _, c := range cmds {
		b = sendstream.AppendCommand(b, 1, c.typ, c.attrs...)
	}
	return sendstream.AppendCommand(b, 1, sendstream.CmdEnd)
}

func p(s string) sendstream.Attr { return str(sendstream.AttrPath, s) }

// runTar runs bsrecv --tar on input and returns stdout.
func runTar(t *testing.T, input []byte, opts TarOptions) ([]byte, error) {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.WriteFile(in, input, 0o600); err != nil {
		t.Fatal(err)
	}
	stdin, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	opts.TmpDir = t.TempDir()
	env := &cli.Env{Name: "bsrecv", Stdin: stdin, Stdout: stdout, Stderr: os.Stderr, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	err = RunTar(context.Background(), env, opts)
	out, rerr := os.ReadFile(stdout.Name())
	if rerr != nil {
		t.Fatal(rerr)
	}
	if left, _ := os.ReadDir(opts.TmpDir); len(left) != 0 {
		t.Errorf("temporary directory left: %v", left)
	}
	return out, err
}

// Crafted streams cannot make the restore act outside its temporary
// directory, nor put what lies outside into the archive.
func TestTarHostile(t *testing.T) {
	outside := t.TempDir()
	secret := "outside-secret-bytes"
	if err := os.WriteFile(filepath.Join(outside, "s"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(path, data string) tcmd {
		return tcmd{sendstream.CmdWrite, []sendstream.Attr{p(path), u64(sendstream.AttrFileOffset, 0), str(sendstream.AttrData, data)}}
	}
	clone := func(path, src string, from uuid.UUID) tcmd {
		return tcmd{sendstream.CmdClone, []sendstream.Attr{p(path), u64(sendstream.AttrFileOffset, 0), u64(sendstream.AttrCloneLen, 0),
			id(sendstream.AttrCloneUUID, from), u64(sendstream.AttrCloneCTransID, 5), str(sendstream.AttrClonePath, src), u64(sendstream.AttrCloneOffset, 0)}}
	}
	link := tcmd{sendstream.CmdSymlink, []sendstream.Attr{p("l"), str(sendstream.AttrPathLink, outside)}}
	full := tstream("snap", uA, uuid.Zero, tcmd{sendstream.CmdMkfile, []sendstream.Attr{p("f")}}, write("f", "parent data"), link)
	for _, c := range []struct {
		name  string
		input []byte
		want  string
	}{
		{"write through a symlink", tstream("snap", uA, uuid.Zero, link, tcmd{sendstream.CmdMkfile, []sendstream.Attr{p("l/x")}}), "out of the receive directory"},
		{"clone through a symlink", tstream("snap", uA, uuid.Zero, link, tcmd{sendstream.CmdMkfile, []sendstream.Attr{p("f")}}, clone("f", "l/s", uA)), "out of the receive directory"},
		{"parent clone through a symlink", append(full, tstream("snap2", uB, uA, tcmd{sendstream.CmdMkfile, []sendstream.Attr{p("g")}}, clone("g", "l/s", uA))...), "out of the receive directory"},
		{"parent clone of ..", append(full, tstream("snap2", uB, uA, tcmd{sendstream.CmdMkfile, []sendstream.Attr{p("g")}}, clone("g", "../s", uA))...), "'..' component"},
		{"rename out", append(full, tstream("snap2", uB, uA, tcmd{sendstream.CmdRename, []sendstream.Attr{p("f"), str(sendstream.AttrPathTo, "l/f")}})...), "out of the receive directory"},
		{"snapshot name", tstream("../x", uA, uuid.Zero), ".."},
	} {
		out, err := runTar(t, c.input, TarOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
		if len(out) != 0 {
			t.Errorf("%s: %d bytes of archive", c.name, len(out))
		}
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "s")); string(b) != secret {
		t.Error("the file outside changed")
	}
	if e, _ := os.ReadDir(outside); len(e) != 1 {
		t.Errorf("outside holds %d entries", len(e))
	}
	// A symbolic link out is archived as a link, never followed; the
	// parent's file, deleted, is still a clone source.
	chain := append(full, tstream("snap2", uB, uA, tcmd{sendstream.CmdUnlink, []sendstream.Attr{p("f")}},
		tcmd{sendstream.CmdMkfile, []sendstream.Attr{p("g")}}, clone("g", "f", uA))...)
	out, err := runTar(t, chain, TarOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte(secret)) {
		t.Error("the archive holds a file from outside")
	}
	for _, s := range []string{"snap2/l\x00", "snap2/g\x00", "parent data"} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("the archive lacks %q", s)
		}
	}
	if !bytes.Equal(out[len(out)-1024:], make([]byte, 1024)) {
		t.Error("no end of archive")
	}
}
