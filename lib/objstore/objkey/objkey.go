// Package objkey is the grammar of object keys: a stored stream's key
// names the snapshot, its UUID, its send parent, its ctransid and its
// encoding stages, so that a store is listed from its keys alone. Three
// formats are read (buttersink bs1, the original ButterSink's v0,
// btrfs2s3); bs1 keys are written.
package objkey

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/buttersink/buttersink/lib/names"
	"github.com/buttersink/buttersink/lib/stage"
	"github.com/buttersink/buttersink/lib/uuid"
)

// Object formats: how a key was named and what its body holds.
const (
	// FormatBS1 is this tool's layout:
	//   <path>/<uuid>.<parent-uuid|full>.ct<ctransid>.bs1[.<stage>]...
	FormatBS1 = "buttersink"
	// FormatV0 is the original ButterSink's: <path>/<uuid>_<parent-uuid|None>,
	// a raw stream.
	FormatV0 = "buttersink-v0"
	// FormatBtrfs2s3 is btrfs2s3's flat key with dotted suffixes, raw or
	// through a user's filter that the key does not record.
	FormatBtrfs2s3 = "btrfs2s3"
)

// Key is what an object's key says about the stream it holds. From the key
// alone a lister knows everything a planner needs, so listing never has to
// read an object (which may sit in a Glacier class).
type Key struct {
	// Path is the snapshot's path relative to the store's directory,
	// "/"-separated.
	Path string
	// UUID is the stream's UUID: the sent snapshot's effective UUID.
	UUID uuid.UUID
	// Parent is the effective UUID of the send parent; zero for a full stream.
	Parent   uuid.UUID
	CTransID uint64
	// Stages are the encodings applied to the raw stream, in order:
	// "zstd", "age", "f-<name>".
	Stages []string
	Format string
	// SourceUUID is btrfs2s3's "prnt": the live subvolume the snapshot was
	// taken of. Zero for other formats.
	SourceUUID uuid.UUID
	// Piece is, for a stream stored as a set of objects (it was larger
	// than the store's maximum object size), which one this key names:
	// 0 for the first (the stream's own key), 2 to MaxPieces for the
	// others (FormatBS1 only).
	Piece int
}

// MaxPieces bounds the objects one stream is stored as: at S3's 5 TiB
// per object, 50 PiB; a listing claiming more is not believed.
const MaxPieces = 10000

// piecePrefix starts the key suffix of a stream's second and later
// pieces: "<key>.p<N>".
const piecePrefix = "p"

// PieceKey is the key of the stream's piece n (1-based; 1 is the
// stream's own key).
func (k Key) PieceKey(n int) string {
	k.Piece = n
	if n == 1 {
		k.Piece = 0
	}
	return k.String()
}

// Head is k as the key of its stream's first piece.
func (k Key) Head() Key {
	k.Piece = 0
	return k
}

// Encoding is the stages joined with "." ("" for a raw stream).
func (k Key) Encoding() string { return strings.Join(k.Stages, ".") }

// keyExt maps a stage to its key suffix: the conventional file extension
// where there is one, so that stock tools recognize a downloaded object.
func keyExt(s string) string {
	if s == stage.Zstd {
		return "zst"
	}
	return s
}

// String is the key relative to the store's directory (FormatBS1 only).
func (k Key) String() string {
	var b strings.Builder
	b.WriteString(escapePath(k.Path))
	b.WriteByte('/')
	b.WriteString(k.UUID.Canonical())
	b.WriteByte('.')
	if k.Parent.IsZero() {
		b.WriteString("full")
	} else {
		b.WriteString(k.Parent.Canonical())
	}
	b.WriteString(".ct")
	b.WriteString(strconv.FormatUint(k.CTransID, 10))
	b.WriteString(".bs1")
	for _, s := range k.Stages {
		b.WriteByte('.')
		b.WriteString(keyExt(s))
	}
	if k.Piece > 1 {
		b.WriteString("." + piecePrefix)
		b.WriteString(strconv.Itoa(k.Piece))
	}
	return b.String()
}

// NameReserve is the room a key keeps after its snapshot path for the
// object's name: "/<uuid>.<uuid>.ct<20 digits>.bs1" (101 bytes) and
// stages (".zst", ".age" and two filters of 32 bytes) and a piece
// suffix (".p10000").
const NameReserve = 101 + 4 + 4 + 2*(3+32) + 7

// Storable reports whether a snapshot path can be stored as keys below a
// prefix of prefixLen bytes (the S3 prefix with its slash, 0 for a file
// store). The check is on the escaped path, as it is in the key, where
// each byte that is not ASCII takes three ("ü" is "%C3%BC"): each
// component of it must fit a file name (names.ComponentMax bytes), and
// the whole key, with NameReserve bytes of object name, S3's
// names.KeyMax.
func Storable(path string, prefixLen int) error {
	if err := names.Snapshot(path); err != nil {
		return err
	}
	esc := escapePath(path)
	for _, c := range strings.Split(esc, "/") {
		if len(c) > names.ComponentMax {
			return &names.Error{Kind: names.KindSnapshot, Name: path, Reason: fmt.Sprintf(
				"a component is %d bytes in an object key (escaped), longer than %d", len(c), names.ComponentMax)}
		}
	}
	if n := prefixLen + len(esc) + NameReserve; n > names.KeyMax {
		return &names.Error{Kind: names.KindSnapshot, Name: path, Reason: fmt.Sprintf(
			"its object keys would be %d bytes (escaped, with the prefix), longer than %d", n, names.KeyMax)}
	}
	return nil
}

