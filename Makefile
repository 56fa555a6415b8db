# buttersink — rsync for btrfs snapshots, as small Unix filters.
PREFIX  ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc
BINDIR      = $(DESTDIR)$(PREFIX)/bin
MANDIR      = $(DESTDIR)$(PREFIX)/share/man
LIBEXECDIR  = $(DESTDIR)$(PREFIX)/libexec/buttersink
UNITDIR     = $(DESTDIR)$(PREFIX)/lib/systemd/system
CONFDIR     = $(DESTDIR)$(SYSCONFDIR)/buttersink
BASHCOMPDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHCOMPDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d

# The version is lib/version.Release (kept in the repository); the build
# detail appended is the commit, as the go command stamps it when it may
# (lib/version.Version), so that make and go build agree.
GIT_REV := $(shell git rev-parse HEAD 2>/dev/null | cut -c1-12)
GIT_DIRTY := $(shell git status --porcelain 2>/dev/null | head -c1)
BUILD := $(if $(GIT_REV),g$(GIT_REV)$(if $(GIT_DIRTY),.dirty))
LDFLAGS := -s -w $(if $(BUILD),-X github.com/buttersink/buttersink/lib/version.Build=$(BUILD))
# Two multi-call binaries (cmd/bs, cmd/bs-s3) and a link per command.
BINARIES := bs bs-s3
COMMANDS := $(filter-out $(BINARIES) buttersink,$(notdir $(wildcard cmd/*)))
NIGHTLY := examples/nightly-s3
UNITS := buttersink-backup.service buttersink-backup.timer buttersink-failure@.service
MAN1 := $(wildcard man/*.1)
MAN5 := $(wildcard man/*.5)
MAN7 := $(wildcard man/*.7)
MAN8 := $(wildcard man/*.8)

.PHONY: all build test unit integration install man bench demo clean deps soak

all: build

build:
	@mkdir -p bin
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINARIES))
	bin/bs --install-links bin

# deps installs what the tests, the demo and the benchmarks need (Debian, as root).
deps:
	sh test/deps.sh

# test runs everything: unit tests, fuzz seeds, and the integration tests on
# real btrfs loop filesystems, MinIO and sshd (root needed; CI=true makes a
# missing prerequisite a failure instead of a skip).
test:
	sh test/deps.sh
	$(MAKE) build man
	go vet ./...
	go test -count=1 -timeout 80m ./...

unit:
	go test -count=1 -short ./lib/...

# soak repeats the resume test with more kills (RESUME_KILLS, default 25).
soak:
	RESUME_KILLS=$${RESUME_KILLS:-25} go test -count=1 -timeout 60m -run 'TestResumeKilled' -v ./test/

# install: the binaries with a hard link per command, the scripts, the
# manual, completions generated from each command's flags, and the
# nightly backup (script, systemd units pointing to it under PREFIX, and
# an example backup.env that never replaces an existing one).
install: build man
	install -d $(BINDIR) $(MANDIR)/man1 $(MANDIR)/man5 $(MANDIR)/man7 $(MANDIR)/man8 \
		$(LIBEXECDIR) $(UNITDIR) $(CONFDIR) $(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR)
	install -m 0755 $(addprefix bin/,$(BINARIES) buttersink) examples/bs-ssh-filter $(BINDIR)/
	for c in $(COMMANDS); do \
		ln -f $(BINDIR)/$$(readlink bin/$$c) $(BINDIR)/$$c || exit 1; \
		bin/$$c --completion=bash >$(BASHCOMPDIR)/$$c && \
		bin/$$c --completion=zsh >$(ZSHCOMPDIR)/_$$c && \
		bin/$$c --completion=fish >$(FISHCOMPDIR)/$$c.fish || exit 1; \
	done
	install -m 0644 $(MAN1) $(MANDIR)/man1/
	install -m 0644 $(MAN5) $(MANDIR)/man5/
	install -m 0644 $(MAN7) $(MANDIR)/man7/
	install -m 0644 $(MAN8) $(MANDIR)/man8/
	install -m 0755 $(NIGHTLY)/backup.sh $(LIBEXECDIR)/buttersink-backup
	for u in $(UNITS); do \
		sed -e 's|/usr/local/|$(PREFIX)/|g' -e 's|/etc/buttersink/|$(SYSCONFDIR)/buttersink/|g' \
			$(NIGHTLY)/$$u >$(UNITDIR)/$$u && chmod 0644 $(UNITDIR)/$$u || exit 1; \
	done
	[ -e $(CONFDIR)/backup.env ] || install -m 0600 $(NIGHTLY)/backup.env $(CONFDIR)/backup.env

man:
	@for f in $(MAN1) $(MAN5) $(MAN7) $(MAN8); do mandoc -T lint -W warning $$f || exit 1; done

bench: build
	sh test/bench/run.sh

demo:
	sh test/deps.sh demo
	$(MAKE) build
	sh examples/demo.sh

clean:
	rm -rf bin
