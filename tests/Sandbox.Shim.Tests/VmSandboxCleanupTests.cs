using System.Diagnostics;
using Sandbox.Runtime.Configuration;
using Sandbox.Runtime.Sandboxes;
using Sandbox.Shim.Tests.Containerd;
using Sandbox.Shim.Vm;

namespace Sandbox.Shim.Tests;

/// <summary>
/// The VM backend's `delete` cleanup on a state directory laid out as the backend leaves it (tmpfs mounts stand in
/// for the rootfs binds), and the owner file that tells a live daemon from a dead one. Needs root (mount).
/// </summary>
public sealed class VmSandboxCleanupTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vmcl-").FullName;
    private readonly List<string> _log = new();

    private string StateRoot => Path.Combine(_dir, "sb");

    private string SandboxDir => Path.Combine(StateRoot, "pod1");

    private SandboxConfiguration Configuration => new() { Runtime = new RuntimeSettings { StateRoot = StateRoot } };

    public async Task InitializeAsync()
    {
        foreach (string container in new[] { "pod1", "c2" })
        {
            string rootfs = Path.Combine(SandboxDir, "shared", container, "rootfs");
            Directory.CreateDirectory(rootfs);
            await RunAsync("mount", "-t", "tmpfs", "tmpfs", rootfs);
        }
        await File.WriteAllTextAsync(Path.Combine(SandboxDir, "console.log"), "guest console\n");
    }

    public async Task DisposeAsync()
    {
        foreach (var mountPoint in VmBackedContainerdFixture.MountPointsBelow(_dir).OrderByDescending(m => m.Length))
            await RunAsync("umount", "-l", mountPoint);
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task A_container_of_a_pod_loses_only_its_own_rootfs_bind()
    {
        string bundle = Bundle("c2", sandboxId: "pod1");

        await CleanupAsync(bundle, "c2");

        Assert.False(Directory.Exists(Path.Combine(SandboxDir, "shared", "c2")));
        Assert.True(Directory.Exists(Path.Combine(SandboxDir, "shared", "pod1", "rootfs")));
        Assert.Single(VmBackedContainerdFixture.MountPointsBelow(SandboxDir));
    }

    [Fact]
    public async Task The_sandbox_container_of_a_dead_daemon_takes_the_whole_sandbox_and_again_is_harmless()
    {
        string bundle = Bundle("pod1", sandboxId: "pod1");

        await CleanupAsync(bundle, "pod1");
        await CleanupAsync(bundle, "pod1");

        Assert.False(Directory.Exists(SandboxDir));
        Assert.Empty(VmBackedContainerdFixture.MountPointsBelow(_dir));
    }

    [Fact]
    public async Task The_last_container_of_a_group_takes_the_sandbox_when_no_container_is_the_sandbox()
    {
        string group = Path.Combine(StateRoot, "grp");
        foreach (string container in new[] { "a", "b" })
        {
            string rootfs = Path.Combine(group, "shared", container, "rootfs");
            Directory.CreateDirectory(rootfs);
            await RunAsync("mount", "-t", "tmpfs", "tmpfs", rootfs);
        }

        await CleanupAsync(Bundle("a", sandboxId: "grp"), "a");
        Assert.True(Directory.Exists(Path.Combine(group, "shared", "b", "rootfs"))); // b still uses the sandbox
        await CleanupAsync(Bundle("b", sandboxId: "grp"), "b");

        Assert.False(Directory.Exists(group));
        Assert.True(Directory.Exists(SandboxDir)); // another sandbox is not touched
    }

    [Fact]
    public async Task The_state_directory_the_bundle_points_to_wins_over_the_configured_state_root()
    {
        string bundle = Bundle("pod1", sandboxId: "pod1");
        StateDirectoryPointer.Write(bundle, SandboxDir);
        var elsewhere = new SandboxConfiguration { Runtime = new RuntimeSettings { StateRoot = Path.Combine(_dir, "other-root") } };

        await VmSandboxCleanup.CleanupAfterDeadShimAsync(elsewhere, bundle, "pod1", _log.Add, CancellationToken.None);

        Assert.False(Directory.Exists(SandboxDir));
    }

    [Fact]
    public async Task A_daemon_that_still_runs_is_sent_SIGTERM_and_once_gone_its_sandbox_is_cleaned_up()
    {
        using var owner = Process.Start(new ProcessStartInfo("sleep", "60") { UseShellExecute = false })!;
        await File.WriteAllTextAsync(Path.Combine(SandboxDir, SandboxOwnerFile.FileName), $"{owner.Id} {StartTimeOf(owner.Id)}\n");
        Assert.Equal(owner.Id, SandboxOwnerFile.LiveOwner(SandboxDir));

        await CleanupAsync(Bundle("pod1", sandboxId: "pod1"), "pod1", ownerExitWait: TimeSpan.FromMilliseconds(500));

        Assert.True(owner.HasExited, "the owner was not terminated");
        Assert.Contains(_log, line => line.Contains($"pid {owner.Id}") && line.Contains("SIGTERM"));
        Assert.False(Directory.Exists(SandboxDir));
    }

    [Fact]
    public async Task A_daemon_that_ignores_SIGTERM_is_left_with_its_sandbox()
    {
        using var owner = Process.Start(new ProcessStartInfo("sh", ["-c", "trap '' TERM; sleep 60 & wait; sleep 60"]) { UseShellExecute = false })!;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(SandboxDir, SandboxOwnerFile.FileName), $"{owner.Id} {StartTimeOf(owner.Id)}\n");
            await CleanupAsync(Bundle("pod1", sandboxId: "pod1"), "pod1", ownerExitWait: TimeSpan.FromMilliseconds(300));

            Assert.True(Directory.Exists(SandboxDir));
            Assert.Contains(_log, line => line.Contains($"pid {owner.Id}") && line.Contains("still runs after SIGTERM"));
        }
        finally
        {
            owner.Kill(entireProcessTree: true);
            await owner.WaitForExitAsync();
        }
        Assert.Null(SandboxOwnerFile.LiveOwner(SandboxDir)); // gone: the next delete cleans up
        await CleanupAsync(Bundle("pod1", sandboxId: "pod1"), "pod1");
        Assert.False(Directory.Exists(SandboxDir));
    }

    [Fact]
    public async Task An_owner_file_naming_a_recycled_pid_is_not_a_live_owner()
    {
        await File.WriteAllTextAsync(Path.Combine(SandboxDir, SandboxOwnerFile.FileName), $"1 999999999\n");
        Assert.Null(SandboxOwnerFile.LiveOwner(SandboxDir));
        File.Delete(Path.Combine(SandboxDir, SandboxOwnerFile.FileName));
        Assert.Null(SandboxOwnerFile.LiveOwner(SandboxDir));
    }

    private Task CleanupAsync(string bundle, string containerId, TimeSpan? ownerExitWait = null) =>
        VmSandboxCleanup.CleanupAfterDeadShimAsync(Configuration, bundle, containerId, line => { lock (_log) _log.Add(line); },
            CancellationToken.None, ownerExitWait);

    private string Bundle(string containerId, string sandboxId)
    {
        string bundle = Path.Combine(_dir, "bundles", containerId + "-" + sandboxId);
        Directory.CreateDirectory(bundle);
        File.WriteAllText(Path.Combine(bundle, "config.json"),
            $"{{\"ociVersion\":\"1.0.2\",\"annotations\":{{\"io.kubernetes.cri.sandbox-id\":\"{sandboxId}\"}}}}");
        return bundle;
    }

    private static string StartTimeOf(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        return stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[19];
    }

    private static async Task RunAsync(string file, params string[] args)
    {
        var result = await ExternalCommand.RunAsync(file, args, TimeSpan.FromSeconds(30));
        Assert.True(result.ExitCode == 0, result.ToString());
    }
}
