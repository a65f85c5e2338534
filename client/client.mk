# liblicd-client, licd-check, the example, their tests, fuzz targets and
# bench: the vendor side (docs/CLIENT.md). Included by the Makefile. The
# library shares no code with fcgi/lib; its only libraries are libcrypto,
# json-c and libcurl.
#
# The configuration compiled into licd-check and the example:
#   make LICD_CLIENT_URL=https://licensing.example.com \
#        LICD_CLIENT_ISSUER=https://licensing.example.com \
#        LICD_CLIENT_JWKS=path/to/jwks.json LICD_CLIENT_PRODUCT=acme
# Without LICD_CLIENT_JWKS they embed no keys and refuse to run.

CLIENT_PKGS   := json-c libcurl libcrypto
CLIENT_SRC    := client/licd.c client/jws.c client/state.c client/http.c
CLIENT_HDR    := client/licd.h client/internal.h
CLIENT_CFLAGS := -std=c11 -pedantic -Wall -Wextra -Werror -pthread -D_GNU_SOURCE \
	-fPIC $(shell pkg-config --cflags $(CLIENT_PKGS) 2>/dev/null)
CLIENT_LIBS   := $(shell pkg-config --libs $(CLIENT_PKGS) 2>/dev/null || \
	echo -ljson-c -lcurl -lcrypto) -pthread
CLIENT_OPT    ?= -O2 -g
CLIENT_LDFLAGS ?=
CLIENT_SOVER  := 1
# Where install-client puts the library and header, and what the installed
# licd-client.pc says (a Debian build passes the multiarch directory).
CLIENT_LIBDIR ?= $(PREFIX)/lib
CLIENT_INCDIR ?= $(PREFIX)/include

LICD_CLIENT_URL     ?= http://127.0.0.1:8080
LICD_CLIENT_ISSUER  ?= $(LICD_CLIENT_URL)
LICD_CLIENT_JWKS    ?=
LICD_CLIENT_PRODUCT ?= licd-product
CLIENT_EMBED        ?= $(BUILD)/client/embed/licd-embed.h

CLIENT_LIB   := $(BUILD)/lib/liblicd-client.a
CLIENT_SO    := $(BUILD)/lib/liblicd-client.so
CLIENT_PC    := $(BUILD)/lib/pkgconfig/licd-client.pc
CLIENT_ASAN  := $(BUILD)/asan/lib/liblicd-client.a
CLIENT_BINS  := $(BUILD)/bin/licd-check $(BUILD)/bin/licd-gate-example
CLIENT_UNIT  := $(BUILD)/asan/unit/test_client
CLIENT_FUZZ  := $(BUILD)/fuzz/fuzz_client_cache $(BUILD)/fuzz/fuzz_client_answer

.PHONY: client client-embed licd-check-embedded client-bench

all: client
client: $(CLIENT_LIB) $(CLIENT_SO) $(CLIENT_PC) $(CLIENT_BINS)
asan: $(CLIENT_ASAN)

$(BUILD)/client/obj/%.o: client/%.c $(CLIENT_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CLIENT_CFLAGS) $(CLIENT_OPT) -c -o $@ $<

$(BUILD)/client/asan/%.o: client/%.c $(CLIENT_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CLIENT_CFLAGS) -O1 -g $(SAN) -c -o $@ $<