// NewKey checks the parts of a FormatBS1 key.
func NewKey(path string, id, parent uuid.UUID, ctransid uint64, stages []string) (Key, error) {
	k := Key{Path: path, UUID: id, Parent: parent, CTransID: ctransid, Stages: stages, Format: FormatBS1}
	if err := Storable(path, 0); err != nil {
		return Key{}, err
	}
	if id.IsZero() {
		return Key{}, fmt.Errorf("stream for %q has no uuid", path)
	}
	for _, s := range stages {
		if !stage.Valid(s) {
			return Key{}, fmt.Errorf("invalid stage %q", s)
		}
	}
	return k, nil
}

func checkPath(p string) error {
	if p == "" {
		return fmt.Errorf("empty snapshot path")
	}
	if len(p) > 700 {
		return fmt.Errorf("snapshot path %q is too long for a key", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("snapshot path %q: empty, '.' or '..' component", p)
		}
	}
	return nil
}

// ParseKey reads a key relative to the store's directory, in any of the
// three formats. It rejects whatever it does not fully understand, so a
// stray object is never mistaken for a stream.
func ParseKey(key string) (Key, error) {
	bad := func(why string) (Key, error) { return Key{}, fmt.Errorf("key %q: %s", key, why) }
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return bad("not an object key")
	}
	dir, name := "", key
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		dir, name = key[:i], key[i+1:]
	}
	if strings.Contains(name, ".bs1") {
		if dir == "" {
			return bad("no snapshot path")
		}
		return parseBS1(key, dir, name)
	}
	if i := strings.IndexByte(name, '_'); i == 36 && len(name) == 36+1+36 || i == 36 && name[37:] == "None" {
		if dir == "" {
			return bad("no snapshot path")
		}
		return parseV0(key, dir, name)
	}
	if strings.Contains(name, ".uuid") {
		return parseBtrfs2s3(key, dir, name)
	}
	return bad("not a buttersink, buttersink-v0 or btrfs2s3 object")
}

func parseBS1(key, dir, name string) (Key, error) {
	bad := func(why string) (Key, error) { return Key{}, fmt.Errorf("key %q: %s", key, why) }
	path, err := unescapePath(dir)
	if err != nil {
		return bad(err.Error())
	}
	if err := checkPath(path); err != nil {
		return bad(err.Error())
	}
	f := strings.Split(name, ".")
	if len(f) < 4 || f[3] != "bs1" {
		return bad("want <uuid>.<parent-uuid|full>.ct<ctransid>.bs1[.stage]...")
	}
	k := Key{Path: path, Format: FormatBS1}
	if k.UUID, err = parseNonZeroUUID(f[0]); err != nil {
		return bad(err.Error())
	}
	if f[1] != "full" {
		if k.Parent, err = parseNonZeroUUID(f[1]); err != nil {
			return bad("parent: " + err.Error())
		}
	}
	if k.CTransID, err = parseDecimal(strings.TrimPrefix(f[2], "ct"), f[2], "ct"); err != nil {
		return bad(err.Error())
	}
	seen := map[string]bool{}
	exts := f[4:]
	if n := len(exts); n > 0 && strings.HasPrefix(exts[n-1], piecePrefix) {
		p, err := parseDecimal(exts[n-1][len(piecePrefix):], exts[n-1], "piece")
		if err != nil || p < 2 || p > MaxPieces {
			return bad(fmt.Sprintf("invalid piece %q (want p2 to p%d)", exts[n-1], MaxPieces))
		}
		k.Piece = int(p)
		exts = exts[:n-1]
	}
	for _, ext := range exts {
		var s string
		switch {
		case ext == "zst":
			s = stage.Zstd
		case ext == stage.Age:
			s = stage.Age
		case stage.ValidFilterName(stage.FilterName(ext)):
			s = ext
		default:
			return bad(fmt.Sprintf("unknown stage %q", ext))
		}
		if (s == stage.Zstd || s == stage.Age) && seen[s] {
			return bad(fmt.Sprintf("stage %q twice", ext))
		}
		seen[s] = true
		k.Stages = append(k.Stages, s)
	}
	if k.String() != key {
		// Only the canonical spelling is ours: one key per stream.
		return bad("not in canonical form")
	}
	return k, nil
}

