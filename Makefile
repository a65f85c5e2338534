# licd: build, local stack and tests. `make run` / `make stop` / `make test`.
# Every binary is one fcgi/*.c over the shared library fcgi/lib/*.c;
# licctl is fcgi/licctl/*.c (its command table in main.c).

CC       ?= cc
PKGS     := libpq json-c libcurl openssl
CPPFLAGS += -iquote fcgi/lib -D_GNU_SOURCE $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -pedantic -Wall -Wextra -Werror -pthread
LDLIBS   := -Wl,--as-needed -lfcgi $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lpq -ljson-c -lcurl -lssl -lcrypto) -pthread
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

BUILD    := build
LIB_SRC  := $(wildcard fcgi/lib/*.c)
LIB_HDR  := $(wildcard fcgi/lib/*.h)
BIN_SRC  := $(wildcard fcgi/*.c)
BINS     := $(patsubst fcgi/%.c,$(BUILD)/bin/%,$(BIN_SRC))
SAN_BINS := $(patsubst fcgi/%.c,$(BUILD)/asan/bin/%,$(BIN_SRC))
# fcgi/admin.c (POST /api/revoke and the admin API) builds the `revoke`
# program: the file is named for what it serves, the program keeps its name.
BINS     := $(patsubst %/bin/admin,%/bin/revoke,$(BINS))
SAN_BINS := $(patsubst %/bin/admin,%/bin/revoke,$(SAN_BINS))
LICCTL_SRC := $(wildcard fcgi/licctl/*.c)
BINS     += $(BUILD)/bin/licctl
SAN_BINS += $(BUILD)/asan/bin/licctl
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT     := $(patsubst tests/unit/%.c,$(BUILD)/asan/unit/%,$(UNIT_SRC))

RUN_DIR  ?= $(CURDIR)/run
PORT     ?= 8080

.PHONY: all asan unit fuzz run stop status test valgrind clean deps bench install scale-test deb deb-test schema

# libFuzzer targets (clang): every parser that sees outside bytes.
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ         := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_SECONDS ?= 30
FUZZ_FLAGS   := -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer

all: $(BINS)

# Keep the object files make would otherwise delete as intermediates
# (no `rm build/obj/…` after a build, no rebuild of them next time).
.SECONDARY:

# The vendor side: liblicd-client, licd-check (docs/CLIENT.md).
include client/client.mk

$(BUILD)/obj/%.o: fcgi/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/liblicd.a: $(patsubst fcgi/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
	$(AR) rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/obj/%.o $(BUILD)/liblicd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/revoke: $(BUILD)/obj/admin.o $(BUILD)/liblicd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/licctl: $(patsubst fcgi/%.c,$(BUILD)/obj/%.o,$(LICCTL_SRC)) $(BUILD)/liblicd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/asan/bin/licctl: $(patsubst fcgi/%.c,$(BUILD)/asan/obj/%.o,$(LICCTL_SRC)) $(BUILD)/asan/liblicd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

$(patsubst fcgi/%.c,$(BUILD)/obj/%.o,$(LICCTL_SRC)) \
$(patsubst fcgi/%.c,$(BUILD)/asan/obj/%.o,$(LICCTL_SRC)): fcgi/licctl/cli.h

# Sanitizer builds: the C unit tests always, the programs for `make test`.
$(BUILD)/asan/obj/%.o: fcgi/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN) -c -o $@ $<

$(BUILD)/asan/liblicd.a: $(patsubst fcgi/%.c,$(BUILD)/asan/obj/%.o,$(LIB_SRC))
	$(AR) rcs $@ $^

$(BUILD)/asan/bin/%: $(BUILD)/asan/obj/%.o $(BUILD)/asan/liblicd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/asan/bin/revoke: $(BUILD)/asan/obj/admin.o $(BUILD)/asan/liblicd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/asan/unit/%: tests/unit/%.c tests/unit/unit.h tests/unit/keyfile.h $(BUILD)/asan/liblicd.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN) -o $@ $< $(BUILD)/asan/liblicd.a $(LDLIBS) -ljwt

$(BUILD)/fuzz/obj/%.o: fcgi/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) -std=c11 -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -c -o $@ $<

$(BUILD)/fuzz/liblicd.a: $(patsubst fcgi/%.c,$(BUILD)/fuzz/obj/%.o,$(LIB_SRC))
	$(AR) rcs $@ $^

$(BUILD)/fuzz/%: tests/fuzz/%.c $(BUILD)/fuzz/liblicd.a
	clang $(CPPFLAGS) -std=c11 -g -O1 $(FUZZ_FLAGS) -o $@ $< $(BUILD)/fuzz/liblicd.a $(LDLIBS)

# make fuzz FUZZ_SECONDS=300: each target for that long; crashes are kept
# under tests/fuzz/crashes/ and replayed by every later run.
fuzz: $(FUZZ)
	@set -e; mkdir -p tests/fuzz/crashes; for f in $(FUZZ); do \
		n=$$(basename $$f | sed 's/^fuzz_//'); mkdir -p $(BUILD)/fuzz/corpus/$$n; \
		echo "== $$n ($(FUZZ_SECONDS)s)"; \
		for c in tests/fuzz/crashes/$$n-*; do [ -e "$$c" ] && $$f "$$c"; done; \
		$$f -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=0 \
		    -artifact_prefix=tests/fuzz/crashes/$$n- \
		    $(BUILD)/fuzz/corpus/$$n tests/fuzz/corpus/$$n 2>&1 | tail -2; \
	done

asan: $(SAN_BINS)

unit: $(UNIT)
	@set -e; for t in $(UNIT); do echo "== $$t"; $$t; done

deps:
	@deploy/deps.sh

run: deps all
	@deploy/local.sh start $(RUN_DIR) $(PORT)
	@deploy/demo.sh $(RUN_DIR) $(PORT)

stop:
	@deploy/local.sh stop $(RUN_DIR)

status:
	@deploy/local.sh status $(RUN_DIR)

test: deps
	@tests/run.sh

# Two app hosts, a primary and a synchronous standby, nginx in front, in
# network namespaces (root): failover under load (tests/scale/scale.sh).
# make test runs it too.
scale-test: deps all
	@tests/scale/scale.sh

# Throughput and latency under wrk, with the nginx ceiling, a trivial
# FastCGI floor and the Express peer (docs/PERFORMANCE.md). Not a test.
LICENSES ?= 10000
bench: deps
	@BENCH_LICENSES=$(LICENSES) tests/bench/bench.sh

# One full integration pass with the programs under valgrind memcheck
# (slow; not part of make test, which uses ASan+UBSan builds).
valgrind: deps
	@VALGRIND=1 FUZZ_SECONDS=1 tests/run.sh

# sql/schema.sql: the schema of a new database as pg_dump prints it
# (tests/schema.py; the integration suite checks it is current).
schema: all
	@/usr/bin/python3 tests/schema.py

# Production install (Debian): programs in $(PREFIX)/lib/licd, licctl in
# $(PREFIX)/bin, migrations in $(PREFIX)/share/licd/sql (functions in its
# functions/), units, config
# skeleton. With DESTDIR set (packaging) no user is created.
PREFIX     ?= /usr
SYSTEMDDIR ?= /lib/systemd/system
install: all
	install -d $(DESTDIR)$(PREFIX)/lib/licd $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(PREFIX)/share/licd/sql/functions $(DESTDIR)$(SYSTEMDDIR) \
		$(DESTDIR)/etc/licd $(DESTDIR)/etc/nginx/sites-available
	for b in $(BINS); do case $$b in */licctl) ;; \
		*) install -m 0755 $$b $(DESTDIR)$(PREFIX)/lib/licd/ ;; esac; done
	install -m 0755 $(BUILD)/bin/licctl $(DESTDIR)$(PREFIX)/bin/licctl
	install -m 0644 sql/[0-9][0-9][0-9]_*.sql $(DESTDIR)$(PREFIX)/share/licd/sql/
	install -m 0644 sql/functions/*.sql $(DESTDIR)$(PREFIX)/share/licd/sql/functions/
	install -d $(DESTDIR)$(PREFIX)/share/licd/console
	install -m 0644 console/* $(DESTDIR)$(PREFIX)/share/licd/console/
	install -m 0644 systemd/*.service systemd/*.socket systemd/*.timer $(DESTDIR)$(SYSTEMDDIR)/
	for d in systemd/*.service.d; do install -d $(DESTDIR)$(SYSTEMDDIR)/$${d#systemd/}; \
		install -m 0644 $$d/*.conf $(DESTDIR)$(SYSTEMDDIR)/$${d#systemd/}/; done
	install -d $(DESTDIR)$(PREFIX)/share/doc/licd
	install -m 0644 README.md docs/*.md deploy/crontab.example deploy/licd.conf.example $(DESTDIR)$(PREFIX)/share/doc/licd/
	install -m 0644 nginx/licd.conf $(DESTDIR)/etc/nginx/sites-available/licd.conf
	[ -e $(DESTDIR)/etc/licd/licd.conf ] || install -m 0640 deploy/licd.conf.example $(DESTDIR)/etc/licd/licd.conf
	if [ -z "$(DESTDIR)" ]; then \
		id licd >/dev/null 2>&1 || useradd --system --home-dir /var/lib/licd --shell /usr/sbin/nologin licd; \
		install -d -o licd -g licd -m 0750 /var/log/licd; \
		install -d -m 0755 /var/lib/licd /var/lib/licd/www /var/lib/licd/www/.well-known; \
		install -d -o root -g licd -m 0750 /etc/licd/keys; \
		chgrp licd /etc/licd/licd.conf; \
		command -v systemctl >/dev/null && systemctl daemon-reload || true; \
	fi

# The Debian packages (debian/, debhelper): build/deb/licd_<version>_amd64.deb
# (the server), liblicd-client1 and liblicd-client-dev (the client library),
# built from a copy of this tree and checked by lintian (no errors).
# deb-test installs them on this machine, checks them and purges them (root;
# .ci/run runs it after make test).
DEB_VERSION = $(shell dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null)
DEB_ARCH    = $(shell dpkg-architecture -qDEB_HOST_ARCH 2>/dev/null)
DEB         = $(BUILD)/deb/licd_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_CLIENT  = $(BUILD)/deb/liblicd-client1_$(DEB_VERSION)_$(DEB_ARCH).deb \
	$(BUILD)/deb/liblicd-client-dev_$(DEB_VERSION)_$(DEB_ARCH).deb
deb:
	@rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/licd-$(DEB_VERSION)
	@tar --exclude=./build --exclude=./run --exclude=./.git -cf - . | \
		tar -xf - -C $(BUILD)/deb/licd-$(DEB_VERSION)
	cd $(BUILD)/deb/licd-$(DEB_VERSION) && \
		dpkg-buildpackage -b -us -uc -j2 > ../build.log 2>&1 || { tail -40 ../build.log; exit 1; }
	lintian --fail-on error $(DEB) $(DEB_CLIENT)
	@echo "built $(DEB) $(DEB_CLIENT)"

deb-test: deb
	@tests/deb-test.sh $(DEB) $(DEB_CLIENT)

clean:
	rm -rf $(BUILD)
