// Package metrics is what a run reports when it ends: the counts each stage
// adds to a stats file, and the two forms made of them, Prometheus
// textfile-collector metrics and a one-line JSON summary. The format of
// both lives here only: the commands write it with --metrics-file, and the
// buttersink script has bsplan write it from its stages' stats files.
package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Stats are a stage's counts, one JSON line in a stats file. Start is when
// the stage started (Unix nanoseconds), so that the whole run's duration
// reaches back to its first stage.
type Stats struct {
	Start            int64 `json:"start,omitempty"`
	SnapshotsSent    int64 `json:"snapshots_sent,omitempty"`
	BytesSent        int64 `json:"bytes_sent,omitempty"`
	BytesStored      int64 `json:"bytes_stored,omitempty"`
	SnapshotsDeleted int64 `json:"snapshots_deleted,omitempty"`
	// MaxChain is the longest restore chain at an object-store
	// destination once the plan is carried out; 0 when there are none
	// (btrfs) or nobody counted them.
	MaxChain int64 `json:"max_chain,omitempty"`
}

// Add merges o into s: counts add up, the start is the earliest, the
// chain the longest.
func (s *Stats) Add(o Stats) {
	if o.Start != 0 && (s.Start == 0 || o.Start < s.Start) {
		s.Start = o.Start
	}
	s.SnapshotsSent += o.SnapshotsSent
	s.BytesSent += o.BytesSent
	s.BytesStored += o.BytesStored
	s.SnapshotsDeleted += o.SnapshotsDeleted
	s.MaxChain = max(s.MaxChain, o.MaxChain)
}

func (s Stats) negative() bool {
	return s.Start < 0 || s.SnapshotsSent < 0 || s.BytesSent < 0 || s.BytesStored < 0 || s.SnapshotsDeleted < 0 || s.MaxChain < 0
}

// maxStatsLine bounds a stats file's line: each is a handful of numbers.
const maxStatsLine = 4096

// ReadStats merges the lines of a stats file. A missing file is no
// counts (the stage never ran); a line that is not Stats is an error.
func ReadStats(path string) (Stats, error) {
	var s Stats
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, maxStatsLine), maxStatsLine)
	for n := 1; sc.Scan(); n++ {
		var o Stats
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.DisallowUnknownFields()
		if err := d.Decode(&o); err != nil {
			return s, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		if o.negative() {
			return s, fmt.Errorf("%s:%d: negative count", path, n)
		}
		s.Add(o)
		if s.negative() {
			return s, fmt.Errorf("%s:%d: counts overflow", path, n)
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("%s: %v", path, err)
	}
	return s, nil
}

// AppendStats adds s as one line to the stats file at path. One write of
// an O_APPEND file: stages that end at the same time do not mix lines.
func AppendStats(path string, s Stats) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Run is one run's outcome.
type Run struct {
	// Destination labels every metric.
	Destination string
	Start, End  time.Time
	ExitStatus  int
	Stats
}

// Duration is the run's wall time.
func (r Run) Duration() time.Duration { return max(r.End.Sub(r.Start), 0) }

// Metric names.
const (
	nameLastSuccess = "buttersink_last_success_timestamp_seconds"
	prefix          = "buttersink_"
)

// metric is one line of the exposition: its name, help and value.
type metric struct {
	name, help string
	value      float64
}

func (r Run) metrics(lastSuccess time.Time) []metric {
	var m []metric
	if !lastSuccess.IsZero() {
		m = append(m, metric{nameLastSuccess, "When the last successful run ended (Unix time).", seconds(lastSuccess)})
	}
	m = append(m,
		metric{prefix + "last_run_timestamp_seconds", "When the last run ended (Unix time).", seconds(r.End)},
		metric{prefix + "last_run_duration_seconds", "Wall time of the last run.", r.Duration().Seconds()},
		metric{prefix + "last_run_exit_status", "Exit status of the last run (0 success, 75 destination locked).", float64(r.ExitStatus)},
		metric{prefix + "last_run_bytes_sent", "Send-stream bytes the last run transferred.", float64(r.BytesSent)},
		metric{prefix + "last_run_bytes_stored", "Bytes the last run stored at the destination.", float64(r.BytesStored)},
		metric{prefix + "last_run_snapshots_sent", "Snapshots the last run sent.", float64(r.SnapshotsSent)},
		metric{prefix + "last_run_snapshots_deleted", "Snapshots the last run deleted.", float64(r.SnapshotsDeleted)},
	)
	if r.MaxChain > 0 {
		m = append(m, metric{prefix + "restore_chain_max_length", "Longest restore chain (objects a restore reads) at the destination.", float64(r.MaxChain)})
	}
	return m
}

func seconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// Format writes r's metrics in the Prometheus text exposition format.
// lastSuccess is when the last successful run ended (zero: never).
func Format(w io.Writer, r Run, lastSuccess time.Time) error {
	label := `{destination="` + EscapeLabel(r.Destination) + `"}`
	var b strings.Builder
	for _, m := range r.metrics(lastSuccess) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s%s %s\n",
			m.name, m.help, m.name, m.name, label, strconv.FormatFloat(m.value, 'g', -1, 64))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// EscapeLabel escapes a label value as the exposition format reads it:
// backslash, double quote and newline escaped, invalid UTF-8 replaced, so
// that no value can end its line or its quotes.
func EscapeLabel(v string) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// LastSuccess reads when the last successful run at destination ended
// from a metrics file Format wrote (zero if it holds none).
func LastSuccess(r io.Reader, destination string) time.Time {
	want := nameLastSuccess + `{destination="` + EscapeLabel(destination) + `"} `
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), want)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 || f > 1e11 {
			return time.Time{}
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9))
	}
	return time.Time{}
}

