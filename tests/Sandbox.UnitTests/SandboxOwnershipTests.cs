using System.Diagnostics;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.UnitTests;

/// <summary>Live, starting or dead: what `sandboxctl list` shows and `gc` acts on.</summary>
public sealed class SandboxOwnershipTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("ownership-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private SandboxStateDirectory NewState(string id)
    {
        var state = new SandboxStateDirectory(_root, id);
        state.Create();
        return state;
    }

    [Fact]
    public void A_sandbox_owned_by_a_running_process_is_live()
    {
        var state = NewState("live");
        SandboxOwnerFile.WriteSelf(state.Path);

        Assert.Equal(SandboxLiveness.Live, SandboxOwnership.Of(state, DateTime.UtcNow));
        Assert.Equal(Environment.ProcessId, SandboxOwnerFile.Recorded(state.Path)!.Pid);
        Assert.Null(SandboxOwnerFile.LiveOwner(state.Path)); // the caller itself is never a live owner to wait for
    }

    [Fact]
    public async Task A_sandbox_whose_owner_exited_is_dead_even_when_its_directory_is_new()
    {
        var state = NewState("dead");
        using var owner = Process.Start("sleep", "30");
        await File.WriteAllTextAsync(Path.Combine(state.Path, SandboxOwnerFile.FileName),
            $"{owner.Id} {SandboxOwnerFile.StartTimeOf(owner.Id)}\n");
        Assert.Equal(SandboxLiveness.Live, SandboxOwnership.Of(state, DateTime.UtcNow));

        owner.Kill();
        await owner.WaitForExitAsync();

        Assert.Equal(SandboxLiveness.Dead, SandboxOwnership.Of(state, DateTime.UtcNow));
    }

    [Fact]
    public async Task A_recycled_pid_is_not_the_owner()
    {
        var state = NewState("recycled");
        // Our own pid, with a start time that is not ours: another process that once had this pid.
        await File.WriteAllTextAsync(Path.Combine(state.Path, SandboxOwnerFile.FileName), $"{Environment.ProcessId} 1\n");

        Assert.Equal(SandboxLiveness.Dead, SandboxOwnership.Of(state, DateTime.UtcNow));
    }

    [Fact]
    public void Without_an_owner_record_a_new_directory_is_starting_and_an_old_one_dead()
    {
        var state = NewState("no-owner");

        Assert.Equal(SandboxLiveness.Starting, SandboxOwnership.Of(state, DateTime.UtcNow));
        Assert.Equal(SandboxLiveness.Dead, SandboxOwnership.Of(state, DateTime.UtcNow + SandboxOwnership.StartGrace + TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public async Task A_garbled_owner_record_counts_as_none()
    {
        var state = NewState("garbled");
        await File.WriteAllTextAsync(Path.Combine(state.Path, SandboxOwnerFile.FileName), "not a pid\n");

        Assert.Null(SandboxOwnerFile.Recorded(state.Path));
        Assert.Equal(SandboxLiveness.Starting, SandboxOwnership.Of(state, DateTime.UtcNow));
    }

    [Theory]
    [InlineData("qemu-system-x86_64 -chardev socket,id=qmp,path=/run/sandbox/sandboxes/abc/qmp.sock,server=on", "/run/sandbox/sandboxes/abc")]
    [InlineData("vhost-device-vsock --vm guest-cid=3,socket=/run/sandbox/sandboxes/p-1/vhost-vsock.sock,uds-path=/x", "/run/sandbox/sandboxes/p-1")]
    [InlineData("qemu-system-x86_64 -kernel /run/sandbox/sandboxes/k/vmlinux", "/run/sandbox/sandboxes/k")]
    [InlineData("qemu-system-x86_64 -name /run/sandbox/sandboxes/", null)]
    [InlineData("qemu-system-x86_64 -name /run/sandbox/sandboxes/abc", null)] // the root's child itself, not a path inside it
    [InlineData("qemu-system-x86_64 -kernel /srv/run/sandbox/sandboxes/abc/vmlinux", null)] // another root that ends the same
    [InlineData("qemu-system-x86_64 -m 256", null)]
    public void The_state_directory_a_command_line_names(string commandLine, string? expected) =>
        Assert.Equal(expected, LeftoverScan.StateDirectoryNamedBy(commandLine, "/run/sandbox/sandboxes"));

    [Fact]
    public async Task The_scan_finds_dead_sandboxes_and_VM_processes_whose_state_directory_is_gone_and_nothing_else()
    {
        SandboxOwnerFile.WriteSelf(NewState("live").Path);
        var dead = NewState("dead");
        await File.WriteAllTextAsync(Path.Combine(dead.Path, SandboxOwnerFile.FileName), "1 1\n");
        string gone = Path.Combine(_root, "gone");

        // A stand-in for an orphan QEMU (comm "qemu-system-tes") and an unrelated process naming the same path.
        string fakeQemu = Path.Combine(_root, "qemu-system-test");
        File.Copy("/bin/bash", fakeQemu);
        File.SetUnixFileMode(fakeQemu, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        using var orphan = Process.Start(fakeQemu, ["-c", "sleep 60; :", "x", $"{gone}/qmp.sock"]);
        using var bystander = Process.Start("/bin/bash", ["-c", "sleep 60; :", "x", $"{gone}/qmp.sock"]);
        try
        {
            // and until its child has become `sleep`: between fork and exec the child is a second "qemu-system-tes"
            // naming the same path (CI caught the scan in that window once)
            await WaitUntilAsync(() => File.ReadAllText($"/proc/{orphan.Id}/comm").StartsWith("qemu-system-", StringComparison.Ordinal)
                && File.ReadAllText($"/proc/{orphan.Id}/task/{orphan.Id}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries)
                    .Any(child => File.Exists($"/proc/{child}/comm") && File.ReadAllText($"/proc/{child}/comm").Trim() == "sleep"));

            var report = LeftoverScan.Scan(_root, DateTime.UtcNow);

            Assert.Equal(["live"], report.LiveSandboxes);
            Assert.Equal("dead", Assert.Single(report.DeadSandboxes).State.SandboxId);
            var found = Assert.Single(report.Orphans);
            Assert.Equal(orphan.Id, found.Process.Pid);
            Assert.Equal(gone, found.StateDirectory);
            Assert.False(report.IsClean);
        }
        finally
        {
            orphan.Kill(entireProcessTree: true);
            bystander.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public async Task Gc_removes_a_removal_whose_process_died_and_leaves_one_in_progress()
    {
        // a remover that is gone (no pid is that large) and one that runs (this process)
        string abandoned = Path.Combine(_root, $"{SandboxStateDirectory.RemovingPrefix}pod1-999999999");
        string inProgress = Path.Combine(_root, $"{SandboxStateDirectory.RemovingPrefix}pod2-{Environment.ProcessId}");
        Directory.CreateDirectory(Path.Combine(abandoned, "shared", "c1"));
        Directory.CreateDirectory(inProgress);

        Assert.Empty(SandboxStateDirectory.List(_root));
        Assert.Equal([abandoned], LeftoverScan.Scan(_root, DateTime.UtcNow).AbandonedRemovals);

        var dryRun = await Sandbox.Ctl.GcCommand.RunAsync(_root, dryRun: true, CancellationToken.None);
        Assert.False(Assert.Single(dryRun.AbandonedRemovals).Removed);
        Assert.True(Directory.Exists(abandoned));

        var report = await Sandbox.Ctl.GcCommand.RunAsync(_root, dryRun: false, CancellationToken.None);
        Assert.False(report.Failed);
        Assert.Equal(abandoned, Assert.Single(report.AbandonedRemovals).Directory);
        Assert.False(Directory.Exists(abandoned));
        Assert.True(Directory.Exists(inProgress));
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        for (int i = 0; i < 100 && !condition(); i++)
            await Task.Delay(20);
    }
}
