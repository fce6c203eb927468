# ondemand: top-level build. `make demo` and `make test` are the only commands
# needed on a fresh Debian 12 machine (as root): both install packages and build first.
# `make deb` builds the Debian packages into build/deb/ (docs/install.md).

SHELL := /bin/bash
TOP := $(CURDIR)
BUILD := $(TOP)/build
BIN := $(BUILD)/bin
NGX_BUILD := $(BUILD)/nginx
MODULE := $(BUILD)/modules/ngx_http_ondemand_module.so
JOBS ?= $(shell nproc)
# The one place the version is written: debian/changelog's first line (CMakeLists.txt reads it too).
VERSION := $(shell head -n1 $(TOP)/debian/changelog | cut -d' ' -f2 | tr -d '()')

PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all deps test-deps build helperd module test unit-test integration-test e2e-test demo bench \
        format lint clean install uninstall deb test-deb version demo-deps bench-deps

all: build

# Packages by purpose (scripts/deps.sh): `make deps` only what building needs.
deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh build test

version:
	@echo $(VERSION)

build: helperd module

helperd:
	cmake -S $(TOP) -B $(BUILD)/cmake -DONDEMAND_BIN_DIR=$(BIN) >/dev/null
	cmake --build $(BUILD)/cmake -j$(JOBS)

# The module is built against Debian's nginx-dev sources so that it loads into
# Debian's /usr/sbin/nginx (configure with the same flags, build only the module).
module: $(MODULE)

MODULE_SOURCES := config scripts/ngx-cc $(wildcard ngx_module/*.cpp ngx_module/*.h proto/*.cpp proto/*.h)

$(NGX_BUILD)/Makefile: config scripts/ngx-cc
	rm -rf $(NGX_BUILD)
	mkdir -p $(BUILD)
	cp -a /usr/share/nginx/src $(NGX_BUILD)
	cd $(NGX_BUILD) && . ./conf_flags && \
	  ./configure "$${NGX_CONF_FLAGS[@]}" --add-dynamic-module=$(TOP) >configure.log 2>&1 || \
	  { tail -20 configure.log; exit 1; }
	touch $@

$(MODULE): $(NGX_BUILD)/Makefile $(MODULE_SOURCES)
	$(MAKE) -C $(NGX_BUILD) -f objs/Makefile modules
	mkdir -p $(dir $@)
	cp $(NGX_BUILD)/objs/ngx_http_ondemand_module.so $@

unit-test: helperd
	$(BIN)/ondemand-unit-tests

test: test-deps build
	scripts/run-tests

# libFuzzer targets (tests/fuzz/, clang): the protocol codec (docs/PROTOCOL.md), helperd's config
# reader, app files + gen-nginx, and helperd's app_core state machine. Each runs FUZZ_SECONDS on a
# copy of its seed corpus tests/fuzz/corpus-NAME/ in build/fuzz-corpus/NAME (kept between runs)
# and writes a crash's input to build/fuzz-artifacts/NAME-*, so the repository stays clean.
# `make fuzz-NAME` runs one; FUZZ_MAX_LEN per target (8192 for the codec: past its 4096-byte
# line limit).
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := protocol config app_file app_core
FUZZ_CXX := clang++ -std=c++20 -gline-tables-only -O1 -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=all \
  -DONDEMAND_VERSION='"$(VERSION)"'
FUZZ_MAX_LEN_protocol := 8192
FUZZ_MAX_LEN_config := 4096
FUZZ_MAX_LEN_app_file := 4096
FUZZ_MAX_LEN_app_core := 1024

.PHONY: fuzz fuzz-build $(addprefix fuzz-,$(FUZZ_TARGETS))

$(BIN)/ondemand-fuzz-protocol: tests/fuzz/fuzz_protocol.cpp proto/ondemand_protocol.cpp proto/ondemand_protocol_text.cpp proto/ondemand_protocol.h
	mkdir -p $(dir $@)
	$(FUZZ_CXX) -I $(TOP)/proto -o $@ tests/fuzz/fuzz_protocol.cpp proto/ondemand_protocol.cpp proto/ondemand_protocol_text.cpp

# toml++ as Debian ships it: the release shared library (TOML_HEADER_ONLY=0, as its CMake package).
$(BIN)/ondemand-fuzz-config: tests/fuzz/fuzz_config.cpp helperd/config.cpp helperd/config.h \
    helperd/options.cpp helperd/options.h helperd/log.cpp helperd/log.h proto/ondemand_protocol.cpp proto/ondemand_protocol_text.cpp
	mkdir -p $(dir $@)
	$(FUZZ_CXX) -DTOML_HEADER_ONLY=0 -DTOML_SHARED_LIB=1 -I $(TOP)/helperd -I $(TOP)/proto -o $@ \
	  tests/fuzz/fuzz_config.cpp helperd/config.cpp helperd/options.cpp helperd/log.cpp \
	  proto/ondemand_protocol.cpp proto/ondemand_protocol_text.cpp -ltomlplusplus -lfmt -lsystemd

$(BIN)/ondemand-fuzz-app_file: tests/fuzz/fuzz_app_file.cpp ctl/app_file.cpp ctl/app_file.h \
    ctl/app_tenancy.cpp ctl/app_tenancy.h ctl/env_file.cpp ctl/env_file.h ctl/atomic_file.cpp \
    ctl/atomic_file.h ctl/gen_nginx.cpp ctl/gen_nginx.h proto/ondemand_protocol.cpp \
    proto/ondemand_protocol_text.cpp
	mkdir -p $(dir $@)
	$(FUZZ_CXX) -I $(TOP)/ctl -I $(TOP)/proto -o $@ tests/fuzz/fuzz_app_file.cpp ctl/app_file.cpp \
	  ctl/app_tenancy.cpp ctl/env_file.cpp ctl/atomic_file.cpp ctl/gen_nginx.cpp \
	  proto/ondemand_protocol.cpp proto/ondemand_protocol_text.cpp

$(BIN)/ondemand-fuzz-app_core: tests/fuzz/fuzz_app_core.cpp helperd/app_core.cpp helperd/app_core.h \
    proto/ondemand_protocol.cpp proto/ondemand_protocol_text.cpp
	mkdir -p $(dir $@)
	$(FUZZ_CXX) -I $(TOP)/helperd -I $(TOP)/proto -o $@ tests/fuzz/fuzz_app_core.cpp \
	  helperd/app_core.cpp proto/ondemand_protocol.cpp proto/ondemand_protocol_text.cpp

fuzz-build: $(addprefix $(BIN)/ondemand-fuzz-,$(FUZZ_TARGETS))

$(addprefix fuzz-,$(FUZZ_TARGETS)): fuzz-%: $(BIN)/ondemand-fuzz-%
	mkdir -p $(BUILD)/fuzz-corpus/$* $(BUILD)/fuzz-artifacts
	cp tests/fuzz/corpus-$*/* $(BUILD)/fuzz-corpus/$*/
	$< -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN_$*) -print_final_stats=1 \
	  -artifact_prefix=$(BUILD)/fuzz-artifacts/$*- $(BUILD)/fuzz-corpus/$*

