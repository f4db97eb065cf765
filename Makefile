# Sandbox: build, test and measure. `make test` and `make demo` work on a fresh Debian 12 clone: every target
# depends on what it needs, and `setup` installs what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := all
DOTNET ?= dotnet
CONFIGURATION ?= Release
BUILD := build
GUEST := $(BUILD)/guest
AGENT := $(BUILD)/agent/sandbox-agent
SETUP_STAMP := $(BUILD)/setup.stamp
SOURCES_OF = $(shell find $(1) \( -name '*.cs' -o -name '*.csproj' -o -name '*.proto' \) -not -path '*/obj/*' -not -path '*/bin/*')

.PHONY: all setup agent image build test bench demo install clean

all: image build

## setup: install host packages, vhost-device-vsock and the guest kernel package (idempotent)
setup: $(SETUP_STAMP)
$(SETUP_STAMP): images/setup-host.sh
	images/setup-host.sh
	@mkdir -p $(BUILD) && touch $@

## agent: the in-guest agent, Native AOT
agent: $(AGENT)
$(AGENT): $(call SOURCES_OF,agent) Directory.Build.props | $(SETUP_STAMP)
	$(DOTNET) publish agent/Sandbox.Agent/Sandbox.Agent.csproj -c Release -r linux-x64 -o $(BUILD)/agent -nologo -v quiet
	@touch $@

## image: guest kernel (PVH vmlinux) and initramfs with busybox, crun and the agent; rebuilt only when an input changed
image: $(GUEST)/initramfs.cpio
$(GUEST)/initramfs.cpio: $(AGENT) $(wildcard images/*) $(SETUP_STAMP)
	images/build-image.sh $(GUEST) $(AGENT)

## build: every .NET project of the solution
build: $(SETUP_STAMP)
	$(DOTNET) build Sandbox.sln -c $(CONFIGURATION) -nologo -v quiet

## test: unit, integration (real VMs) and end-to-end (real containerd) tests
test: image build
	tests/run-tests.sh $(CONFIGURATION)

## bench: medians of boot, agent readiness and their ratios against the bare-boot floor
bench: image build
	$(DOTNET) run --project tests/Sandbox.Bench -c $(CONFIGURATION) --no-build

clean:
	rm -rf $(BUILD)
	find . -type d \( -name bin -o -name obj \) -prune -exec rm -rf {} +
