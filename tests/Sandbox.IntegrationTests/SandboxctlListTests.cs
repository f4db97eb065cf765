using Sandbox.Ctl;
using Sandbox.IntegrationTests.Support;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.IntegrationTests;

/// <summary>`sandboxctl list` and `gc` read what a sandbox is from its state directory alone, and agree: gc removes
/// exactly what list calls dead, and never touches a live sandbox.</summary>
[Collection(SharedVmCollection.Name)]
public sealed class SandboxctlListTests(SharedVmFixture fixture)
{
    [Fact]
    public async Task A_running_VM_is_listed_live_and_gc_leaves_it_alone_while_it_removes_an_ownerless_old_leftover()
    {
        var stale = Path.Combine(fixture.StateRoot, "stale-leftover");
        Directory.CreateDirectory(stale);
        Directory.SetLastWriteTimeUtc(stale, DateTime.UtcNow - SandboxOwnership.StartGrace - TimeSpan.FromMinutes(1));
        try
        {
            var listings = ListCommand.Read(fixture.StateRoot);

            var running = Assert.Single(listings, l => l.SandboxId == fixture.Vm.SandboxId);
            Assert.Equal("live", running.State);
            Assert.Equal(Environment.ProcessId, running.ShimPid); // the test booted it, so the test owns it
            Assert.True(running.VmmRunning);
            Assert.Equal(fixture.Vm.Hypervisor.Pid, running.VmmPid);
            Assert.Equal(fixture.Vm.Hypervisor.ConsoleLogPath, running.ConsoleLog);
            Assert.Equal("booted", running.Start); // not cloned from a template
            Assert.Null(running.Problem);

            var leftover = Assert.Single(listings, l => l.SandboxId == "stale-leftover");
            Assert.Equal("dead", leftover.State);
            Assert.Contains("sandboxctl gc", leftover.Problem);

            var report = await GcCommand.RunAsync(fixture.StateRoot, dryRun: false, CancellationToken.None);

            Assert.Equal(["stale-leftover"], report.Sandboxes.Select(s => s.SandboxId));
            Assert.True(report.Sandboxes[0].Removed);
            Assert.Empty(report.Orphans);
            Assert.Equal([fixture.Vm.SandboxId], report.LiveSandboxes);
            Assert.False(Directory.Exists(stale));
            Assert.True(HostProcesses.IsAlive(fixture.Vm.Hypervisor.Pid!.Value), "gc killed a live sandbox's QEMU");
            Assert.True(File.Exists(fixture.Vm.State.MetadataFile), "gc touched a live sandbox's state directory");
            await fixture.Vm.Agent.Client.HealthAsync(new Sandbox.Agent.Protocol.HealthRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
            Assert.All(ListCommand.Read(fixture.StateRoot), l => Assert.Equal("live", l.State));
        }
        finally
        {
            if (Directory.Exists(stale))
                Directory.Delete(stale);
        }
    }
}

/// <summary>gc against real VMs left by an owner that died: it needs VMs of its own.</summary>
public sealed class SandboxctlGcTests
{
    [Fact]
    public async Task Gc_removes_a_dead_owners_VM_processes_mounts_and_directory_and_VM_processes_whose_directory_is_gone()
    {
        var stateRoot = TestVm.NewStateRoot();
        SandboxVm? deadOwners = null, orphaned = null;
        string mount = "";
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
            deadOwners = await TestVm.BootAsync(stateRoot, "deadowner", timeout.Token);
            orphaned = await TestVm.BootAsync(stateRoot, "orphaned", timeout.Token);
            int deadOwnersQemu = deadOwners.Hypervisor.Pid!.Value, orphanedQemu = orphaned.Hypervisor.Pid!.Value;

            // "deadowner": its owner is recorded as a process that is gone (pid 1 never has start time 1), and a
            // container rootfs is still mounted in its share, as a SIGKILLed shim leaves them.
            await File.WriteAllTextAsync(Path.Combine(deadOwners.State.Path, SandboxOwnerFile.FileName), "1 1\n");
            mount = Path.Combine(deadOwners.State.SharedDirectory, "ctr", "rootfs");
            Directory.CreateDirectory(mount);
            Assert.Equal(0, await RunAsync("mount", "-t", "tmpfs", "tmpfs", mount));
            // "orphaned": its state directory is gone, its QEMU and vsock daemon still run.
            Directory.Delete(orphaned.State.Path, recursive: true);

            var listed = Assert.Single(ListCommand.Read(stateRoot));
            Assert.Equal(("deadowner", "dead", 1), (listed.SandboxId, listed.State, listed.ShimPid));

            var dryRun = await GcCommand.RunAsync(stateRoot, dryRun: true, CancellationToken.None);
            var planned = Assert.Single(dryRun.Sandboxes);
            Assert.Contains(planned.Processes, p => p.Pid == deadOwnersQemu);
            Assert.Equal([mount], planned.Mounts);
            Assert.Contains(dryRun.Orphans, o => o.Pid == orphanedQemu);
            Assert.False(planned.Removed);
            Assert.True(HostProcesses.IsAlive(deadOwnersQemu) && HostProcesses.IsAlive(orphanedQemu), "a dry run killed something");
            Assert.True(Directory.Exists(deadOwners.State.Path));

            var report = await GcCommand.RunAsync(stateRoot, dryRun: false, CancellationToken.None);

            Assert.False(report.Failed, string.Join("; ", report.Sandboxes.Select(s => s.Error).Concat(report.Orphans.Select(o => o.Error))));
            Assert.True(Assert.Single(report.Sandboxes).Removed);
            Assert.All(report.Orphans, o => Assert.True(o.Killed));
            Assert.Equal(dryRun.Orphans.Select(o => o.Pid).Order(), report.Orphans.Select(o => o.Pid).Order());
            Assert.False(HostProcesses.IsAlive(deadOwnersQemu), "the dead owner's QEMU still runs");
            Assert.False(HostProcesses.IsAlive(orphanedQemu), "the orphan QEMU still runs");
            Assert.Empty(HostProcesses.WithCommandLineContaining(stateRoot + "/"));
            Assert.Empty(MountTable.MountPointsBelow(stateRoot));
            Assert.Empty(SandboxStateDirectory.List(stateRoot));
            // what gc removed is explained afterwards by its post-mortem record (console and QEMU tails included)
            var record = new Sandbox.Runtime.PostMortem.PostMortemStore(stateRoot).Read(deadOwners.State.SandboxId);
            Assert.NotNull(record);
            Assert.Contains("`sandboxctl gc` removed what it left", record.Reason);
            Assert.NotEmpty(record.ConsoleTail);
            Assert.True((await GcCommand.RunAsync(stateRoot, dryRun: true, CancellationToken.None)).Sandboxes.Count == 0);
        }
        finally
        {
            foreach (var vm in new[] { deadOwners, orphaned })
            {
                if (vm is null)
                    continue;
                try { await vm.DisposeAsync(); } catch (Exception) { /* its VM was killed under it: the point of the test */ }
            }
            if (mount != "")
                MountTable.DetachAll(mount);
            Directory.Delete(stateRoot, recursive: true);
        }
    }

    private static async Task<int> RunAsync(string program, params string[] arguments)
    {
        using var process = System.Diagnostics.Process.Start(program, arguments);
        await process.WaitForExitAsync();
        return process.ExitCode;
    }
}
