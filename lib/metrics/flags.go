package metrics

import (
	"errors"
	"log/slog"
	"time"

	"github.com/buttersink/buttersink/lib/hint"
)

// Flags are a command's reporting flags. Embed it in the command's flags.
type Flags struct {
	MetricsFile string `name:"metrics-file" placeholder:"FILE" type:"path" help:"At the end of the run, success or failure, replace FILE with Prometheus textfile-collector metrics of it."`
	// StatsFile is how the buttersink script collects its stages' counts.
	StatsFile string `name:"stats-file" hidden:"" placeholder:"FILE" type:"path" help:"Append this run's counts to FILE as one JSON line."`
}

// Recorder counts one command's run; the command adds to its Stats as it
// goes and calls Finish with its exit status.
type Recorder struct {
	Stats
	flags       Flags
	destination string
	start       time.Time
}

// Recorder starts counting a run at destination, now.
func (f Flags) Recorder(destination string) *Recorder {
	now := time.Now()
	return &Recorder{Stats: Stats{Start: now.UnixNano()}, flags: f, destination: destination, start: now}
}

// Finish writes the stats line and the metrics file the flags ask for.
func (r *Recorder) Finish(code int) error {
	var errs []error
	if r.flags.StatsFile != "" {
		errs = append(errs, AppendStats(r.flags.StatsFile, r.Stats))
	}
	if r.flags.MetricsFile != "" {
		errs = append(errs, WriteFile(r.flags.MetricsFile, Run{Destination: r.destination, Start: r.start, End: time.Now(), ExitStatus: code, Stats: r.Stats}))
	}
	return errors.Join(errs...)
}

// AtExit is the function a command hands cli.Env.AtExit: it finishes the
// run with its exit code; a report that cannot be written is a warning on
// log, never the run's status.
func (r *Recorder) AtExit(log *slog.Logger) func(code int) {
	return func(code int) {
		if err := r.Finish(code); err != nil {
			log.Warn(hint.OneLine(err.Error()))
		}
	}
}