$(CLIENT_LIB): $(patsubst client/%.c,$(BUILD)/client/obj/%.o,$(CLIENT_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(CLIENT_ASAN): $(patsubst client/%.c,$(BUILD)/client/asan/%.o,$(CLIENT_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(CLIENT_SO): $(patsubst client/%.c,$(BUILD)/client/obj/%.o,$(CLIENT_SRC))
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,liblicd-client.so.$(CLIENT_SOVER) -Wl,--as-needed \
		$(CLIENT_LDFLAGS) -o $@.$(CLIENT_SOVER) $^ $(CLIENT_LIBS)
	ln -sf liblicd-client.so.$(CLIENT_SOVER) $@

# licd-client.pc from client/licd-client.pc.in: PC_SED PREFIX LIBDIR INCDIR.
# The build tree's names the build tree (PKG_CONFIG_PATH=build/lib/pkgconfig
# builds against it); install-client writes its own with the install paths.
PC_SED = sed -e 's|@PREFIX@|$(1)|' -e 's|@LIBDIR@|$(2)|' -e 's|@INCLUDEDIR@|$(3)|' \
	-e 's|@VERSION@|1.0.0|' client/licd-client.pc.in
$(CLIENT_PC): client/licd-client.pc.in client/client.mk
	@mkdir -p $(dir $@)
	$(call PC_SED,$(CURDIR),$(abspath $(BUILD)/lib),$(CURDIR)/client) > $@

client-embed:
	@client/embed.sh $(CLIENT_EMBED) '$(LICD_CLIENT_URL)' '$(LICD_CLIENT_ISSUER)' \
		'$(LICD_CLIENT_JWKS)' '$(LICD_CLIENT_PRODUCT)'
$(CLIENT_EMBED): client-embed

$(BUILD)/bin/licd-check: client/licd-check.c client/licd.h $(CLIENT_EMBED) $(CLIENT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CLIENT_CFLAGS) $(CLIENT_OPT) -Iclient -I$(dir $(CLIENT_EMBED)) \
		-o $@ $< $(CLIENT_LIB) $(CLIENT_LDFLAGS) $(CLIENT_LIBS)

$(BUILD)/bin/licd-gate-example: client/examples/gate.c client/licd.h $(CLIENT_EMBED) $(CLIENT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CLIENT_CFLAGS) $(CLIENT_OPT) -Iclient -I$(dir $(CLIENT_EMBED)) \
		-o $@ $< $(CLIENT_LIB) $(CLIENT_LDFLAGS) $(CLIENT_LIBS)

# The tests' licd-check: sanitizer build with a given embedded
# configuration and the injectable clock (LICD_CHECK_NOW), at
# LICD_CHECK_OUT. Never installed.
licd-check-embedded: $(CLIENT_ASAN)
	@test -n "$(LICD_CHECK_OUT)" || { echo "set LICD_CHECK_OUT"; exit 2; }
	@client/embed.sh $(LICD_CHECK_OUT).embed/licd-embed.h '$(LICD_CLIENT_URL)' \
		'$(LICD_CLIENT_ISSUER)' '$(LICD_CLIENT_JWKS)' '$(LICD_CLIENT_PRODUCT)'
	$(CC) $(CLIENT_CFLAGS) -O1 -g $(SAN) -DLICD_CHECK_TEST_CLOCK -Iclient \
		-I$(LICD_CHECK_OUT).embed -o $(LICD_CHECK_OUT) client/licd-check.c \
		$(CLIENT_ASAN) $(CLIENT_LIBS)

# Unit tests: the library's sources compiled into the test (it reaches
# the internal functions), signing vectors made with the server's signer
# (fcgi/lib, test side only) and OpenSSL directly.
UNIT += $(CLIENT_UNIT)
unit: $(CLIENT_UNIT)
$(BUILD)/asan/unit/test_client: client/tests/test_client.c client/tests/handle.h $(CLIENT_HDR) $(CLIENT_ASAN) \
		$(BUILD)/asan/liblicd.a tests/unit/unit.h tests/unit/keyfile.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CLIENT_CFLAGS) -O1 -g $(SAN) -Iclient -Itests/unit -o $@ $< \
		$(CLIENT_ASAN) $(BUILD)/asan/liblicd.a $(LDLIBS)

FUZZ += $(CLIENT_FUZZ)
fuzz: $(CLIENT_FUZZ)
$(BUILD)/fuzz/fuzz_client_%: client/fuzz/fuzz_client_%.c client/fuzz/fuzz_client.h client/tests/handle.h $(CLIENT_SRC) $(CLIENT_HDR)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -DLCL_NO_FSYNC -g -O1 $(FUZZ_FLAGS) -Iclient \
		$(shell pkg-config --cflags $(CLIENT_PKGS) 2>/dev/null) -o $@ $< \
		$(CLIENT_SRC) $(CLIENT_LIBS)

$(BUILD)/bench/bench_check: client/bench/bench_check.c client/tests/handle.h $(CLIENT_LIB) client/licd.h
	@mkdir -p $(dir $@)
	$(CC) $(CLIENT_CFLAGS) -O2 -Iclient -o $@ $< $(CLIENT_LIB) $(CLIENT_LIBS)

# licd_check from a cached lease, alone (make bench also runs it).
client-bench: $(BUILD)/bench/bench_check
	@$(BUILD)/bench/bench_check

# The client's unit tests and licd-check under valgrind memcheck (part of
# make valgrind).
.PHONY: client-valgrind
valgrind: client-valgrind
client-valgrind: $(BUILD)/client/test_client_vg $(BUILD)/client/vg/licd-check
	valgrind --quiet --error-exitcode=1 --leak-check=full \
		--show-leak-kinds=definite,indirect \
		--errors-for-leak-kinds=definite,indirect \
		--suppressions=tests/valgrind.supp $(BUILD)/client/test_client_vg
	client/tests/valgrind-check.sh $(BUILD)/client/vg/licd-check \
		client/tests/vectors.json tests/valgrind.supp
# licd-check without sanitizers, with the PyJWT vectors' keys and issuer
# compiled in and licd at an address nothing listens on.
$(BUILD)/client/vg/licd-check: client/licd-check.c client/licd.h $(CLIENT_LIB) client/tests/vectors.json
	@mkdir -p $(dir $@)
	python3 -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))["jwks"], sys.stdout)' \
		client/tests/vectors.json > $(dir $@)jwks.json
	client/embed.sh $(dir $@)embed/licd-embed.h http://127.0.0.1:9 \
		https://licensing.example.com $(dir $@)jwks.json client-vg
	$(CC) $(CLIENT_CFLAGS) -O1 -g -Iclient -I$(dir $@)embed -o $@ \
		client/licd-check.c $(CLIENT_LIB) $(CLIENT_LIBS)
