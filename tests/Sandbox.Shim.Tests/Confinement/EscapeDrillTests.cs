using System.Diagnostics;
using Sandbox.Hypervisors.Processes;
using Sandbox.Runtime.Sandboxes;
using Sandbox.Shim.Tests.Containerd;
using Xunit;
using Xunit.Abstractions;

namespace Sandbox.Shim.Tests.Confinement;

/// <summary>
/// Issue 11's escape drill: a privileged container in one pod's VM tries what a container that broke out of its
/// namespaces would try next (load modules, write /dev/mem, mount and remount the share, leave it by `..` and by
/// symlinks, dial the agent over vsock, flood stdout and the agent, fill the guest's memory and disk, fork-bomb), while
/// a second pod runs beside it. After every attempt the host is checked: no file outside the attacker's share, the other
/// pod running and its files untouched, containerd and the shim answering. The attacker's VM may die (the fork bomb),
/// but then it is cleaned up with a clear exit. Real containerd, real VMs.
/// </summary>
[Trait("Category", "EndToEnd")]
[Collection(EndToEndCollection.Name)]
public sealed class EscapeDrillTests : IClassFixture<VmBackedContainerdFixture>
{
    private const string Runtime = VmBackedContainerdFixture.Runtime;
    private const string Attacker = "drill-attacker";
    private const string Victim = "drill-victim";
    private static readonly TimeSpan ExecTimeout = TimeSpan.FromMinutes(2);

    private readonly VmBackedContainerdFixture _fixture;
    private readonly ITestOutputHelper _output;
    private readonly string _token = Guid.NewGuid().ToString("N")[..12];

    public EscapeDrillTests(VmBackedContainerdFixture fixture, ITestOutputHelper output)
    {
        _fixture = fixture;
        _output = output;
    }

    private PrivateContainerd Containerd => _fixture.Containerd;
    private string EscapeName => "sandbox-escape-" + _token;
    private string AttackerShare => Path.Combine(_fixture.StateRoot, Attacker, "shared");

