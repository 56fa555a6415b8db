package snapshot

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/buttersink/buttersink/lib/uuid"
)

// stdJSON is the reference: what lib/jsonl writes for s's wire struct
// (encoding/json, HTML escaping off), without the newline.
func stdJSON(s *Snapshot) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	w := wire{plain: (*plain)(s)}
	if !utf8.ValidString(s.Path) {
		w.PathB64 = base64.StdEncoding.EncodeToString([]byte(s.Path))
	}
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func checkSame(t *testing.T, s *Snapshot) {
	t.Helper()
	want, wantErr := stdJSON(s)
	got, err := s.AppendJSON([]byte("prefix"))
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%+v:\nAppendJSON error %v, encoding/json error %v", s, err, wantErr)
	}
	if err != nil {
		if err.Error() != wantErr.Error() {
			t.Fatalf("%+v:\nAppendJSON error %q, encoding/json error %q", s, err, wantErr)
		}
		return
	}
	if !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatalf("AppendJSON dropped the buffer's contents: %q", got)
	}
	if got = got[len("prefix"):]; !bytes.Equal(got, want) {
		t.Fatalf("%+v:\nAppendJSON  %s\nencoding/json %s", s, got, want)
	}
}

var oddStrings = []string{
	"", "a", "snaps/2026/01/a", `"`, `\`, `a"b\c`, "<>&", "\x7f", "\u00e9t\u00e9",
	"\u2028", "\u2029", "a\u2028b\u2029c", "\U0001F600", "\ufffd", "\ufeff",
	"\xff", "\xc3", "a\xc3(b", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "x\xe2\x82",
	"\xf0\x9f\x98", "tab\there", "nl\nhere", "cr\rhere", "bs\bhere", "ff\fhere",
	"\x00", "\x01\x1f", "\x1b[31mred", strings.Repeat("long/", 300) + "\x00\xff\u2028",
}

func init() {
	for c := 0; c < 0x20; c++ {
		oddStrings = append(oddStrings, string(rune(c)), "a"+string(rune(c))+"b")
	}
}

var oddTimes = []time.Time{
	{},
	time.Unix(0, 0).UTC(),
	time.Unix(1, 0).UTC(),
	time.Unix(1764625318, 851849172).UTC(),
	time.Unix(1764625318, 100000000).UTC(),
	time.Unix(1764625318, 1).UTC(),
	time.Unix(1764625318, 851849172).In(time.FixedZone("CET", 3600)),
	time.Unix(1764625318, 5).In(time.FixedZone("odd", -(9*3600 + 30*60 + 17))),
	time.Unix(1764625318, 0).In(time.FixedZone("max", 24*3600-1)),
	time.Unix(1764625318, 0).In(time.FixedZone("day", 24*3600)),
	time.Unix(1764625318, 0).In(time.FixedZone("-day", -24*3600)),
	time.Unix(1764625318, 0).In(time.FixedZone("huge", 200*3600)),
	time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(-1, 12, 31, 23, 59, 59, 0, time.UTC),
	time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("east", -3600)), // 10000 in UTC, 9999 here
}

func TestAppendJSONOddValues(t *testing.T) {
	u := uuid.UUID{0x68, 0x9d, 0x50, 0x14, 0x60, 0xeb, 0x1a, 0x41, 0x86, 0xce, 0x5c, 0x26, 0x55, 0x65, 0xf2, 0x6b}
	for _, str := range oddStrings {
		checkSame(t, &Snapshot{Kind: str, Path: str, Key: str, Encoding: str, Format: str, UUID: u})
	}
	for _, tm := range oddTimes {
		checkSame(t, &Snapshot{Kind: KindSubvolume, Path: "a", CTime: tm})
		checkSame(t, &Snapshot{Kind: KindSubvolume, Path: "a", OTime: tm, CTime: time.Unix(5, 0)})
	}
	zero, maxU, minI, maxI := uint64(0), ^uint64(0), int64(-1<<63), int64(1<<63-1)
	checkSame(t, &Snapshot{})
	checkSame(t, &Snapshot{
		Kind: KindObject, ID: maxU, UUID: uuid.UUID{15: 1}, ParentUUID: uuid.UUID{0xff}, ReceivedUUID: u,
		CTransID: maxU, OTransID: 1, STransID: maxU - 1, RTransID: 10,
		ReadOnly: true, Partial: true, Referenced: &zero, Exclusive: &maxU,
		SendParentUUID: u, Size: &minI, StreamSize: &maxI,
	})
}

