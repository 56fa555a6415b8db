// Package hint attaches a one-line suggestion to an error, printed by the
// command's main as "NAME: hint: ..." after the error line, and holds that
// line protocol: Line prints it, ParseLine and Collector read it back from
// a child command's stderr.
package hint

import "errors"

type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

// Wrap returns err carrying the suggestion h; nil stays nil.
func Wrap(err error, h string) error {
	if err == nil {
		return nil
	}
	return &hinted{err: err, hint: h}
}

// Of returns the outermost hint in err's chain, or "".
func Of(err error) string {
	var h *hinted
	if errors.As(err, &h) {
		return h.hint
	}
	return ""
}
