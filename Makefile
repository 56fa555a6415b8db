# buttersink — rsync for btrfs snapshots, as small Unix filters.
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR   = $(DESTDIR)$(PREFIX)/bin
MANDIR   = $(DESTDIR)$(PREFIX)/share/man

VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/buttersink/buttersink/lib/version.Version=$(VERSION)
COMMANDS := $(notdir $(wildcard cmd/*))
GO_COMMANDS := $(filter-out buttersink,$(COMMANDS))
MAN1 := $(wildcard man/*.1)
MAN5 := $(wildcard man/*.5)
MAN7 := $(wildcard man/*.7)
MAN8 := $(wildcard man/*.8)

.PHONY: all build test unit integration install man bench demo clean deps soak

all: build

build:
	@mkdir -p bin
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(GO_COMMANDS))
	install -m 0755 cmd/buttersink/buttersink.sh bin/buttersink

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

install: build man
	install -d $(BINDIR) $(MANDIR)/man1 $(MANDIR)/man5 $(MANDIR)/man7 $(MANDIR)/man8
	install -m 0755 $(addprefix bin/,$(COMMANDS)) $(BINDIR)/
	install -m 0755 examples/bs-ssh-filter $(BINDIR)/
	install -m 0644 $(MAN1) $(MANDIR)/man1/
	install -m 0644 $(MAN5) $(MANDIR)/man5/
	install -m 0644 $(MAN7) $(MANDIR)/man7/
	install -m 0644 $(MAN8) $(MANDIR)/man8/

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