// randomSnapshot fills every field, each left at its zero value now and
// then so that omitempty, omitzero and null are exercised.
func randomSnapshot(r *rand.Rand) *Snapshot {
	str := func() string {
		if r.IntN(3) == 0 {
			return oddStrings[r.IntN(len(oddStrings))]
		}
		b := make([]byte, r.IntN(40))
		for i := range b {
			switch r.IntN(4) {
			case 0:
				b[i] = byte(r.IntN(256))
			default:
				b[i] = byte(0x20 + r.IntN(0x60))
			}
		}
		return string(b)
	}
	num := func() uint64 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return r.Uint64()
		}
		return uint64(r.IntN(100000))
	}
	id := func() (u uuid.UUID) {
		if r.IntN(3) != 0 {
			for i := range u {
				u[i] = byte(r.IntN(256))
			}
		}
		return u
	}
	tm := func() time.Time {
		if r.IntN(4) == 0 {
			return time.Time{}
		}
		t := time.Unix(r.Int64N(1<<34), r.Int64N(1e9))
		if r.IntN(8) == 0 {
			t = t.Truncate(time.Duration(r.IntN(4)) * time.Millisecond)
		}
		if r.IntN(4) == 0 {
			return t.In(time.FixedZone("z", r.IntN(2*24*3600)-24*3600))
		}
		return t.UTC()
	}
	u64 := func() *uint64 {
		if r.IntN(2) == 0 {
			return nil
		}
		n := num()
		return &n
	}
	i64 := func() *int64 {
		if r.IntN(2) == 0 {
			return nil
		}
		n := int64(num())
		return &n
	}
	return &Snapshot{
		Kind: str(), Path: str(), ID: num(), UUID: id(), ParentUUID: id(), ReceivedUUID: id(),
		CTransID: num(), OTransID: num(), STransID: num(), RTransID: num(),
		CTime: tm(), OTime: tm(), ReadOnly: r.IntN(2) == 0, Referenced: u64(), Exclusive: u64(),
		Partial: r.IntN(2) == 0, Key: str(), SendParentUUID: id(), Size: i64(),
		Encoding: str(), StreamSize: i64(), Stored: tm(), Format: str(),
	}
}

func TestAppendJSONRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		checkSame(t, randomSnapshot(r))
	}
}

