package lock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Errors of an Object's methods.
var (
	// ErrPrecondition: the conditional write or delete did not match.
	ErrPrecondition = errors.New("precondition failed")
	// ErrNoLock: there is no lock object.
	ErrNoLock = errors.New("no lock object")
)

// Object is the lock object of a store directory, written only
// conditionally. objstore's S3 store implements it.
type Object interface {
	// CreateLock writes body unless the lock object exists
	// (If-None-Match: *); ErrPrecondition if it does.
	CreateLock(ctx context.Context, body []byte) (etag string, err error)
	// ReplaceLock writes body if the lock object's ETag is etag
	// (If-Match); ErrPrecondition if it is not, ErrNoLock if it is gone.
	ReplaceLock(ctx context.Context, etag string, body []byte) (newETag string, err error)
	// ReadLock returns the lock object's body, its ETag and its age (since
	// its last write, by the server's clock); ErrNoLock if there is none.
	ReadLock(ctx context.Context) (body []byte, etag string, age time.Duration, err error)
	// DeleteLock deletes the lock object if its ETag is etag (where the
	// server supports If-Match on delete).
	DeleteLock(ctx context.Context, etag string) error
}

// DefaultTTL is an object lock's lifetime without refresh.
const DefaultTTL = 2 * time.Minute

// ObjectLock takes the lock obj of a store directory; dest names it in
// messages. The returned lock is refreshed until released.
func ObjectLock(ctx context.Context, obj Object, dest string, opts Options) (*Lock, error) {
	ttl := opts.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if ttl < 2*time.Second {
		ttl = 2 * time.Second
	}
	me := newHolder(opts.Owner, ttl)
	w := newWaiter(opts, 2*time.Second)
	log := opts.log()
	announced := false
	for {
		etag, err := obj.CreateLock(ctx, me.body())
		if err == nil {
			return held(ctx, obj, dest, me, etag, ttl, opts), nil
		}
		if !errors.Is(err, ErrPrecondition) {
			return nil, err
		}
		body, old, age, err := obj.ReadLock(ctx)
		if errors.Is(err, ErrNoLock) {
			continue // released meanwhile: try again at once
		}
		if err != nil {
			return nil, err
		}
		h, known := parseHolder(body)
		// A lock lasts its holder's TTL (ours if unreadable) after its
		// last write.
		life := ttl
		if known && h.TTL > 0 {
			life = time.Duration(h.TTL) * time.Second
		}
		if dead := known && h.dead(); age > life || dead {
			why := fmt.Sprintf("not refreshed for %s", age.Round(time.Second))
			if dead {
				why = "the process has ended"
			}
			log.Warn(fmt.Sprintf("%s: taking over the expired lock of %s (%s)",
				dest, (&LockedError{Dest: dest, Holder: h, Known: known}).holderString(), why))
			etag, err := obj.ReplaceLock(ctx, old, me.body())
			if err == nil {
				return held(ctx, obj, dest, me, etag, ttl, opts), nil
			}
			if !errors.Is(err, ErrPrecondition) && !errors.Is(err, ErrNoLock) {
				return nil, err
			}
			// Another taker won, or the holder came back: look again.
			log.Debug("lock takeover lost the race", "dest", dest)
			continue
		}
		if opts.Wait && !announced {
			announced = true
			log.Info((&LockedError{Dest: dest, Holder: h, Known: known}).Error() + "; waiting")
		}
		ok, err := w.next(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, locked(dest, h, known, opts.Wait)
		}
	}
}

func (e *LockedError) holderString() string {
	if !e.Known {
		return "an unknown run"
	}
	return fmt.Sprintf("%d on %s since %s", e.Holder.PID, e.Holder.Host, e.Holder.Started.Local().Format(time.RFC3339))
}

// held starts refreshing a lock just taken.
func held(ctx context.Context, obj Object, dest string, me Holder, etag string, ttl time.Duration, opts Options) *Lock {
	log := opts.log()
	log.Debug("locked", "dest", dest, "etag", etag)
	l := newLock(ctx)
	var mu sync.Mutex // guards etag, me
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		// Refresh every TTL/4; after a failure (network), retry sooner.
		every := ttl / 4
		next := every
		for {
			t := time.NewTimer(next)
			select {
			case <-l.done:
				t.Stop()
				return
			case <-t.C:
			}
			mu.Lock()
			me.Refreshes++
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), every)
			ne, err := obj.ReplaceLock(rctx, etag, me.body())
			cancel()
			if err == nil {
				etag = ne
				next = every
				mu.Unlock()
				continue
			}
			mu.Unlock()
			if errors.Is(err, ErrPrecondition) || errors.Is(err, ErrNoLock) {
				l.cancel(fmt.Errorf("%s: %w: it was taken over or deleted while this run held it", dest, ErrLost))
				return
			}
			log.Warn(fmt.Sprintf("%s: could not refresh the lock: %v", dest, err))
			next = max(every/8, time.Second)
		}
	}()
	l.release = func() error {
		<-stopped
		if l.Lost() != nil {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		// Delete only our own lock: a server that ignores If-Match on
		// DELETE (MinIO) is checked first.
		_, cur, _, err := obj.ReadLock(rctx)
		switch {
		case errors.Is(err, ErrNoLock):
			return nil
		case err != nil:
			return fmt.Errorf("%s: releasing the lock: %w", dest, err)
		case cur != etag:
			return nil
		}
		if err := obj.DeleteLock(rctx, etag); err != nil && !errors.Is(err, ErrNoLock) && !errors.Is(err, ErrPrecondition) {
			return fmt.Errorf("%s: releasing the lock: %w", dest, err)
		}
		log.Debug("unlocked", "dest", dest)
		return nil
	}
	return l
}
