using Sandbox.Agent.Protocol;
using Sandbox.IntegrationTests.Support;

namespace Sandbox.IntegrationTests;

/// <summary>Tests that need a VM of their own.</summary>
public sealed class VmLifecycleTests
{
    [Fact]
    public async Task Stopping_a_VM_leaves_no_process_socket_or_state_behind()
    {
        var stateRoot = TestVm.NewStateRoot();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            var vm = await TestVm.BootAsync(stateRoot, "lifecycle", timeout.Token);
            int qemuPid = vm.Hypervisor.Pid ?? throw new InvalidOperationException("no QEMU pid after boot");
            var statePath = vm.State.Path;
            Assert.True(HostProcesses.IsAlive(qemuPid));
            Assert.NotEmpty(HostProcesses.WithCommandLineContaining(statePath));
            await vm.Agent.Client.HealthAsync(new HealthRequest(), deadline: DateTime.UtcNow.AddSeconds(30));

            await vm.DisposeAsync();

            Assert.False(HostProcesses.IsAlive(qemuPid), $"QEMU pid {qemuPid} still runs after stop");
            Assert.Empty(HostProcesses.WithCommandLineContaining(statePath));
            Assert.False(Directory.Exists(statePath), $"{statePath} still exists after stop");
            Assert.Empty(Directory.EnumerateFileSystemEntries(stateRoot, "*", SearchOption.AllDirectories));
        }
        finally
        {
            Directory.Delete(stateRoot, recursive: true);
        }
    }

    /// <summary>DestroySandbox is the last call before the power-off: a container that exited with nothing left in its
    /// cgroup is not run through `crun delete` (its record and cgroup go with the VM: one crun run less in the last
    /// container's delete), one with a process left is, and the share still unmounts.</summary>
    [Fact]
    public async Task DestroySandbox_runs_crun_delete_only_for_containers_with_a_process_left()
    {
        var stateRoot = TestVm.NewStateRoot();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await using var vm = await TestVm.BootAsync(stateRoot, "destroy", timeout.Token);
            var agent = vm.Agent.Client;
            var deadline = () => DateTime.UtcNow.AddSeconds(60);

            var exited = new GuestContainer(vm, "exited");
            await exited.CreateAsync(OciSpecs.Busybox(["true"]), stdin: false, timeout.Token);
            await agent.StartContainerAsync(new StartContainerRequest { ContainerId = exited.Id }, deadline: deadline());
            Assert.Equal(0, (await exited.WaitAsync(timeout.Token)).ExitStatus);

            // Without a PID namespace of its own, the init's background child outlives it, in the container's cgroup.
            var leftOver = new GuestContainer(vm, "left-over");
            var spec = System.Text.Json.Nodes.JsonNode.Parse(OciSpecs.Busybox(["sh", "-c", "sleep 600 </dev/null >/dev/null 2>&1 & exit 0"]))!;
            var namespaces = spec["linux"]!["namespaces"]!.AsArray();
            namespaces.Remove(namespaces.First(n => (string?)n!["type"] == "pid"));
            await leftOver.CreateAsync(spec.ToJsonString(), stdin: false, timeout.Token);
            await agent.StartContainerAsync(new StartContainerRequest { ContainerId = leftOver.Id }, deadline: deadline());
            Assert.Equal(0, (await leftOver.WaitAsync(timeout.Token)).ExitStatus);

            await agent.DestroySandboxAsync(new DestroySandboxRequest(), deadline: deadline());

            string consoleLog = Path.Combine(vm.State.Path, "console.log");
            string console = "";
            for (int i = 0; i < 50 && !console.Contains("DestroySandbox:"); i++, await Task.Delay(100))
                console = File.ReadAllText(consoleLog);
            Assert.Contains("DestroySandbox:", console);
            Assert.Contains("crun delete left-over", console);
            Assert.DoesNotContain("crun delete exited", console);
        }
        finally
        {
            Directory.Delete(stateRoot, recursive: true);
        }
    }

    [Fact]
    public async Task A_missing_kernel_fails_with_its_path_and_leaves_nothing_behind()
    {
        var stateRoot = TestVm.NewStateRoot();
        try
        {
            var options = new Sandbox.Runtime.Sandboxes.SandboxVmOptions
            {
                SandboxId = "nokernel",
                Assets = new Sandbox.Runtime.Sandboxes.GuestAssets("/nonexistent/vmlinux", "/nonexistent/initramfs.cpio"),
                StateRoot = stateRoot,
            };
            var e = await Assert.ThrowsAnyAsync<Exception>(() =>
                Sandbox.Runtime.Sandboxes.SandboxVm.BootAsync(options, new Sandbox.Hypervisors.Qemu.QemuAdapter(), CancellationToken.None));
            Assert.Contains("/nonexistent/vmlinux", e.Message);
            Assert.Empty(HostProcesses.WithCommandLineContaining(stateRoot));
            Assert.Empty(Directory.EnumerateFileSystemEntries(stateRoot));
        }
        finally
        {
            Directory.Delete(stateRoot, recursive: true);
        }
    }

    /// <summary>Issue 15's soak: a shim killed 0.3 s into `ctr run` left the pod's host cgroup behind, because the
    /// state directory named it only once QEMU ran, and `delete` finds it only there. It is named before it exists now.
    /// </summary>
    [Fact]
    public async Task The_state_directory_names_the_host_cgroup_before_the_vmm_is_prepared()
    {
        var stateRoot = TestVm.NewStateRoot();
        string cgroupPath = $"/sandbox-tests/pending-{Guid.NewGuid():N}";
        try
        {
            var options = new Sandbox.Runtime.Sandboxes.SandboxVmOptions
            {
                SandboxId = "pendingcg",
                Assets = new Sandbox.Runtime.Sandboxes.GuestAssets("/nonexistent/vmlinux", "/nonexistent/initramfs.cpio"),
                StateRoot = stateRoot,
                HostCgroupPath = cgroupPath,
            };
            string metadataFile = new Sandbox.Runtime.Sandboxes.SandboxStateDirectory(stateRoot, "pendingcg").MetadataFile;
            string? namedAtPrepare = null;
            var hypervisor = new PrepareProbe(new Sandbox.Hypervisors.Qemu.QemuAdapter(),
                () => namedAtPrepare = Sandbox.Runtime.Sandboxes.SandboxMetadata.TryRead(metadataFile)?.HostCgroup);

            await Assert.ThrowsAnyAsync<Exception>(() => Sandbox.Runtime.Sandboxes.SandboxVm.BootAsync(options, hypervisor, CancellationToken.None));

            Assert.Equal(cgroupPath, namedAtPrepare);
            Assert.Empty(Directory.EnumerateFileSystemEntries(stateRoot));
            Assert.DoesNotContain(Sandbox.Runtime.Cgroups.HostCgroupMounts.Read(), h => Directory.Exists(h.MountPoint + cgroupPath));
        }
        finally
        {
            Directory.Delete(stateRoot, recursive: true);
            foreach (var hierarchy in Sandbox.Runtime.Cgroups.HostCgroupMounts.Read())
            {
                foreach (string directory in new[] { hierarchy.MountPoint + cgroupPath, hierarchy.MountPoint + "/sandbox-tests" })
                {
                    try { Directory.Delete(directory); } catch (IOException) { }
                }
            }
        }
    }

    /// <summary>A hypervisor that runs a probe when it is prepared, then does what the real one does.</summary>
    private sealed class PrepareProbe(Sandbox.Hypervisors.IHypervisor inner, Action probe) : Sandbox.Hypervisors.IHypervisor
    {
        public Sandbox.Hypervisors.HypervisorCapabilities Capabilities => inner.Capabilities;
        public int? Pid => inner.Pid;
        public Sandbox.Hypervisors.AgentEndpoint AgentEndpoint => inner.AgentEndpoint;
        public string ConsoleLogPath => inner.ConsoleLogPath;

        public Task PrepareAsync(Sandbox.Hypervisors.VmConfig config, CancellationToken cancellationToken)
        {
            probe();
            return inner.PrepareAsync(config, cancellationToken);
        }

        public Task StartAsync(CancellationToken cancellationToken) => inner.StartAsync(cancellationToken);
        public Task StopAsync(CancellationToken cancellationToken) => inner.StopAsync(cancellationToken);
        public void Abandon(string reason) => inner.Abandon(reason);
        public Task<string> ReleaseBootImagesAsync(CancellationToken cancellationToken) => inner.ReleaseBootImagesAsync(cancellationToken);
        public Task<string> SaveAsTemplateAsync(string stateFile, CancellationToken cancellationToken) => inner.SaveAsTemplateAsync(stateFile, cancellationToken);
        public Task<Sandbox.Hypervisors.VmExit> WaitForExitAsync(CancellationToken cancellationToken) => inner.WaitForExitAsync(cancellationToken);
        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