$(BUILD)/client/test_client_vg: client/tests/test_client.c client/tests/handle.h $(CLIENT_HDR) $(CLIENT_LIB) $(BUILD)/liblicd.a tests/unit/unit.h tests/unit/keyfile.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CLIENT_CFLAGS) -O1 -g -Iclient -Itests/unit -o $@ $< \
		$(CLIENT_LIB) $(BUILD)/liblicd.a $(LDLIBS)

# The library, header, pkg-config file and licd-check for a vendor's
# build machine (not part of `make install`, which installs the server):
# make install-client PREFIX=/usr/local [DESTDIR=...]. debian/rules
# installs the same into the liblicd-client1 and liblicd-client-dev
# packages, without licd-check (each vendor builds it with its own keys).
.PHONY: install-client
install-client: client
	install -d $(DESTDIR)$(CLIENT_LIBDIR)/pkgconfig $(DESTDIR)$(CLIENT_INCDIR) \
		$(DESTDIR)$(PREFIX)/bin
	install -m 0644 $(CLIENT_LIB) $(DESTDIR)$(CLIENT_LIBDIR)/
	install -m 0644 $(CLIENT_SO).$(CLIENT_SOVER) $(DESTDIR)$(CLIENT_LIBDIR)/
	ln -sf liblicd-client.so.$(CLIENT_SOVER) $(DESTDIR)$(CLIENT_LIBDIR)/liblicd-client.so
	install -m 0644 client/licd.h $(DESTDIR)$(CLIENT_INCDIR)/licd.h
	$(call PC_SED,$(PREFIX),$(CLIENT_LIBDIR),$(CLIENT_INCDIR)) \
		> $(DESTDIR)$(CLIENT_LIBDIR)/pkgconfig/licd-client.pc
	install -m 0755 $(BUILD)/bin/licd-check $(DESTDIR)$(PREFIX)/bin/
