package progress

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestBoardOneDrawer(t *testing.T) {
	path := filepath.Join(t.TempDir(), boardName(os.Geteuid(), 0x8803, 4242))
	a, err := joinBoard(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := joinBoard(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if a.slot == b.slot {
		t.Fatalf("both in slot %d", a.slot)
	}
	if !a.try(drawByte, 1) || b.try(drawByte, 1) {
		t.Fatal("want exactly one drawer")
	}
	if err := a.publish(&State{Role: RoleSource, Name: "bssend", N: 1, Of: 2, Start: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.publish(&State{Role: RoleSink, Name: "bss3put", N: 1, Start: 2}); err != nil {
		t.Fatal(err)
	}
	got, err := b.states()
	if err != nil || len(got) != 2 || got[0].Ended || got[1].Ended {
		t.Fatalf("states %+v, %v", got, err)
	}
	// The drawer ends without a word (killed): its lock goes with it,
	// its slot reads as ended, and the other stage may draw.
	a.f.Close()
	if !b.try(drawByte, 1) {
		t.Fatal("the draw lock did not pass on")
	}
	got, _ = b.states()
	for _, s := range got {
		if s.Name == "bssend" && !s.Ended {
			t.Fatalf("a gone stage is live: %+v", got)
		}
	}
}

// A board whose stages have all ended is removed by the last, and one
// left behind (a killed run) is cleared by the next run's first stage.
func TestBoardNextRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "board")
	a, err := joinBoard(path)
	if err != nil {
		t.Fatal(err)
	}
	a.publish(&State{Role: RoleSource, N: 5, Of: 5})
	a.close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("board left behind: %v", err)
	}
	a, _ = joinBoard(path)
	a.publish(&State{Role: RoleSource, N: 5, Of: 5})
	a.f.Close() // killed
	b, err := joinBoard(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if got, _ := b.states(); len(got) != 0 {
		t.Fatalf("an earlier run's states: %+v", got)
	}
}

// In /dev/shm anyone may make the board's name first: only a private
// regular file of the user's, with one link, is used.
func TestBoardHostile(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other")
	os.WriteFile(other, nil, 0o600)
	tests := []struct {
		name string
		make func(p string) error
	}{
		{"symbolic link", func(p string) error { return os.Symlink(other, p) }},
		{"readable by others", func(p string) error { return os.WriteFile(p, nil, 0o644) }},
		{"hard link", func(p string) error { return os.Link(other, p) }},
		{"directory", func(p string) error { return os.Mkdir(p, 0o700) }},
		{"fifo", func(p string) error { return mkfifo(p) }},
		{"another user's", func(p string) error {
			if os.Geteuid() != 0 {
				t.Skip("needs root to make a file of another user")
			}
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				return err
			}
			return os.Chown(p, 65534, 65534)
		}},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, tt.name)
		if err := tt.make(p); err != nil {
			t.Fatal(err)
		}
		if b, err := joinBoard(p); err == nil {
			b.close()
			t.Errorf("%s: joined", tt.name)
		}
	}
	if st, _ := os.Stat(other); st.Size() != 0 {
		t.Error("the link's target was written")
	}
}

func mkfifo(p string) error { return unix.Mkfifo(p, 0o600) }
