package snapshot

import "io"

// WriteLines prints one record per line, in writes of about 64 KiB
// (whole lines), encoded by AppendJSON: the bytes encoding/json
// would write, several times faster.
func WriteLines(w io.Writer, recs []Snapshot) error {
	const chunk = 64 << 10
	buf := make([]byte, 0, chunk+4<<10)
	for i := range recs {
		var err error
		if buf, err = recs[i].AppendJSON(buf); err != nil {
			return err
		}
		buf = append(buf, '\n')
		if len(buf) >= chunk {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	if len(buf) > 0 {
		_, err := w.Write(buf)
		return err
	}
	return nil
}