// WriteFile replaces the metrics file at path with r's metrics, atomically
// (a file beside it, renamed over it, mode 0644 for the collector). A
// failed run keeps the last success time the file held.
func WriteFile(path string, r Run) (err error) {
	last := r.End
	if r.ExitStatus != 0 {
		last = time.Time{}
		if f, err := os.Open(path); err == nil {
			last = LastSuccess(io.LimitReader(f, 1<<20), r.Destination)
			f.Close()
		}
	}
	var b bytes.Buffer
	if err := Format(&b, r, last); err != nil {
		return err
	}
	// The collector reads *.prom only: the temporary name is never read.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(b.Bytes()); err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	return nil
}

// summary is the JSON summary line.
type summary struct {
	Destination      string  `json:"destination"`
	ExitStatus       int     `json:"exit_status"`
	Start            string  `json:"start"`
	End              string  `json:"end"`
	DurationSeconds  float64 `json:"duration_seconds"`
	SnapshotsSent    int64   `json:"snapshots_sent"`
	BytesSent        int64   `json:"bytes_sent"`
	BytesStored      int64   `json:"bytes_stored"`
	SnapshotsDeleted int64   `json:"snapshots_deleted"`
	MaxChain         int64   `json:"max_chain,omitempty"`
}

// Summary is r as one JSON line, newline included.
func Summary(r Run) []byte {
	b, _ := json.Marshal(summary{
		Destination: strings.ToValidUTF8(r.Destination, "\uFFFD"), ExitStatus: r.ExitStatus,
		Start: r.Start.Format(time.RFC3339Nano), End: r.End.Format(time.RFC3339Nano),
		DurationSeconds: r.Duration().Seconds(),
		SnapshotsSent:   r.SnapshotsSent, BytesSent: r.BytesSent, BytesStored: r.BytesStored,
		SnapshotsDeleted: r.SnapshotsDeleted, MaxChain: r.MaxChain,
	})
	return append(b, '\n')
}

// Report ends the buttersink script's run at destination with status: it
// merges the stages' lines of statsFile and writes the metrics file (if
// metricsFile is set) and the JSON summary line to w (if summary).
func Report(w io.Writer, statsFile, metricsFile string, summary bool, destination string, status int) error {
	var st Stats
	if statsFile != "" {
		var err error
		if st, err = ReadStats(statsFile); err != nil {
			return err
		}
	}
	r := Run{Destination: destination, End: time.Now(), ExitStatus: status, Stats: st}
	r.Start = r.End
	if st.Start != 0 {
		r.Start = time.Unix(0, st.Start)
	}
	var errs []error
	if metricsFile != "" {
		errs = append(errs, WriteFile(metricsFile, r))
	}
	if summary {
		if _, err := w.Write(Summary(r)); err != nil {
			errs = append(errs, fmt.Errorf("stdout: %w", err))
		}
	}
	return errors.Join(errs...)
}
