package checksumdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// WriteSet writes the set's files into dir. Each is written to a
// temporary name, synced and renamed; the old NAME.sha256sum is removed
// first and the new one renamed last, so that no NAME.sha256sum ever
// vouches for files it was not made from.
func WriteSet(dir string, s *Set) (err error) {
	names := append(s.FileNames(), s.Name+".sha256sum")
	contents := append(s.contents(), s.SumFile())
	var temps []string
	defer func() {
		if err != nil {
			for _, t := range temps {
				os.Remove(t)
			}
		}
	}()
	for i, name := range names {
		f, err := os.CreateTemp(dir, "."+name+".*.tmp")
		if err != nil {
			return err
		}
		temps = append(temps, f.Name())
		_, err = f.Write(contents[i])
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			// The temporary name means nothing to the user.
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
		}
		if err := os.Chmod(f.Name(), 0o644); err != nil {
			return err
		}
	}
	sumFile := filepath.Join(dir, s.Name+".sha256sum")
	if err := os.Remove(sumFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for i, name := range names {
		if err := os.Rename(temps[i], filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}