func TestAppendJSONNoAllocs(t *testing.T) {
	ref, excl := uint64(16384), uint64(4096)
	s := &Snapshot{
		Kind: KindSubvolume, Path: "snaps/d0/s100", ID: 357,
		UUID: uuid.UUID{1}, ParentUUID: uuid.UUID{2}, CTransID: 7, OTransID: 107,
		CTime: time.Unix(1764625318, 851849172).UTC(), OTime: time.Unix(1764625319, 907130753).UTC(),
		ReadOnly: true, Referenced: &ref, Exclusive: &excl,
	}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf, _ = s.AppendJSON(buf[:0]) }); n != 0 {
		t.Errorf("AppendJSON: %v allocations a record, want 0", n)
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("subvolume", "snaps/a", "", "", "", uint64(257), uint64(7), int64(1764625318), int64(851849172), 0, []byte{1, 2, 3}, uint8(0))
	f.Add("object", "a\u2028\xff\"\\\x00", "k<>&", "zstd.age", "buttersink", uint64(0), uint64(1<<63), int64(-62135596800), int64(0), 3600, []byte{}, uint8(0xff))
	f.Add("", "\t\n\r\b\f\x7f", "\xed\xa0\x80", "", "btrfs2s3", uint64(1), uint64(0), int64(253402300800), int64(1), -86400, []byte{0xff, 0xfe}, uint8(0x55))
	f.Fuzz(func(t *testing.T, kind, path, key, enc, format string, id, transid uint64, sec, nsec int64, offset int, uuidBytes []byte, flags uint8) {
		var u uuid.UUID
		copy(u[:], uuidBytes)
		tm := time.Unix(sec, nsec)
		if flags&1 != 0 {
			tm = tm.UTC()
		} else {
			tm = tm.In(time.FixedZone("z", offset))
		}
		size := int64(transid)
		s := &Snapshot{
			Kind: kind, Path: path, Key: key, Encoding: enc, Format: format,
			ID: id, CTransID: transid, OTransID: transid / 3, STransID: id ^ transid, RTransID: id / 7,
			ReadOnly: flags&2 != 0, Partial: flags&4 != 0,
		}
		if flags&8 != 0 {
			s.CTime = tm
		}
		if flags&16 != 0 {
			s.OTime = tm.Add(time.Duration(nsec))
		}
		if flags&32 != 0 {
			s.UUID, s.ReceivedUUID = u, u
			s.Referenced, s.Exclusive = &id, &transid
		}
		if flags&64 != 0 {
			s.ParentUUID, s.SendParentUUID = u, u
			s.Size = &size
		}
		if flags&128 != 0 {
			s.StreamSize = &size
		}
		if flags&4 != 0 && len(uuidBytes) > 0 {
			s.Resume = &Resume{Offset: sec, UUID: u, CTransID: transid}
			copy(s.Resume.Digest[:], uuidBytes)
			if flags&64 != 0 {
				s.Resume.ParentUUID, s.Resume.ParentCTransID = u, id
			}
		}
		checkSame(t, s)
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	recs := make([]*Snapshot, 256)
	for i := range recs {
		recs[i] = randomSnapshot(r)
		recs[i].CTime, recs[i].OTime = recs[i].CTime.UTC(), recs[i].OTime.UTC()
	}
	buf := make([]byte, 0, 4096)
	b.Run("AppendJSON", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			buf, _ = recs[i%len(recs)].AppendJSON(buf[:0])
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		var w bytes.Buffer
		enc := json.NewEncoder(&w)
		enc.SetEscapeHTML(false)
		for i := 0; b.Loop(); i++ {
			w.Reset()
			_ = enc.Encode(recs[i%len(recs)])
		}
	})
}

// checkRoundTrip encodes s (by AppendJSON, and by encoding/json inside a
// plan-step-like struct as a value, a pointer and a slice element) and
// decodes it back: the path must come back byte for byte.
func checkRoundTrip(t *testing.T, s *Snapshot) {
	t.Helper()
	b, err := s.AppendJSON(nil)
	if err != nil {
		return // times encoding/json refuses: not a path question
	}
	var got Snapshot
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%q: decoding %s: %v", s.Path, b, err)
	}
	if got.Path != s.Path {
		t.Fatalf("path %q came back as %q from %s", s.Path, got.Path, b)
	}
	type step struct {
		S Snapshot   `json:"snapshot"`
		P *Snapshot  `json:"parent"`
		C []Snapshot `json:"clones"`
	}
	sb, err := json.Marshal(step{S: *s, P: s, C: []Snapshot{*s}})
	if err != nil {
		t.Fatalf("%q: encoding/json of a step: %v", s.Path, err)
	}
	var st step
	if err := json.Unmarshal(sb, &st); err != nil {
		t.Fatalf("%q: decoding step %s: %v", s.Path, sb, err)
	}
	if st.S.Path != s.Path || st.P == nil || st.P.Path != s.Path || len(st.C) != 1 || st.C[0].Path != s.Path {
		t.Fatalf("path %q came back from a step as %q", s.Path, sb)
	}
}

func TestPathRoundTrip(t *testing.T) {
	for _, str := range append(oddStrings, "b\xff\xfe", "snaps/\xff/\xfe", "\ufffd\xff", strings.Repeat("\xc3\xbc", 50)) {
		checkRoundTrip(t, &Snapshot{Kind: KindSubvolume, Path: str})
	}
	b, _ := (&Snapshot{Kind: KindSubvolume, Path: "b\xff\xfe"}).AppendJSON(nil)
	if !bytes.Contains(b, []byte(`"path":"b\ufffd\ufffd"`)) || !bytes.Contains(b, []byte(`"path_b64":"Yv/+"}`)) {
		t.Errorf("non-UTF-8 path written as %s", b)
	}
	if b, _ := (&Snapshot{Path: "b\u00fc"}).AppendJSON(nil); bytes.Contains(b, []byte("path_b64")) {
		t.Errorf("UTF-8 path written with path_b64: %s", b)
	}
}

