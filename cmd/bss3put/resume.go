package bss3put

import (
	"errors"
	"fmt"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/objstore/uploadstate"
	"github.com/buttersink/buttersink/lib/stage"
)

// resumer makes one object's encoding the same in the run that resumes
// its upload as in the run that was interrupted, so that the parts the
// server holds are kept. zstd is reproducible as it is; age is under the
// file key and header of the first run, which a local record keeps
// (lib/objstore/uploadstate) and never the store. Whether a filter is
// reproducible is only known from its output: each part is compared with
// the one the server holds (size and CRC32C), and so is a stream that
// is not the one the interrupted run read.
type resumer struct {
	env    *cli.Env
	object string
	enc    stage.Encoding
	// recipients identifies enc's age recipients ("" when the key must
	// not be reused).
	recipients string
	// records tells whether the records' directory can be used.
	records error
	// resumedID is the upload resumed, when there is one.
	resumedID string
	// why is the reason the interrupted run's parts may not match: no
	// kept key, or a filter.
	why    string
	warned bool
}

func newResumer(env *cli.Env, object string, enc stage.Encoding) *resumer {
	r := &resumer{env: env, object: object, enc: enc}
	if len(enc.Recipients) > 0 {
		r.recipients = stage.RecipientsID(enc.Recipients)
		_, r.records = uploadstate.Dir()
		if r.records == nil && r.recipients == "" {
			r.records = errors.New("a recipient that cannot be told apart from others")
		}
	}
	if len(enc.Filters) > 0 {
		r.why = "a filter whose output is not reproducible, or another stream"
	}
	return r
}

// discard tells whether an upload must be dropped when it fails: an age
// key that cannot be kept makes it impossible to resume.
func (r *resumer) discard() bool {
	return len(r.enc.Recipients) > 0 && r.records != nil
}

// started takes the key of a resumed upload from its record, and keeps a
// new upload's key in one before any part is sent (objstore.PutOptions.Started).
func (r *resumer) started(id string, resumed bool) error {
	if len(r.enc.Recipients) == 0 || r.records != nil {
		return nil
	}
	if !resumed {
		return r.save(id)
	}
	r.resumedID = id
	rec, err := uploadstate.Load(r.object, id)
	switch {
	case err == nil && rec.Recipients == r.recipients:
		r.enc.AgeKey = &stage.AgeKey{Header: rec.AgeHeader, FileKey: rec.AgeFileKey}
	case err == nil:
		r.why = "its age key is for other recipients"
	case errors.Is(err, uploadstate.ErrNotExist):
		r.why = "no resume record holds its age key (interrupted on another machine?)"
	default:
		r.env.Log.Warn(err.Error() + ": ignored")
		r.why = "its resume record was refused"
	}
	return nil
}

// prepare gives the encoding an age key: the resumed one, or a fresh one,
// kept for the resumed upload when there is one.
func (r *resumer) prepare() (stage.Encoding, error) {
	if len(r.enc.Recipients) == 0 || r.enc.AgeKey != nil {
		return r.enc, nil
	}
	k, err := stage.NewAgeKey(r.enc.Recipients)
	if err != nil {
		return stage.Encoding{}, err
	}
	r.enc.AgeKey = &k
	if r.resumedID != "" && r.records == nil {
		if err := r.save(r.resumedID); err != nil {
			return stage.Encoding{}, err
		}
	}
	return r.enc, nil
}

func (r *resumer) save(id string) error {
	k := r.enc.AgeKey
	return uploadstate.Save(uploadstate.Record{Object: r.object, UploadID: id, Recipients: r.recipients,
		AgeHeader: k.Header, AgeFileKey: k.FileKey})
}

// mismatch is told the first part of the resumed upload that differs
// from this run's (objstore.PutOptions.Mismatch). Without a stage that may
// not reproduce, the stream itself differs there, and only that part is
// sent again; else the encoding did not reproduce and no later part can
// match: the object is stored again from the start.
func (r *resumer) mismatch(part int) bool {
	if r.why == "" && (len(r.enc.Recipients) == 0 && !r.enc.Zstd) {
		r.env.Log.Debug("part differs from the interrupted upload's", "key", r.object, "part", part)
		return false
	}
	why := r.why
	if why == "" {
		why = "another stream"
	}
	if !r.warned {
		r.warned = true
		r.env.Log.Warn(fmt.Sprintf("%s: part %d of the interrupted upload differs from this run's (%s): storing the object again from the start", r.object, part, why))
	}
	return true
}