func parseV0(key, dir, name string) (Key, error) {
	bad := func(why string) (Key, error) { return Key{}, fmt.Errorf("key %q: %s", key, why) }
	if err := checkPath(dir); err != nil {
		return bad(err.Error())
	}
	k := Key{Path: dir, Format: FormatV0}
	var err error
	if k.UUID, err = parseNonZeroUUID(name[:36]); err != nil {
		return bad(err.Error())
	}
	if p := name[37:]; p != "None" {
		if k.Parent, err = uuid.Parse(p); err != nil {
			return bad("parent: " + err.Error())
		}
	}
	return k, nil
}

// parseBtrfs2s3 reads <name>.ctim<time>.ctid<n>.uuid<u>.sndp<u>.prnt<u>.mdvn1.seqn0.
// The suffixes may come in any order and unknown ones are ignored, as
// btrfs2s3 itself does; the snapshot name is what precedes the first one.
func parseBtrfs2s3(key, dir, name string) (Key, error) {
	bad := func(why string) (Key, error) { return Key{}, fmt.Errorf("key %q: %s", key, why) }
	f := strings.Split(name, ".")
	tags := []string{"ctim", "ctid", "uuid", "sndp", "prnt", "mdvn", "seqn"}
	tagOf := func(s string) string {
		for _, t := range tags {
			if strings.HasPrefix(s, t) {
				return t
			}
		}
		return ""
	}
	start := -1
	for i := 1; i < len(f); i++ {
		if tagOf(f[i]) != "" {
			start = i
			break
		}
	}
	if start < 0 {
		return bad("no btrfs2s3 suffixes")
	}
	base := strings.Join(f[:start], ".")
	vals := map[string]string{}
	last := ""
	for _, s := range f[start:] {
		t := tagOf(s)
		if t == "" {
			// A dot inside a value (fractional seconds of ctim) or an
			// unknown suffix: keep it with the time, ignore otherwise.
			if last == "ctim" && s != "" && s[0] >= '0' && s[0] <= '9' {
				vals["ctim"] += "." + s
			}
			continue
		}
		if _, dup := vals[t]; dup {
			return bad(fmt.Sprintf("suffix %q twice", t))
		}
		vals[t] = s[len(t):]
		last = t
	}
	k := Key{Format: FormatBtrfs2s3}
	var err error
	if k.UUID, err = parseNonZeroUUID(vals["uuid"]); err != nil {
		return bad("uuid: " + err.Error())
	}
	sndp, ok := vals["sndp"]
	if !ok {
		return bad("no sndp suffix")
	}
	if k.Parent, err = uuid.Parse(sndp); err != nil {
		return bad("sndp: " + err.Error())
	}
	if p, ok := vals["prnt"]; ok {
		if k.SourceUUID, err = uuid.Parse(p); err != nil {
			return bad("prnt: " + err.Error())
		}
	}
	if k.CTransID, err = parseDecimal(vals["ctid"], "ctid"+vals["ctid"], "ctid"); err != nil {
		return bad(err.Error())
	}
	if v, ok := vals["mdvn"]; ok && v != "1" {
		return bad("unknown metadata version " + v)
	}
	if v, ok := vals["seqn"]; ok && v != "0" {
		return bad("split objects (seqn " + v + ") are not supported")
	}
	// The snapshot btrfs2s3 made is named <base>.<ctime>.<ctransid>.
	p := base
	if ct := vals["ctim"]; ct != "" {
		p += "." + ct
	}
	p += "." + strconv.FormatUint(k.CTransID, 10)
	if dir != "" {
		p = dir + "/" + p
	}
	if base == "" || checkPath(p) != nil || strings.Contains(p, "/.") {
		return bad("invalid snapshot name")
	}
	k.Path = p
	return k, nil
}

func parseNonZeroUUID(s string) (uuid.UUID, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return u, err
	}
	if u.IsZero() {
		return u, fmt.Errorf("zero uuid")
	}
	if s != u.Canonical() {
		return uuid.Zero, fmt.Errorf("uuid %q is not lowercase", s)
	}
	return u, nil
}

func parseDecimal(s, orig, what string) (uint64, error) {
	if s == "" || len(s) > 1 && s[0] == '0' || len(s) > 20 {
		return 0, fmt.Errorf("invalid %s %q", what, orig)
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid %s %q", what, orig)
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid %s %q", what, orig)
	}
	return n, nil
}

// safe are the bytes a path component keeps as they are in a key; the rest
// is %XX-escaped so that keys are plain ASCII without spaces, and "%" stays
// unambiguous.
func safe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == ',' || c == '=' || c == '@' || c == '/'
}

func escapePath(p string) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if safe(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexd[c>>4])
			b.WriteByte(hexd[c&15])
		}
	}
	return b.String()
}

func unescapePath(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) {
				return "", fmt.Errorf("truncated escape in %q", s)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil || strings.ToUpper(s[i+1:i+3]) != s[i+1:i+3] {
				return "", fmt.Errorf("invalid escape in %q", s)
			}
			b.WriteByte(byte(v))
			i += 2
		case safe(c):
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("unescaped byte %q in %q", c, s)
		}
	}
	return b.String(), nil
}
