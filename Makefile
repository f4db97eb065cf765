# Sandbox: build, test and measure. `make test` and `make demo` work on a fresh Debian 12 clone: every target
# depends on what it needs, and `setup` installs what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := all
DOTNET ?= dotnet
CONFIGURATION ?= Release
BUILD := build
GUEST := $(BUILD)/guest
AGENT := $(BUILD)/agent/sandbox-agent
SHIM := $(BUILD)/shim/containerd-shim-sandbox-v2
CTL := $(BUILD)/ctl/sandboxctl
PREFIX ?= /usr/local
SETUP_STAMP := $(BUILD)/setup.stamp
KERNEL_DEB := /var/cache/sandbox/kernel/linux-image.deb
KERNEL_SOURCE_DEB := /var/cache/sandbox/kernel-source/linux-source.deb
OWN_KERNEL := $(BUILD)/kernel
# CONTAINERD=1.6|1.7|2: which release of the test matrix `make demo` runs (setup extracts them under
# /var/cache/sandbox/containerd); unset: the system's containerd. `make test` and `make bench` run every release.
CONTAINERD ?=
WITH_CONTAINERD = $(if $(CONTAINERD),PATH=/var/cache/sandbox/containerd/$(CONTAINERD)/bin:$$PATH)
SOURCES_OF = $(shell find $(1) \( -name '*.cs' -o -name '*.csproj' -o -name '*.proto' \) -not -path '*/obj/*' -not -path '*/bin/*')

.PHONY: all setup agent shim ctl kernel image build test conformance bench soak load demo install clean

all: image build shim ctl

## setup: install host packages, vhost-device-vsock and the guest kernel package (idempotent)
setup: $(SETUP_STAMP)
$(SETUP_STAMP): images/setup-host.sh images/debian-archive.sh images/guest-packages
	images/setup-host.sh
	@mkdir -p $(BUILD) && touch $@

## agent: the in-guest agent, Native AOT
agent: $(AGENT)
$(AGENT): $(call SOURCES_OF,agent) Directory.Build.props | $(SETUP_STAMP)
	$(DOTNET) publish agent/Sandbox.Agent/Sandbox.Agent.csproj -c Release -r linux-x64 -o $(BUILD)/agent -nologo -v quiet
	@touch $@

## shim: containerd-shim-sandbox-v2 and sandbox-jailer (which confines QEMU and its helpers), Native AOT
shim: $(SHIM)
$(SHIM): $(call SOURCES_OF,shim agent/Sandbox.Agent.Protocol agent/Sandbox.Native agent/Sandbox.Vsock hypervisor-adapters) Directory.Build.props | $(SETUP_STAMP)
	$(DOTNET) publish shim/Sandbox.Shim/Sandbox.Shim.csproj -c Release -r linux-x64 -o $(BUILD)/shim -nologo -v quiet
	$(DOTNET) publish hypervisor-adapters/Sandbox.Jailer/Sandbox.Jailer.csproj -c Release -r linux-x64 -o $(BUILD)/shim -nologo -v quiet
	@touch $@

## ctl: sandboxctl, the operator's CLI
ctl: $(CTL)
$(CTL): $(call SOURCES_OF,shim agent/Sandbox.Agent.Protocol agent/Sandbox.Native agent/Sandbox.Vsock hypervisor-adapters) Directory.Build.props | $(SETUP_STAMP)
	$(DOTNET) publish shim/Sandbox.Ctl/Sandbox.Ctl.csproj -c Release -o $(BUILD)/ctl -nologo -v quiet
	@touch $@