fuzz: $(addprefix fuzz-,$(FUZZ_TARGETS))

# ASan + UBSan build (cmake -DONDEMAND_SANITIZE=ON) in build/asan: helperd, ondemandctl, the test
# app and the unit and integration tests; `make sanitize-test` runs those tests with it
# (scripts/sanitize-test; run-tests does too).
ASAN_BUILD := $(BUILD)/asan

.PHONY: sanitize sanitize-test

sanitize:
	cmake -S $(TOP) -B $(ASAN_BUILD)/cmake -DONDEMAND_SANITIZE=ON -DONDEMAND_BIN_DIR=$(ASAN_BUILD)/bin >/dev/null
	cmake --build $(ASAN_BUILD)/cmake -j$(JOBS) --target ondemand-helperd ondemandctl \
	  ondemand-testapp ondemand-unit-tests ondemand-integration-tests

sanitize-test: sanitize
	scripts/sanitize-test

demo-deps:
	@scripts/deps.sh build demo

demo: demo-deps build
	scripts/demo

# PREFIX and DESTDIR aware; copies files only (docs/install.md says what to run next).
install: build
	PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) scripts/install.sh install

uninstall:
	PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) scripts/install.sh uninstall

bench-deps:
	@scripts/deps.sh build bench

bench: bench-deps build
	bench/run

# The Debian packages (debian/), built with dpkg-buildpackage in a copy of the tree under
# build/deb/ (the repository stays clean); the .debs land in build/deb/. `make test-deb`
# installs them into a fresh Debian 12 root, checks them, removes and purges them
# (scripts/test-deb).
deb: deps
	scripts/build-deb

test-deb: test-deps deb
	scripts/test-deb

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h' | grep -v '^ngx_module/ngx_http_')

# clang-format everywhere but the nginx-style module; clang-tidy (.clang-tidy) on the daemon,
# the codec, ondemandctl and the module's state machine. (clang-tidy 14 cannot parse the test
# app's Boost.Asio coroutines with GCC 12's library, so tests/app is formatted but not tidied.)
TIDY_SOURCES = $$(git ls-files 'helperd/*.cpp' 'proto/*.cpp' 'ctl/*.cpp' 'ngx_module/ondemand_*.cpp')

lint: helperd
	clang-format --dry-run --Werror $$(git ls-files '*.cpp' '*.h' | grep -v '^ngx_module/ngx_http_')
	@# one file per run: clang-tidy 14 misparses fmt's headers after several files in one run
	echo $(TIDY_SOURCES) | xargs -n1 -P$(JOBS) clang-tidy -p $(BUILD)/cmake --quiet

clean:
	rm -rf $(BUILD)
