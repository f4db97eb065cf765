using System.Text.Json;
using Sandbox.Hypervisors.HostDetection;
using Sandbox.Hypervisors.Processes;
using Sandbox.Runtime.Sandboxes;
using Sandbox.Shim.Tests.Containerd;
using Xunit.Abstractions;

namespace Sandbox.Shim.Tests;

/// <summary>
/// `sandboxctl doctor` (and `logs`, `list --all`) against faults made to happen for real through containerd with `ctr`:
/// each test breaks one thing (a configuration naming a missing or corrupt guest file, a guest that hangs, a killed
/// QEMU or vsock daemon, a missing executable, an OOM kill, a host without KVM or vsock), then checks doctor's first
/// line names the cause and its exit status (0 healthy, 1 problem, 2 unknown). Each fault's configuration is passed
/// with `ctr run --runtime-config-path`, so one containerd serves them all.
/// </summary>
[Trait("Category", "EndToEnd")]
[Collection(EndToEndCollection.Name)]
public sealed class SandboxctlDoctorTests : IClassFixture<VmBackedContainerdFixture>, IAsyncLifetime
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(3);
    private readonly VmBackedContainerdFixture _fixture;
    private readonly ITestOutputHelper _output;
    private readonly string _directory = Directory.CreateTempSubdirectory("sbdoc-").FullName;

    public SandboxctlDoctorTests(VmBackedContainerdFixture fixture, ITestOutputHelper output)
    {
        _fixture = fixture;
        _output = output;
    }

    private PrivateContainerd Containerd => _fixture.Containerd;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (string task in Lines((await Containerd.CtrAsync(["task", "ls", "-q"])).Stdout))
        {
            await Containerd.CtrAsync(["task", "kill", "-s", "SIGKILL", task]);
            await Containerd.CtrAsync(["task", "rm", "-f", task]);
        }
        foreach (string container in Lines((await Containerd.CtrAsync(["container", "ls", "-q"])).Stdout))
            await Containerd.CtrAsync(["container", "rm", container]);
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task A_running_sandbox_is_healthy_its_logs_merge_every_source_and_once_ended_it_is_listed_without_a_fault()
    {
        const string id = "doc-ok";
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", VmBackedContainerdFixture.Runtime,
            _fixture.Image, id, "sleep", "1000");

        var healthy = await DoctorAsync(0, id);
        Assert.StartsWith($"sandbox {id}: healthy: up ", healthy.Stdout);
        Assert.Contains($"containers: {id}", healthy.Stdout.Split('\n')[0]);
        using (var json = JsonDocument.Parse((await DoctorAsync(0, id, "--json")).Stdout))
            Assert.Equal("healthy", json.RootElement.GetProperty("verdict").GetString());

        var logs = await SandboxctlAsync(0, "logs", id);
        var sources = Lines(logs.Stdout).Select(l => l.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries)[1]).ToHashSet();
        Assert.Superset(new HashSet<string> { "console", "agent", "shim" }, sources);
        var times = Lines(logs.Stdout).Select(l => l[..TimestampedLogFile.StampLength]).ToList();
        Assert.Equal(times.Order(StringComparer.Ordinal), times);

        await Containerd.CtrAsync(["task", "kill", "-s", "SIGKILL", id]);
        await Containerd.CtrAsync(["task", "rm", "-f", id]);
        await Containerd.CtrAsync(["container", "rm", id]);

        var ended = await DoctorAsync(0, id);
        Assert.StartsWith($"sandbox {id}: no fault found: it ended at ", ended.Stdout);
        Assert.Contains($"container {id} exited with status 137", ended.Stdout);
        var list = await SandboxctlAsync(0, "list", "--all", "--json");
        Assert.Contains($"\"sandbox_id\": \"{id}\"", list.Stdout);
        Assert.Contains("\"state\": \"ended\"", list.Stdout);
        Assert.Contains("ended", (await SandboxctlAsync(0, "logs", id)).Stdout.Split('\n')[0]);

        var unknown = await DoctorAsync(2, "no-such-sandbox");
        Assert.Contains("no sandbox, container or post-mortem record 'no-such-sandbox'", unknown.Stderr);
    }

    [Fact]
    public async Task A_missing_guest_kernel_is_named()
    {
        string config = await ConfigAsync("doc-nokernel", $"[hypervisor.qemu]\nkernel = \"/nonexistent/vmlinux\"\ninitrd = \"{Guest().InitrdPath}\"\n");
        await RunFailingAsync("doc-nokernel", config);

        var doctor = await DoctorAsync(1, "doc-nokernel");
        Assert.Contains("the guest kernel /nonexistent/vmlinux does not exist", FirstLine(doctor));
    }

    [Fact]
    public async Task A_corrupt_guest_kernel_is_named_from_what_QEMU_said()
    {
        string kernel = Garbage("vmlinux");
        string config = await ConfigAsync("doc-badkernel", $"[hypervisor.qemu]\nkernel = \"{kernel}\"\ninitrd = \"{Guest().InitrdPath}\"\n");
        await RunFailingAsync("doc-badkernel", config);

        var doctor = await DoctorAsync(1, "doc-badkernel");
        Assert.Contains($"QEMU could not load the guest kernel {kernel}", FirstLine(doctor));
    }

    [Fact]
    public async Task A_corrupt_initramfs_is_named_from_the_guest_kernels_panic()
    {
        string initrd = Garbage("initramfs.cpio");
        string config = await ConfigAsync("doc-badinitrd", $"[hypervisor.qemu]\nkernel = \"{Guest().KernelPath}\"\ninitrd = \"{initrd}\"\n", readyTimeout: 60);
        await RunFailingAsync("doc-badinitrd", config);

        var doctor = await DoctorAsync(1, "doc-badinitrd");
        Assert.Contains("the guest kernel panicked while booting: Kernel panic - not syncing", FirstLine(doctor));
        Assert.Contains($"the initramfs {initrd} is corrupt", FirstLine(doctor));
    }

    [Fact]
    public async Task A_guest_that_hangs_before_its_agent_starts_is_named()
    {
        // the guest's first process sleeps instead of starting the agent ("1000" is passed to it by the kernel)
        string config = await ConfigAsync("doc-hang", "[hypervisor.qemu]\nkernel_params = \"rdinit=/bin/sleep 1000\"\n", readyTimeout: 15);
        await RunFailingAsync("doc-hang", config);

        var doctor = await DoctorAsync(1, "doc-hang");
        Assert.Contains("its agent never answered", FirstLine(doctor));
        Assert.Contains("within 15 s", FirstLine(doctor));
    }

    [Fact]
    public async Task A_killed_QEMU_is_named_while_the_pod_exists_and_after_it_is_removed()
    {
        const string id = "doc-qemu";
        await StartSleeperAsync(id);
        int qemu = SandboxMetadata.TryRead(Path.Combine(_fixture.StateRoot, id, "sandbox.json"))!.VmmPid!.Value;
        PosixSignal.Send(qemu, PosixSignal.SigKill);

        var doctor = await UntilDoctorSaysAsync(id, $"QEMU (pid {qemu}) was killed by signal 9");
        Assert.Contains("not by the runtime", FirstLine(doctor));
        await RemoveAsync(id);
        Assert.Contains($"QEMU (pid {qemu}) was killed by signal 9", FirstLine(await DoctorAsync(1, id)));
    }

    [Fact]
    public async Task A_killed_vsock_daemon_is_named()
    {
        const string id = "doc-vsockd";
        await StartSleeperAsync(id);
        var daemon = LeftoverVmProcesses.Find(Path.Combine(_fixture.StateRoot, id)).SingleOrDefault(p => p.CommandLine.Contains("vhost-device-vsock"));
        if (daemon is null)
        {
            // kernel vsock (/dev/vhost-vsock) runs no daemon: nothing to kill; the fault does not exist on this host
            Assert.True(File.Exists("/dev/vhost-vsock"), "no vhost-device-vsock process for the sandbox, and no /dev/vhost-vsock either");
            return;
        }
        PosixSignal.Send(daemon.Pid, PosixSignal.SigKill);

        var doctor = await UntilDoctorSaysAsync(id, "the vsock daemon died");
        Assert.Contains($"vhost-device-vsock (pid {daemon.Pid}) was killed by signal 9", FirstLine(doctor));
        await RemoveAsync(id);
    }

    [Fact]
    public async Task A_missing_executable_is_named_with_its_path()
    {
        var run = await Containerd.CtrAsync(["run", "--rm", "--fifo-dir", Containerd.FifoDirectory, "--runtime", VmBackedContainerdFixture.Runtime,
            _fixture.Image, "doc-noexec", "/no/such/program"], RunTimeout);
        Assert.NotEqual(0, run.ExitCode);

        var doctor = await DoctorAsync(1, "doc-noexec");
        Assert.Contains("container doc-noexec could not start: its executable /no/such/program does not exist in the image", FirstLine(doctor));
    }

    [Fact]
    public async Task An_OOM_kill_is_named_with_the_containers_limit()
    {
        var run = await Containerd.CtrAsync(["run", "--rm", "--fifo-dir", Containerd.FifoDirectory, "--runtime", VmBackedContainerdFixture.Runtime,
            "--memory-limit", (32L << 20).ToString(), _fixture.Image, "doc-oom", "sh", "-c", "x=0123456789abcdef; while true; do x=$x$x; done"], RunTimeout);
        Assert.True(run.ExitCode == 137, Containerd.Describe(run));

        var doctor = await DoctorAsync(1, "doc-oom");
        Assert.Contains("container doc-oom was OOM-killed (memory limit 32 MiB)", FirstLine(doctor));
    }

    [Fact]
    public async Task A_host_without_the_vsock_the_configuration_asks_for_is_named()
    {
        string config = await ConfigAsync("doc-novsock", "[hypervisor.qemu]\nvsock = \"hybrid\"\nvhost_device_vsock_path = \"/nonexistent/vhost-device-vsock\"\n");
        await RunFailingAsync("doc-novsock", config);

        var doctor = await DoctorAsync(1, "doc-novsock");
        Assert.Contains("the host has no vsock", FirstLine(doctor));
    }

    /// <summary>Only a host without a usable KVM can show this fault; on a KVM host the same configuration boots.</summary>
    [Fact]
    public async Task A_host_without_the_KVM_the_configuration_asks_for_is_named()
    {
        string config = await ConfigAsync("doc-nokvm", "[hypervisor.qemu]\naccel = \"kvm\"\n");
        if (new KvmProbe().Probe().Usable)
        {
            await StartSleeperAsync("doc-nokvm", config);
            Assert.Contains("healthy", FirstLine(await DoctorAsync(0, "doc-nokvm")));
            await RemoveAsync("doc-nokvm");
            return;
        }
        await RunFailingAsync("doc-nokvm", config);

        var doctor = await DoctorAsync(1, "doc-nokvm");
        Assert.Contains("the host lacks KVM", FirstLine(doctor));
        Assert.Contains("sandboxctl check: warn kvm", doctor.Stdout);
    }

    // ---------------------------------------------------------------------------------------------------------

    private static GuestAssets Guest() =>
        GuestAssets.CheckoutDirectory() is { } dir && File.Exists(Path.Combine(dir, "vmlinux")) ? GuestAssets.InDirectory(dir) : GuestAssets.Locate();

    /// <summary>A file of 4 MiB of random bytes.</summary>
    private string Garbage(string name)
    {
        string path = Path.Combine(_directory, name);
        var bytes = new byte[4 << 20];
        new Random(11).NextBytes(bytes);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>A configuration of its own for one test: the fixture's state root, short timeouts, and <paramref name="tables"/>.</summary>
    private async Task<string> ConfigAsync(string name, string tables, int readyTimeout = 120)
    {
        string path = Path.Combine(_directory, name + ".toml");
        await File.WriteAllTextAsync(path, $"{tables}\n[agent]\nready_timeout = {readyTimeout}\nrpc_timeout = 60\n\n[runtime]\nstate_root = \"{_fixture.StateRoot}\"\n");
        return path;
    }

    private async Task RunFailingAsync(string id, string config)
    {
        var run = await Containerd.CtrAsync(["run", "--rm", "--fifo-dir", Containerd.FifoDirectory, "--runtime", VmBackedContainerdFixture.Runtime,
            "--runtime-config-path", config, _fixture.Image, id, "true"], RunTimeout);
        _output.WriteLine(run.ToString());
        Assert.NotEqual(0, run.ExitCode);
        await Containerd.CtrAsync(["container", "rm", id]);
    }

    private async Task StartSleeperAsync(string id, string? config = null)
    {
        string[] configuration = config is null ? [] : ["--runtime-config-path", config];
        await Containerd.CtrOkAsync(["run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", VmBackedContainerdFixture.Runtime,
            .. configuration, _fixture.Image, id, "sleep", "1000"]);
    }

    private async Task RemoveAsync(string id)
    {
        await Containerd.CtrAsync(["task", "kill", "-s", "SIGKILL", id]);
        await Containerd.CtrAsync(["task", "rm", "-f", id]);
        await Containerd.CtrAsync(["container", "rm", id]);
    }

    /// <summary>The shim learns of a dead VM within seconds: asks doctor until its first line says <paramref name="cause"/>.</summary>
    private async Task<CommandResult> UntilDoctorSaysAsync(string id, string cause)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var doctor = await SandboxctlAsync(null, "doctor", id);
            if (doctor.ExitCode == 1 && FirstLine(doctor).Contains(cause))
                return doctor;
            Assert.True(DateTime.UtcNow < deadline, $"doctor never said '{cause}':\n{doctor}");
            await Task.Delay(500);
        }
    }

    private Task<CommandResult> DoctorAsync(int expectedExit, params string[] arguments) => SandboxctlAsync(expectedExit, ["doctor", .. arguments]);

    private async Task<CommandResult> SandboxctlAsync(int? expectedExit, params string[] arguments)
    {
        var result = await ExternalCommand.RunAsync(SandboxctlBinary.Locate(), [.. arguments, "--state-root", _fixture.StateRoot], TimeSpan.FromSeconds(60), stdin: "");
        _output.WriteLine(result.ToString());
        if (expectedExit is { } expected)
            Assert.True(result.ExitCode == expected, $"sandboxctl {string.Join(' ', arguments)}: exit {result.ExitCode}, expected {expected}\n{result.Stdout}\n{result.Stderr}");
        return result;
    }

    private static string FirstLine(CommandResult result) => result.Stdout.Split('\n')[0];

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