## kernel: our guest kernel from Debian's linux-source and images/kernel/sandbox-guest.config; cached under
## /var/cache/sandbox/kernel-build by its inputs (a first build takes ~15 min on 2 cores, then seconds)
kernel: $(OWN_KERNEL)/vmlinux
$(OWN_KERNEL)/vmlinux: images/build-kernel.sh images/kernel/sandbox-guest.config $(wildcard images/kernel/patches/*.patch) $(KERNEL_SOURCE_DEB) $(SETUP_STAMP)
	images/build-kernel.sh $(OWN_KERNEL)

## image: our kernel and Debian's generic one (PVH vmlinux), each with its initramfs (busybox, crun, the agent);
## rebuilt only when an input changed
image: $(GUEST)/initramfs.cpio
$(GUEST)/initramfs.cpio: $(AGENT) $(wildcard images/*) $(KERNEL_DEB) $(OWN_KERNEL)/vmlinux $(SETUP_STAMP)
	images/build-image.sh $(GUEST) $(AGENT) $(OWN_KERNEL)

# setup downloads the guest kernel package and the kernel source; the image is rebuilt when they change.
$(KERNEL_DEB) $(KERNEL_SOURCE_DEB): | $(SETUP_STAMP) ;

## build: every .NET project of the solution
build: $(SETUP_STAMP)
	$(DOTNET) build Sandbox.sln -c $(CONFIGURATION) -nologo -v quiet

## test: unit, integration (real VMs) and end-to-end (real containerd) tests
test: image build shim ctl
	SANDBOX_SHIM_BINARY=$(abspath $(SHIM)) SANDBOXCTL_BINARY=$(abspath $(CTL)) tests/run-tests.sh $(CONFIGURATION)

## conformance: critest with runc and with the sandbox handler on each containerd release; fails on an undocumented gap
conformance: image build shim
	SANDBOX_SHIM_BINARY=$(abspath $(SHIM)) tests/run-conformance.sh $(CONFIGURATION)

## bench: medians of boot, agent readiness and their ratios against the bare-boot floor
bench: image build shim ctl
	SANDBOX_SHIM_BINARY=$(abspath $(SHIM)) SANDBOXCTL_BINARY=$(abspath $(CTL)) $(DOTNET) run --project tests/Sandbox.Bench -c $(CONFIGURATION) --no-build

## soak: fault cycles (kill -9 of shim, QEMU, vsock daemon; containerd restart; guest panic and freeze) on containerd
## 1.6 and 2.x; prints "soak: cycles N leaks 0 lost_exits 0 hung 0". SOAK_CYCLES (default 100), SOAK_SEED (default: clock)
soak: image build shim
	SANDBOX_SHIM_BINARY=$(abspath $(SHIM)) $(DOTNET) run --project tests/Sandbox.Soak -c $(CONFIGURATION) --no-build -- $(or $(SOAK_CYCLES),100) $(SOAK_SEED)

## load: 200 sequential container lives (ctr run -d, kill, rm) through runc, then ours, per containerd release of the matrix; the slope per
## run of containerd's and the shim's memory, descriptors and threads as bench: lines. LOAD_RUNS (default 200). Then
## 20 CRI pods at once (Category=Load of the CRI tests) on containerd $(CONTAINERD) (default 2), its bench: lines too.
load: image build shim
	SANDBOX_SHIM_BINARY=$(abspath $(SHIM)) $(DOTNET) run --project tests/Sandbox.Soak -c $(CONFIGURATION) --no-build -- load-seq $(or $(LOAD_RUNS),200)
	set -o pipefail; SANDBOX_SHIM_BINARY=$(abspath $(SHIM)) PATH=/var/cache/sandbox/containerd/$(or $(CONTAINERD),2)/bin:$$PATH \
	  $(DOTNET) test tests/Sandbox.Cri.Tests -c $(CONFIGURATION) --no-build -nologo --filter Category=Load --logger "console;verbosity=detailed" \
	  | tee $(BUILD)/load-pods.log | sed -n 's/^ *\(bench: \)/\1/p; s/^ *\(Passed\|Failed\) /\1 /p' \
	  || { echo "the 20-pod load test failed; its whole output: $(BUILD)/load-pods.log"; exit 1; }

## demo: a private containerd runs `uname -a` in a VM through the shim, next to the host's, then stops everything
demo: image build shim
	$(WITH_CONTAINERD) $(DOTNET) run --project tests/Sandbox.Demo -c $(CONFIGURATION) --no-build -- $(SHIM)

## install: the shim and sandboxctl on PATH, the guest image and a default configuration in fixed places
install: image shim ctl
	install -D -m 0755 $(SHIM) $(DESTDIR)$(PREFIX)/bin/containerd-shim-sandbox-v2
	install -D -m 0755 $(BUILD)/shim/sandbox-jailer $(DESTDIR)$(PREFIX)/bin/sandbox-jailer
	install -d $(DESTDIR)$(PREFIX)/lib/sandbox/sandboxctl
	cp -a $(BUILD)/ctl/. $(DESTDIR)$(PREFIX)/lib/sandbox/sandboxctl/
	ln -sf $(PREFIX)/lib/sandbox/sandboxctl/sandboxctl $(DESTDIR)$(PREFIX)/bin/sandboxctl
	install -D -m 0644 $(GUEST)/vmlinux $(DESTDIR)/usr/share/sandbox/guest/vmlinux
	install -D -m 0644 $(GUEST)/initramfs.cpio $(DESTDIR)/usr/share/sandbox/guest/initramfs.cpio
	install -D -m 0644 $(GUEST)/kernel-release $(DESTDIR)/usr/share/sandbox/guest/kernel-release
	install -D -m 0644 $(GUEST)/kernel-config $(DESTDIR)/usr/share/sandbox/guest/kernel-config
	install -D -m 0644 $(GUEST)/vmlinux-generic $(DESTDIR)/usr/share/sandbox/guest/vmlinux-generic
	install -D -m 0644 $(GUEST)/initramfs-generic.cpio $(DESTDIR)/usr/share/sandbox/guest/initramfs-generic.cpio
	install -D -m 0644 $(GUEST)/kernel-release-generic $(DESTDIR)/usr/share/sandbox/guest/kernel-release-generic
	install -D -m 0644 $(GUEST)/manifest.txt $(DESTDIR)/usr/share/sandbox/guest/manifest.txt
	@if [ -f $(DESTDIR)/etc/sandbox/configuration.toml ]; then echo "kept the existing /etc/sandbox/configuration.toml"; \
	 else install -D -m 0644 shim/configuration.toml $(DESTDIR)/etc/sandbox/configuration.toml; fi
	@echo; echo "Installed. Add this to containerd's config.toml (version 2, containerd 1.6/1.7) and restart containerd:"; echo
	@echo '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.sandbox]'
	@echo '  runtime_type = "io.containerd.sandbox.v2"'
	@echo '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.sandbox.options]'
	@echo '    ConfigPath = "/etc/sandbox/configuration.toml"'
	@echo; echo "Then: ctr run --rm --runtime io.containerd.sandbox.v2 IMAGE ID CMD, or a RuntimeClass with handler: sandbox."

clean:
	rm -rf $(BUILD)
	find . -type d \( -name bin -o -name obj \) -prune -exec rm -rf {} +