func TestPathB64Refused(t *testing.T) {
	for _, in := range []string{
		`{"path":"b\ufffd\ufffd","path_b64":"Yv/+="}`,  // bad padding
		`{"path":"b\ufffd\ufffd","path_b64":"Yv_-"}`,   // URL alphabet
		`{"path":"bc","path_b64":"YmM="}`,              // UTF-8 in path_b64
		`{"path":"harmless","path_b64":"Yv/+"}`,        // shows one name, acts on another
		`{"path":"b\ufffd","path_b64":"Yv/+"}`,         // one U+FFFD for two bytes
		`{"path":"../\ufffd","path_b64":"Li4v/w=="}`,   // ok to decode; names.Snapshot refuses it later
		`{"path":"b\ufffd\ufffd","path_b64":"Yv/+\n"}`, // trailing newline
	} {
		var s Snapshot
		err := json.Unmarshal([]byte(in), &s)
		if strings.Contains(in, "Li4v") {
			if err != nil || s.Path != "../\xff" {
				t.Errorf("%s: %v, path %q", in, err, s.Path)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted, path %q", in, s.Path)
		}
	}
}

// FuzzPathJSON: any bytes as a path survive the record's JSON exactly,
// and any path_b64 a decoder accepts re-encodes to the same record.
func FuzzPathJSON(f *testing.F) {
	for _, s := range oddStrings {
		f.Add(s, "")
	}
	f.Add("b\xff\xfe", "Yv/+")
	f.Add("b\ufffd\ufffd", "Yv/+")
	f.Add("x", "////")
	f.Fuzz(func(t *testing.T, path, b64 string) {
		checkRoundTrip(t, &Snapshot{Kind: KindSubvolume, Path: path})
		checkSame(t, &Snapshot{Kind: KindObject, Path: path, Key: b64})
		in, _ := json.Marshal(map[string]string{"path": path, "path_b64": b64})
		var s Snapshot
		if err := json.Unmarshal(in, &s); err != nil {
			return
		}
		out, err := s.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		var again Snapshot
		if err := json.Unmarshal(out, &again); err != nil || again.Path != s.Path {
			t.Fatalf("%s decoded to %q, re-encoded as %s, decoded to %q (%v)", in, s.Path, out, again.Path, err)
		}
	})
}

func TestResumeJSON(t *testing.T) {
	s := &Snapshot{Kind: KindSubvolume, Path: "a", Partial: true,
		Resume: &Resume{Offset: 1234, Digest: Digest{0xab, 1}, UUID: uuid.UUID{1}, CTransID: 9}}
	checkSame(t, s)
	b, _ := s.AppendJSON(nil)
	if !bytes.Contains(b, []byte(`"partial":true,"resume":{"offset":1234,"digest":"ab01000000000000000000000000000000000000000000000000000000000000","uuid":"01000000-0000-0000-0000-000000000000","ctransid":9}`)) {
		t.Errorf("%s", b)
	}
	s.Resume.ParentUUID, s.Resume.ParentCTransID = uuid.UUID{2}, 5
	checkSame(t, s)
	b, _ = s.AppendJSON(nil)
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil || *back.Resume != *s.Resume {
		t.Fatalf("round trip: %v %+v", err, back.Resume)
	}
	for _, bad := range []string{`"ab"`, `"` + strings.Repeat("g", 64) + `"`, `12`} {
		in := bytes.Replace(b, []byte(`"ab01`+strings.Repeat("0", 60)+`"`), []byte(bad), 1)
		if err := json.Unmarshal(in, &back); err == nil {
			t.Errorf("digest %s accepted", bad)
		}
	}
}

func TestFilterJSON(t *testing.T) {
	s := &Snapshot{Kind: KindDirectory, Path: "r", Partial: true,
		Filter: &Filter{Include: []string{"/home/\"bob\"", "*.go"}, Exclude: []string{"\x01"}}}
	checkSame(t, s)
	s.Filter = &Filter{Exclude: []string{"tmp"}}
	checkSame(t, s)
	b, _ := s.AppendJSON(nil)
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil || back.Filter == nil || back.Filter.Exclude[0] != "tmp" || back.Filter.Include != nil {
		t.Fatalf("round trip of %s: %v %+v", b, err, back.Filter)
	}
}
