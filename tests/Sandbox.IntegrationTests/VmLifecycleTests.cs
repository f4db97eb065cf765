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
}