    [Fact]
    public async Task A_privileged_container_trying_to_escape_leaves_the_host_other_pods_and_the_runtime_untouched()
    {
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", Runtime, _fixture.Image, Victim, "sleep", "100000");
        await ExecOkAsync(Victim, "token", $"echo {_token} > /tmp/token");
        int victimQemu = QemuPidOf(Victim);
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--privileged", "--runtime", Runtime, _fixture.Image, Attacker, "sleep", "100000");
        await BuildVsockProbeAsync(Path.Combine(AttackerShare, Attacker, "rootfs", "vsock-probe"));

        // the agent's API: the guest's own CID (3 with hybrid vsock), the local CID 1, the host's CID 2
        var vsock = await ExecAsync(Attacker, "vsock", "for cid in 3 1 2; do /vsock-probe $cid 1024; done");
        Assert.DoesNotMatch(@"connected, read [1-9]", vsock.Stdout);
        await AssertHostUntouchedAsync(victimQemu);

        // the guest kernel: modules, /dev/mem, sysrq
        await ExecAsync(Attacker, "kernel",
            "modprobe bridge; insmod /nonexistent.ko; dd if=/dev/zero of=/dev/mem bs=4096 count=1 seek=256 conv=notrunc; " +
            "echo 1 > /proc/sys/kernel/sysrq; cat /proc/modules | head -3");
        await AssertHostUntouchedAsync(victimQemu);

        // the share: mount the pod's whole share, remount it, leave it by .. and by symlinks made in it
        await ExecAsync(Attacker, "share",
            $"mkdir -p /mnt/s && mount -t 9p -o trans=virtio,version=9p2000.L share /mnt/s; ls /mnt/s; mount -o remount,rw /mnt/s; " +
            $"echo x > /mnt/s/../../../../../../tmp/{EscapeName}; ln -s /tmp /mnt/s/up-{_token}; echo x > /mnt/s/up-{_token}/{EscapeName}; " +
            $"ln -s ../../../../../../../../../tmp /up-{_token}; echo x > /up-{_token}/{EscapeName}; " +
            $"ln -s /proc/1/root /root-{_token}; ls /root-{_token}/ | head -3; mount -o remount,rw /; " +
            $"cd /mnt/s/{Attacker}/rootfs/../../../../.. && pwd && ls");
        await AssertHostUntouchedAsync(victimQemu);

        // floods: 20 MB of stdout, then 16 execs at once
        var flood = await ExecAsync(Attacker, "stdout", "head -c 20000000 /dev/zero | tr '\\0' x");
        Assert.Equal(20_000_000, flood.Stdout.Length);
        var execs = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => ExecAsync(Attacker, $"many{i}", "true")));
        Assert.All(execs, r => Assert.Equal(0, r.ExitCode));
        await AssertHostUntouchedAsync(victimQemu);

        // the guest's disk (its tmpfs), then its memory: tail holds its one 600 MB "line" until the guest's OOM killer
        // ends it, or the guest thrashes; either way only this pod's VM is concerned, so it runs detached for 15 s
        await ExecAsync(Attacker, "fill", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=4096; df -h /dev/shm; rm -f /dev/shm/fill");
        await Containerd.CtrAsync(["task", "exec", "-d", "--exec-id", "hog", Attacker, "sh", "-c", "head -c 600000000 /dev/zero | tail -n 1 > /dev/null"], ExecTimeout);
        await Task.Delay(TimeSpan.FromSeconds(15));
        await AssertHostUntouchedAsync(victimQemu);

        // a fork bomb, left running for 15 s
        await Containerd.CtrAsync(["task", "exec", "-d", "--exec-id", "bomb", Attacker, "sh", "-c", "b() { b | b & }; b"], ExecTimeout);
        await Task.Delay(TimeSpan.FromSeconds(15));
        await AssertHostUntouchedAsync(victimQemu);

        // the attacker goes (its VM may already be dead: then its exit is 137), the victim still answers, and then goes
        await Containerd.CtrAsync(["task", "kill", "-s", "SIGKILL", Attacker]);
        var stopped = Stopwatch.StartNew();
        while (!await IsStoppedAsync(Attacker) && stopped.Elapsed < TimeSpan.FromMinutes(3))
            await Task.Delay(500);
        Assert.True(await IsStoppedAsync(Attacker), "the fork-bombed pod did not stop within 3 minutes of SIGKILL");
        _output.WriteLine($"the attacker stopped {stopped.Elapsed.TotalSeconds:0.0} s after SIGKILL");
        await Containerd.CtrOkAsync("task", "rm", Attacker);
        await Containerd.CtrOkAsync("container", "rm", Attacker);
        await AssertHostUntouchedAsync(victimQemu);

        await Containerd.CtrOkAsync("task", "kill", "-s", "SIGKILL", Victim);
        await CtrSteps.WaitUntilAsync(() => IsStoppedAsync(Victim));
        await Containerd.CtrOkAsync("task", "rm", Victim);
        await Containerd.CtrOkAsync("container", "rm", Victim);
        for (int i = 0; i < 300 && (LeftoverVmProcesses.Find(_fixture.StateRoot).Count > 0 || SandboxStateDirectory.List(_fixture.StateRoot).Any()); i++)
            await Task.Delay(100);
        Assert.Empty(LeftoverVmProcesses.Find(_fixture.StateRoot));
        Assert.Empty(SandboxStateDirectory.List(_fixture.StateRoot));
        Assert.Empty(VmBackedContainerdFixture.MountPointsBelow(_fixture.StateRoot));
    }

    /// <summary>The host after an attempt: no escape file anywhere outside the attacker's share, the victim's VM the
    /// same process with its file intact, containerd and the shims answering.</summary>
    private async Task AssertHostUntouchedAsync(int victimQemu)
    {
        foreach (var directory in new[] { "/tmp", "/", "/root", Path.GetTempPath(), Containerd.Directory })
            Assert.False(File.Exists(Path.Combine(directory, EscapeName)), $"{EscapeName} appeared in {directory}");
        var planted = FilesNamed(_fixture.StateRoot, EscapeName, skip: AttackerShare);
        Assert.True(planted.Count == 0, $"files outside the attacker's share: {string.Join(", ", planted)}");
        Assert.True(Directory.Exists($"/proc/{victimQemu}"), $"the other pod's QEMU (pid {victimQemu}) is gone");
        var version = await Containerd.CtrAsync(["version"], TimeSpan.FromSeconds(20));
        Assert.True(version.ExitCode == 0, version.ToString());
        var tasks = await Containerd.CtrAsync(["task", "ls"], TimeSpan.FromSeconds(60));
        Assert.True(tasks.ExitCode == 0, tasks.ToString());
        var token = await ExecAsync(Victim, "check" + Guid.NewGuid().ToString("N")[..6], "cat /tmp/token");
        Assert.Equal(_token, token.Stdout.Trim());
    }

    /// <summary>Files called <paramref name="name"/> below <paramref name="directory"/>, not following symbolic links
    /// (the attacker plants links to / and /proc/1/root in its share) and not entering <paramref name="skip"/>.</summary>
    private static List<string> FilesNamed(string directory, string name, string skip)
    {
        var found = new List<string>();
        var options = new EnumerationOptions { IgnoreInaccessible = true, AttributesToSkip = FileAttributes.ReparsePoint };
        foreach (var entry in Directory.EnumerateFileSystemEntries(directory, "*", options))
        {
            if (Path.GetFileName(entry) == name)
                found.Add(entry);
            if (entry != skip && Directory.Exists(entry))
                found.AddRange(FilesNamed(entry, name, skip));
        }
        return found;
    }

    private async Task<bool> IsStoppedAsync(string id) =>
        (await Containerd.CtrAsync(["task", "ls"], TimeSpan.FromSeconds(60))).Stdout.Split('\n').Any(l => l.StartsWith(id + " ") && l.Contains("STOPPED"));

    private int QemuPidOf(string sandbox) =>
        Assert.Single(LeftoverVmProcesses.Find(Path.Combine(_fixture.StateRoot, sandbox)), p => p.CommandLine.Contains("qemu-system", StringComparison.Ordinal)).Pid;

    private async Task<CommandResult> ExecAsync(string id, string execId, string script)
    {
        var result = await Containerd.CtrAsync(["task", "exec", "--fifo-dir", Containerd.FifoDirectory, "--exec-id", execId, id, "sh", "-c", script], ExecTimeout);
        _output.WriteLine($"[{id} {execId}] exit {result.ExitCode}\n{(result.Stdout.Length > 2000 ? $"({result.Stdout.Length} bytes)" : result.Stdout)}{result.Stderr}");
        return result;
    }

    private async Task ExecOkAsync(string id, string execId, string script)
    {
        var result = await ExecAsync(id, execId, script);
        Assert.True(result.ExitCode == 0, result.ToString());
    }

    /// <summary>vsock-probe.c, linked static (the busybox image has no libc), built straight into the container's rootfs
    /// so that nothing is left on the host's /tmp.</summary>
    private static async Task BuildVsockProbeAsync(string destination)
    {
        var gcc = await ExternalCommand.RunAsync("gcc", ["-static", "-O2", "-o", destination, Path.Combine(AppContext.BaseDirectory, "Confinement", "vsock-probe.c")], TimeSpan.FromMinutes(1));
        Assert.True(gcc.ExitCode == 0, gcc.ToString());
    }
}
