# InvertNN: the two commands.
#   make run   installs the Debian packages if missing, builds in release, runs `invertnn train`
#   make test  installs the Debian packages if missing, runs the test suite
# Extra arguments for the trainer: make run ARGS="--epochs 10 --precision double"

SHELL := /bin/bash
SWIFT ?= swift
# openmpi-bin: mpirun and libmpi for the data-parallel tests (loaded at run time; no headers needed).
DEB_PACKAGES := libopenblas-dev liblapacke-dev zlib1g-dev openmpi-bin
ARGS ?=

.PHONY: run test deps build docs-check

# Installs only what is missing; apt-get update runs first when something is installed.
deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg -s "$$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing Debian packages:$$missing" >&2; \
	  sudo=""; if [ "$$(id -u)" != 0 ]; then sudo=sudo; fi; \
	  $$sudo apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y --no-install-recommends $$missing; \
	fi

# Build output goes to stderr so that stdout of `make run` is only the trainer's JSON line.
build: deps
	@$(SWIFT) build -c release --product invertnn >&2

run: build
	@"$$($(SWIFT) build -c release --show-bin-path)/invertnn" train $(ARGS)

test: deps
	OPENBLAS_NUM_THREADS=1 $(SWIFT) test

# The DocC catalog with warnings as errors (not in .ci/run: about 40 s warm, 2.5 min cold).
docs-check:
	.ci/docs
