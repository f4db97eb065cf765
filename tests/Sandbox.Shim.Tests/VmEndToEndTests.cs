using Sandbox.Runtime.Cgroups;
using Sandbox.Hypervisors.Jail;
using Sandbox.Runtime.Sandboxes;
using Sandbox.Shim.Tests.Confinement;
using Sandbox.Hypervisors.Processes;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Shim.Tests;

/// <summary>The end-to-end classes start containerds and VMs: run them one after another (2 cores, TCG).</summary>
[CollectionDefinition(Name)]
public sealed class EndToEndCollection
{
    public const string Name = "containerd end-to-end";
}

/// <summary>
/// A private containerd with the shim installed (VM backend, the default), a configuration file (through
/// $SANDBOX_CONFIG) that keeps the sandboxes' state under a private directory, and the busybox image. The reference
/// runtime io.containerd.runc.v2 (Debian's containerd-shim-runc-v2) runs on the same containerd.
/// </summary>
public sealed class VmBackedContainerdFixture : IAsyncLifetime
{
    public const string Runtime = "io.containerd.sandbox.v2";
    public const string RuncRuntime = "io.containerd.runc.v2";

    private string _directory = "";

    public PrivateContainerd Containerd { get; private set; } = null!;

    public string Image => BusyboxOciImage.DefaultName;

    /// <summary>runtime.state_root of the shim: where every sandbox's state directory goes.</summary>
    public string StateRoot { get; private set; } = "";

    /// <summary>The shim's configuration.toml after [runtime] state_root (which the fixture sets).</summary>
    public string Configuration { get; init; } = "[agent]\nready_timeout = 120\nrpc_timeout = 60\n";

    public async Task InitializeAsync()
    {
        _directory = Directory.CreateTempSubdirectory("sbe2e-").FullName;
        StateRoot = Path.Combine(_directory, "sb");
        string configuration = Path.Combine(_directory, "configuration.toml");
        await File.WriteAllTextAsync(configuration, $"[runtime]\nstate_root = \"{StateRoot}\"\n\n{Configuration}");

        var options = new PrivateContainerdOptions();
        options.Shims[ShimBinary.FileName] = ShimBinary.Locate();
        options.Environment["SANDBOX_CONFIG"] = configuration;
        if (CheckoutGuestDirectory() is { } guest)
            options.Environment["SANDBOX_GUEST_DIR"] = guest;
        Containerd = await PrivateContainerd.StartAsync(options);
        string tar = Path.Combine(Containerd.Directory, "busybox.tar");
        BusyboxOciImage.Build(tar);
        await Containerd.ImportImageAsync(tar);
    }

    public async Task DisposeAsync()
    {
        await Containerd.DisposeAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await LeftoverVmProcesses.KillAsync(StateRoot, timeout.Token);
        foreach (var mountPoint in MountPointsBelow(_directory).OrderByDescending(m => m.Length))
            await ExternalCommand.RunAsync("umount", new[] { "-l", mountPoint }, TimeSpan.FromSeconds(30));
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // a busy leftover: the temp directory stays
        }
    }

    public static IReadOnlyList<string> MountPointsBelow(string directory) =>
        File.ReadAllLines("/proc/self/mountinfo")
            .Select(line => line.Split(' ')[4])
            .Where(mountPoint => mountPoint.StartsWith(directory + "/", StringComparison.Ordinal))
            .ToArray();

    /// <summary>build/guest of this checkout (`make image`), so that the tests boot the image built from these sources.</summary>
    private static string? CheckoutGuestDirectory() =>
        Sandbox.Runtime.Sandboxes.GuestAssets.CheckoutDirectory() is { } guest && File.Exists(Path.Combine(guest, "vmlinux")) ? guest : null;
}

/// <summary>
/// containerd 1.6 → containerd-shim-sandbox-v2 → a QEMU VM per sandbox → the in-guest agent → crun, through `ctr`.
/// Where runc is the reference, the same command also runs through io.containerd.runc.v2 and the two must agree.
/// Every test ends with nothing left: no shim, QEMU or vhost-device-vsock process, no mount, no state directory.
/// Needs root, containerd, ctr, runc, qemu-system-x86_64, vhost-device-vsock (or /dev/vhost-vsock), busybox-static
/// and the guest image (`make image`).
/// </summary>
[Trait("Category", "EndToEnd")]
[Collection(EndToEndCollection.Name)]
public sealed class VmEndToEndTests : IClassFixture<VmBackedContainerdFixture>, IAsyncLifetime
{
    private const string Runtime = VmBackedContainerdFixture.Runtime;
    private const string RuncRuntime = VmBackedContainerdFixture.RuncRuntime;
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(3);

    private readonly VmBackedContainerdFixture _fixture;

    public VmEndToEndTests(VmBackedContainerdFixture fixture)
    {
        _fixture = fixture;
    }

    private PrivateContainerd Containerd => _fixture.Containerd;

    public Task InitializeAsync() => Task.CompletedTask;

    /// <summary>A failed test must not fail the next ones: remove whatever task and container it left.</summary>
    public async Task DisposeAsync()
    {
        foreach (string task in Lines((await Containerd.CtrAsync(new[] { "task", "ls", "-q" })).Stdout))
        {
            await Containerd.CtrAsync(new[] { "task", "kill", "-s", "SIGKILL", task });
            await Containerd.CtrAsync(new[] { "task", "rm", "-f", task });
        }
        foreach (string container in Lines((await Containerd.CtrAsync(new[] { "container", "ls", "-q" })).Stdout))
            await Containerd.CtrAsync(new[] { "container", "rm", container });
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    [Fact]
    public async Task Ctr_run_echoes_from_a_vm_with_its_own_kernel()
    {
        string[] command = { "sh", "-c", "echo hi; cat /proc/sys/kernel/osrelease; hostname" };
        var vm = await RunAsync(Runtime, "vm-echo", command);
        var runc = await RunAsync(RuncRuntime, "runc-echo", command);

        Assert.True(vm.ExitCode == 0, Containerd.Describe(vm));
        var lines = vm.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("hi", lines[0]);
        Assert.Equal("vm-echo", lines[2].Trim()); // no hostname in the spec: the VM is named after its sandbox
        string hostKernel = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        Assert.NotEqual(hostKernel, lines[1].Trim());
        Assert.Equal(hostKernel, runc.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)[1].Trim());
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Exit_code_environment_working_directory_and_stderr_match_runc()
    {
        string[] command = { "sh", "-c", "echo \"$FOO\"; pwd; echo to-stderr >&2; exit 3" };
        string[] flags = { "--env", "FOO=bar baz", "--cwd", "/tmp" };
        var vm = await RunAsync(Runtime, "vm-exit", command, flags);
        var runc = await RunAsync(RuncRuntime, "runc-exit", command, flags);

        Assert.True(vm.ExitCode == 3, Containerd.Describe(vm));
        Assert.Equal("bar baz\n/tmp\n", vm.Stdout.Replace("\r", ""));
        Assert.Contains("to-stderr", vm.Stderr);
        Assert.Equal(runc.ExitCode, vm.ExitCode);
        Assert.Equal(runc.Stdout, vm.Stdout);
        Assert.Equal(runc.Stderr.Trim(), vm.Stderr.Trim());
        await AssertNothingLeftAsync();
    }

    /// <summary>`ctr run --rootfs DIR`: the spec's root.path names a host directory and containerd mounts no snapshot;
    /// the container in the VM runs in that directory, as runc's does, and the directory is left as it was.</summary>
    [Fact]
    public async Task Ctr_run_with_a_rootfs_directory_runs_in_that_directory_as_runc_does()
    {
        string rootfs = Directory.CreateTempSubdirectory("vm-rootfs-dir-").FullName;
        try
        {
            foreach (string directory in new[] { "bin", "proc", "sys", "dev", "tmp", "etc" })
                Directory.CreateDirectory(Path.Combine(rootfs, directory));
            File.Copy("/bin/busybox", Path.Combine(rootfs, "bin", "busybox"));
            File.WriteAllText(Path.Combine(rootfs, "marker"), "from the host directory\n");
            string[] command = ["/bin/busybox", "cat", "/marker"];
            var vm = await Containerd.CtrAsync(["run", "--fifo-dir", Containerd.FifoDirectory, "--rm", "--runtime", Runtime, "--rootfs", rootfs, "vm-rootfs-dir", .. command], RunTimeout);
            var runc = await Containerd.CtrAsync(["run", "--fifo-dir", Containerd.FifoDirectory, "--rm", "--runtime", RuncRuntime, "--rootfs", rootfs, "runc-rootfs-dir", .. command], RunTimeout);

            Assert.True(vm.ExitCode == 0, Containerd.Describe(vm));
            Assert.Equal("from the host directory", vm.Stdout.Trim());
            Assert.Equal(runc.Stdout, vm.Stdout);
            await AssertNothingLeftAsync();
            Assert.Equal("from the host directory\n", File.ReadAllText(Path.Combine(rootfs, "marker")));
        }
        finally
        {
            Directory.Delete(rootfs, recursive: true);
        }
    }

    /// <summary>The container's /dev is the one runc gives it: the same entries, types and modes.</summary>
    [Fact]
    public async Task The_dev_listing_matches_runc()
    {
        // name, type and mode of every entry (busybox stat), sorted; sizes and times differ between kernels
        string[] command = { "sh", "-c", "cd /dev && for f in $(ls -A | sort); do stat -c '%n %F %a' \"$f\"; done" };
        var vm = await RunAsync(Runtime, "vm-dev", command);
        var runc = await RunAsync(RuncRuntime, "runc-dev", command);

        Assert.True(vm.ExitCode == 0, Containerd.Describe(vm));
        Assert.True(runc.ExitCode == 0, Containerd.Describe(runc));
        Assert.Equal(runc.Stdout, vm.Stdout);
        await AssertNothingLeftAsync();
    }

    /// <summary>
    /// No runc reference here: ctr sends CloseIO only when its stdin ends after the task was created, and the runc
    /// shim keeps its own writer on the stdin FIFO until CloseIO, so `ctr run` of runc with a short piped stdin hangs
    /// (seen with containerd 1.6.20). The sandbox shim also ends stdin when the client closes the FIFO.
    /// </summary>
    [Fact]
    public async Task Stdin_is_piped_into_the_container_until_its_end()
    {
        string input = string.Join("", Enumerable.Range(1, 2000).Select(i => $"line {i}\n"));
        var vm = await RunAsync(Runtime, "vm-stdin", new[] { "sh", "-c", "cat; echo end" }, stdin: input);

        Assert.True(vm.ExitCode == 0, Containerd.Describe(vm));
        Assert.Equal(input + "end\n", vm.Stdout);
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Ctr_run_with_a_terminal_gets_a_pty_in_the_vm()
    {
        // ctr -t needs a terminal of its own: `script` gives it one
        string ctr = $"ctr -a {Containerd.GrpcAddress} run --fifo-dir {Containerd.FifoDirectory} -t --rm --runtime {Runtime} " +
                     $"{_fixture.Image} vm-tty sh -c 'tty; stty size; exit 4'";
        var result = await ExternalCommand.RunAsync("script", new[] { "-qec", ctr, "/dev/null" }, RunTimeout);

        Assert.True(result.ExitCode == 4, Containerd.Describe(result));
        Assert.Contains("/dev/pts/", result.Stdout);
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Output_goes_to_a_logging_binary_given_as_a_binary_log_uri()
    {
        var run = await Containerd.RunWithLoggingBinaryAsync(Runtime, _fixture.Image, "vm-binlog", RunTimeout);

        Assert.True(run.Ctr.ExitCode == 2, Containerd.Describe(run.Ctr));
        Assert.Equal("to-stdout\n", run.Stdout);
        Assert.Equal("to-stderr\n", run.Stderr);
        Assert.Equal("vm-binlog default", run.Ids);
        await AssertNothingLeftAsync();
    }

    /// <summary>
    /// CRI's ids are 64 hex characters. The guest's console socket for a tty exec once lived at
    /// /run/sandbox/containers/&lt;id&gt;/exec-1.console.sock, past a Unix socket path's 108 bytes, so `kubectl exec -it`
    /// failed (issue 17). Both a tty container and a tty exec with such an id.
    /// </summary>
    [Fact]
    public async Task A_terminal_works_for_containers_and_execs_with_64_character_ids()
    {
        static string CriId() => Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)).ToLowerInvariant();
        string id = CriId(), execId = CriId(), ttyId = CriId();
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", Runtime, _fixture.Image, id, "sleep", "1000");
        try
        {
            string exec = $"ctr -a {Containerd.GrpcAddress} task exec --fifo-dir {Containerd.FifoDirectory} -t --exec-id {execId} {id} sh -c 'tty; exit 6'";
            var result = await ExternalCommand.RunAsync("script", new[] { "-qec", exec, "/dev/null" }, RunTimeout);

            Assert.True(result.ExitCode == 6, Containerd.Describe(result));
            Assert.Contains("/dev/pts/", result.Stdout);
        }
        finally
        {
            await Containerd.CtrAsync(new[] { "task", "kill", "-s", "SIGKILL", id });
            await CtrSteps.WaitUntilAsync(async () => !(await Containerd.CtrOkAsync("task", "ls")).Stdout.Contains("RUNNING"));
            await Containerd.CtrAsync(new[] { "task", "delete", id });
            await Containerd.CtrAsync(new[] { "container", "rm", id });
        }

        string run = $"ctr -a {Containerd.GrpcAddress} run --fifo-dir {Containerd.FifoDirectory} -t --rm --runtime {Runtime} {_fixture.Image} {ttyId} sh -c 'tty; exit 4'";
        var tty = await ExternalCommand.RunAsync("script", new[] { "-qec", run, "/dev/null" }, RunTimeout);
        Assert.True(tty.ExitCode == 4, Containerd.Describe(tty));
        Assert.Contains("/dev/pts/", tty.Stdout);
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Ten_megabytes_of_output_arrive_byte_exact_before_the_exit()
    {
        const int size = 10 * 1024 * 1024;
        var vm = await RunAsync(Runtime, "vm-large", new[] { "sh", "-c", $"seq 1 2000000 | head -c {size}" });

        Assert.True(vm.ExitCode == 0, $"exit {vm.ExitCode}, {vm.Stdout.Length} bytes of stdout\n{vm.Stderr}\n{Containerd.LogTail(40)}");
        string expected = string.Concat(Enumerable.Range(1, 2000000).Select(i => $"{i}\n"))[..size];
        Assert.True(expected == vm.Stdout, OutputDifference(expected, vm.Stdout) + "\n" + Containerd.LogTail(40));
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Output_still_in_the_fifo_at_the_exit_reaches_a_late_reader()
    {
        var result = await Containerd.RunWithLateReaderAsync(Runtime, _fixture.Image, "vm-late-reader", RunTimeout);

        Assert.True(result.ExitCode == 0, Containerd.Describe(result));
        string expected = string.Concat(Enumerable.Range(1, 20000).Select(i => $"{i}\n"));
        Assert.True(expected == result.Stdout, OutputDifference(expected, result.Stdout) + "\n" + Containerd.LogTail(40));
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Detached_container_supports_exec_ps_pause_resume_kill_and_delete()
    {
        const string id = "vm-detached";
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", Runtime, _fixture.Image, id, "sleep", "1000");

        var exec = await ExecAsync(id, "e1", null, "sh", "-c", "echo exec-out; echo exec-err >&2; exit 5");
        Assert.True(exec.ExitCode == 5, Containerd.Describe(exec));
        Assert.Equal("exec-out", exec.Stdout.Trim());
        Assert.Contains("exec-err", exec.Stderr);

        var where = await ExecWithFlagsAsync(id, "e2", new[] { "--cwd", "/etc" }, null, "sh", "-c", "pwd");
        Assert.True(where.ExitCode == 0 && where.Stdout.Trim() == "/etc", Containerd.Describe(where));

        var input = await ExecAsync(id, "e3", "from-stdin\n", "cat");
        Assert.True(input.ExitCode == 0 && input.Stdout == "from-stdin\n", Containerd.Describe(input));

        var signalled = await ExecAsync(id, "e4", null, "sh", "-c", "kill -TERM $$; sleep 10");
        Assert.True(signalled.ExitCode == 128 + 15, Containerd.Describe(signalled));

        var ps = await Containerd.CtrOkAsync("task", "ps", id);
        Assert.Contains("PID", ps.Stdout);
        Assert.True(ps.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length >= 2, Containerd.Describe(ps));

        await Containerd.CtrOkAsync("task", "pause", id);
        Assert.Contains("PAUSED", (await Containerd.CtrOkAsync("task", "ls")).Stdout);
        await Containerd.CtrOkAsync("task", "resume", id);
        Assert.Contains("RUNNING", (await Containerd.CtrOkAsync("task", "ls")).Stdout);
        var afterResume = await ExecAsync(id, "e5", null, "echo", "alive");
        Assert.True(afterResume.ExitCode == 0 && afterResume.Stdout.Trim() == "alive", Containerd.Describe(afterResume));

        await Containerd.CtrOkAsync("task", "kill", "-s", "SIGKILL", id);
        await CtrSteps.WaitUntilAsync(async () => (await Containerd.CtrOkAsync("task", "ls")).Stdout.Contains("STOPPED"));
        var delete = await Containerd.CtrOkAsync("task", "rm", id);
        Assert.Contains("exit code 137", delete.Stderr); // ctr 1.6 warns "task ... exit with non-zero exit code 137"
        await Containerd.CtrOkAsync("container", "rm", id);
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task A_missing_binary_fails_with_a_clear_error_and_leaves_nothing_behind()
    {
        var vm = await RunAsync(Runtime, "vm-missing", new[] { "no-such-binary" });
        var runc = await RunAsync(RuncRuntime, "runc-missing", new[] { "no-such-binary" });

        Assert.NotEqual(0, vm.ExitCode);
        Assert.NotEqual(0, runc.ExitCode);
        Assert.Contains("no-such-binary", vm.Stderr);
        Assert.Contains("vm-missing", vm.Stderr);
        await AssertNothingLeftAsync();
        Assert.DoesNotContain("vm-missing", (await Containerd.CtrOkAsync("container", "ls")).Stdout);
    }

    [Fact]
    public async Task Containers_of_one_pod_share_one_vm_until_the_last_is_gone()
    {
        string[] pod = { "--annotation", "io.kubernetes.cri.sandbox-id=vm-pod" };
        await Containerd.CtrOkAsync(new[] { "run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", Runtime }.Concat(pod)
            .Concat(new[] { _fixture.Image, "vm-pod-a", "sleep", "1000" }).ToArray());
        await Containerd.CtrOkAsync(new[] { "run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", Runtime }.Concat(pod)
            .Concat(new[] { _fixture.Image, "vm-pod-b", "sleep", "1000" }).ToArray());

        Assert.Single(Containerd.LeftoverShimProcesses());
        Assert.Equal(2, LeftoverVmProcesses.Find(_fixture.StateRoot).Count); // one QEMU and its vhost-device-vsock
        var bootA = await ExecAsync("vm-pod-a", "ba", null, "cat", "/proc/sys/kernel/random/boot_id");
        var bootB = await ExecAsync("vm-pod-b", "bb", null, "cat", "/proc/sys/kernel/random/boot_id");
        Assert.True(bootA.ExitCode == 0 && bootB.ExitCode == 0, Containerd.Describe(bootA) + Containerd.Describe(bootB));
        Assert.Equal(bootA.Stdout, bootB.Stdout);

        await StopAndRemoveAsync("vm-pod-a");
        var stillThere = await ExecAsync("vm-pod-b", "e2", null, "echo", "alive");
        Assert.True(stillThere.ExitCode == 0 && stillThere.Stdout.Trim() == "alive", Containerd.Describe(stillThere));

        await StopAndRemoveAsync("vm-pod-b");
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task A_killed_shim_daemon_is_cleaned_up_with_its_vm_by_containerd_through_delete()
    {
        const string id = "vm-shimkill";
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", Runtime, _fixture.Image, id, "sleep", "1000");
        int daemon = Assert.Single(Containerd.LeftoverShimProcesses());
        Assert.NotEmpty(LeftoverVmProcesses.Find(_fixture.StateRoot));

        System.Diagnostics.Process.GetProcessById(daemon).Kill();

        // containerd notices the lost connection, runs `delete`, which kills the VM and removes the sandbox
        await CtrSteps.WaitUntilAsync(async () => !(await Containerd.CtrOkAsync("task", "ls")).Stdout.Contains(id));
        await Containerd.CtrOkAsync("container", "rm", id);
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Our_kernel_boots_by_default_and_kernel_generic_boots_debians_with_its_modules()
    {
        string guest = GuestAssets.CheckoutDirectory() ?? GuestAssets.InstalledDirectory;
        string ours = (await File.ReadAllTextAsync(Path.Combine(guest, "kernel-release"))).Trim();
        string generic = (await File.ReadAllTextAsync(Path.Combine(guest, "kernel-release-generic"))).Trim();
        Assert.EndsWith("-sandbox", ours);
        // /proc/modules exists only in a kernel with loadable modules; 9p and the vsock transport are modules of the generic one
        string[] command = { "sh", "-c", "uname -r; if [ -e /proc/modules ]; then cut -d' ' -f1 /proc/modules | sort | tr '\\n' ' '; else echo no-modules; fi" };

        var byDefault = await RunAsync(Runtime, "vm-kernel-default", command);
        Assert.True(byDefault.ExitCode == 0, Containerd.Describe(byDefault));
        Assert.Equal([ours, "no-modules"], Lines(byDefault.Stdout));

        string configuration = Path.Combine(Path.GetDirectoryName(_fixture.StateRoot)!, "generic-kernel.toml");
        await File.WriteAllTextAsync(configuration,
            $"[hypervisor.qemu]\nkernel = \"generic\"\n\n[runtime]\nstate_root = \"{_fixture.StateRoot}\"\n");
        var fallback = await Containerd.CtrAsync(["run", "--rm", "--fifo-dir", Containerd.FifoDirectory, "--runtime", Runtime,
            "--runtime-config-path", configuration, _fixture.Image, "vm-kernel-generic", .. command], RunTimeout);
        Assert.True(fallback.ExitCode == 0, Containerd.Describe(fallback));
        var lines = Lines(fallback.Stdout);
        Assert.Equal(generic, lines[0]);
        Assert.Contains("9p", lines[1].Split(' '));
        Assert.Contains("vmw_vsock_virtio_transport", lines[1].Split(' '));
        await AssertNothingLeftAsync();
    }

    /// <summary>[hypervisor.qemu] template = true, through real containerd: the first container's shim builds the
    /// template, and each container's VM is a clone of it, its own machine.</summary>
    [Fact]
    public async Task With_template_on_containers_start_in_clones_of_a_template_made_once()
    {
        string configuration = Path.Combine(Path.GetDirectoryName(_fixture.StateRoot)!, "template-console.toml");
        await File.WriteAllTextAsync(configuration,
            $"[hypervisor.qemu]\ntemplate = true\n\n[agent]\ndebug_console = true\n\n[runtime]\nstate_root = \"{_fixture.StateRoot}\"\n");
        string templates = Path.Combine(Path.GetDirectoryName(_fixture.StateRoot)!, "templates");
        string[] identity = ["sh", "-c", "cat /proc/sys/kernel/random/boot_id; date +%s"];

        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", Runtime, "--runtime-config-path", configuration,
            _fixture.Image, "vm-clone-1", "sleep", "1000");
        var metadata = SandboxMetadata.TryRead(Path.Combine(_fixture.StateRoot, "vm-clone-1", "sandbox.json"))!;
        Assert.StartsWith("cloned from template", metadata.Start);
        Assert.NotNull(metadata.AgentSerialSocket);
        var first = await ExecAsync("vm-clone-1", "identity", null, identity);
        Assert.True(first.ExitCode == 0, Containerd.Describe(first));
        // the operator's tools reach the clone's agent on its second serial port while the shim holds the first
        string sandboxctl = SandboxctlBinary.Locate();
        var exec = await ExternalCommand.RunAsync(sandboxctl, ["exec", "--state-root", _fixture.StateRoot, "vm-clone-1", "--", "cat", "/proc/sys/kernel/random/boot_id"],
            TimeSpan.FromSeconds(60), stdin: "");
        Assert.True(exec.ExitCode == 0 && exec.Stdout.Trim() == Lines(first.Stdout)[0], $"sandboxctl exec: {exec}");
        var metrics = await ExternalCommand.RunAsync(sandboxctl, ["metrics", "--state-root", _fixture.StateRoot], TimeSpan.FromSeconds(60), stdin: "");
        Assert.True(metrics.ExitCode == 0 && metrics.Stdout.Contains("vm-clone-1", StringComparison.Ordinal), $"sandboxctl metrics: {metrics}");

        var second = await Containerd.CtrAsync(["run", "--rm", "--fifo-dir", Containerd.FifoDirectory, "--runtime", Runtime,
            "--runtime-config-path", configuration, _fixture.Image, "vm-clone-2", .. identity], RunTimeout);
        Assert.True(second.ExitCode == 0, Containerd.Describe(second));
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        Assert.NotEqual(Lines(first.Stdout)[0], Lines(second.Stdout)[0]); // boot ids: each clone is its own machine
        Assert.InRange(long.Parse(Lines(second.Stdout)[1]), now - 3, now + 1); // the host's clock, not the template's
        var template = Assert.Single(Directory.GetDirectories(templates));
        Assert.True(File.Exists(Path.Combine(template, "manifest.txt")));

        await Containerd.CtrOkAsync("task", "kill", "-s", "SIGKILL", "vm-clone-1");
        await Containerd.WaitUntilTaskStoppedOrGoneAsync("vm-clone-1", TimeSpan.FromSeconds(60));
        await Containerd.CtrOkAsync("task", "rm", "vm-clone-1");
        await Containerd.CtrOkAsync("container", "rm", "vm-clone-1");
        Assert.Empty(Directory.GetFiles(Path.Combine(template, "holders"))); // each shim released the template memory
        await AssertNothingLeftAsync();
    }

    /// <summary>A template that cannot be restored (its device state damaged) must not cost the container: the VM
    /// boots cold, and sandbox.json says so.</summary>
    [Fact]
    public async Task A_template_that_fails_to_restore_leaves_the_container_booting_cold()
    {
        string configuration = Path.Combine(Path.GetDirectoryName(_fixture.StateRoot)!, "template.toml");
        await File.WriteAllTextAsync(configuration, $"[hypervisor.qemu]\ntemplate = true\n\n[runtime]\nstate_root = \"{_fixture.StateRoot}\"\n");
        string templates = Path.Combine(Path.GetDirectoryName(_fixture.StateRoot)!, "templates");
        var warm = await Containerd.CtrAsync(["run", "--rm", "--fifo-dir", Containerd.FifoDirectory, "--runtime", Runtime,
            "--runtime-config-path", configuration, _fixture.Image, "vm-clone-warm", "true"], RunTimeout);
        Assert.True(warm.ExitCode == 0, Containerd.Describe(warm));
        foreach (string state in Directory.GetFiles(templates, "state", SearchOption.AllDirectories))
            await File.WriteAllTextAsync(state, "not a QEMU migration stream");

        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", Runtime, "--runtime-config-path", configuration,
            _fixture.Image, "vm-clone-cold", "sleep", "1000");
        var metadata = SandboxMetadata.TryRead(Path.Combine(_fixture.StateRoot, "vm-clone-cold", "sandbox.json"))!;
        Assert.Equal("booted", metadata.Start);
        var echo = await ExecAsync("vm-clone-cold", "echo", null, "echo", "still works");
        Assert.True(echo.ExitCode == 0 && echo.Stdout == "still works\n", Containerd.Describe(echo));

        await Containerd.CtrOkAsync("task", "kill", "-s", "SIGKILL", "vm-clone-cold");
        await Containerd.WaitUntilTaskStoppedOrGoneAsync("vm-clone-cold", TimeSpan.FromSeconds(60));
        await Containerd.CtrOkAsync("task", "rm", "vm-clone-cold");
        await Containerd.CtrOkAsync("container", "rm", "vm-clone-cold");
        Directory.Delete(templates, recursive: true); // the next test makes a sound one
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task The_runtime_config_path_configures_the_vm_and_SIGTERM_stops_it_in_order()
    {
        const string id = "vm-sigterm";
        string configuration = Path.Combine(Path.GetDirectoryName(_fixture.StateRoot)!, "two-vcpus.toml");
        await File.WriteAllTextAsync(configuration,
            $"[hypervisor.qemu]\ndefault_vcpus = 2\n\n[runtime]\nstate_root = \"{_fixture.StateRoot}\"\n");
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", Runtime, "--runtime-config-path", configuration,
            _fixture.Image, id, "sleep", "1000");

        var cpus = await ExecAsync(id, "cpus", null, "sh", "-c", "grep -c ^processor /proc/cpuinfo");
        Assert.True(cpus.ExitCode == 0 && cpus.Stdout.Trim() == "2", Containerd.Describe(cpus));
        string inEffect = await File.ReadAllTextAsync(Path.Combine(_fixture.StateRoot, id, "configuration.toml"));
        Assert.Contains($"# from: {configuration}", inEffect);
        Assert.Contains("default_vcpus = 2", inEffect);

        int daemon = Assert.Single(Containerd.LeftoverShimProcesses());
        var kill = await ExternalCommand.RunAsync("kill", new[] { "-TERM", daemon.ToString() }, TimeSpan.FromSeconds(30));
        Assert.Equal(0, kill.ExitCode);

        // the daemon stops the VM, detaches the rootfs and removes its socket and the state directory before exiting
        await CtrSteps.WaitUntilAsync(() => Task.FromResult(Containerd.LeftoverShimProcesses().Count == 0));
        await CtrSteps.WaitUntilAsync(async () => !(await Containerd.CtrOkAsync("task", "ls")).Stdout.Contains(id));
        await Containerd.CtrOkAsync("container", "rm", id);
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task When_qemu_dies_the_task_exits_with_137_and_the_vm_is_cleaned_up()
    {
        await KillingAVmProcessEndsTheTaskWith137Async("vm-qemukill", "qemu-system");
    }

    /// <summary>Issue 11: while a container runs, QEMU and vhost-device-vsock are each confined by sandbox-jailer, as
    /// /proc shows: their own mount namespace whose root holds the state directory, the share (with the container's
    /// rootfs, bound after QEMU started) and the guest image for QEMU, and none of the host's files; uid 0 with only
    /// QEMU's 9p capabilities (the daemon none); a seccomp filter (QEMU: ours and its own -sandbox); no_new_privs; no
    /// core dumps.</summary>
    [Fact]
    public async Task Qemu_and_the_vsock_daemon_run_jailed_as_proc_shows()
    {
        const string id = "vm-confined";
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", Runtime, _fixture.Image, id, "sleep", "1000");
        try
        {
            string state = Path.Combine(_fixture.StateRoot, id);
            string rootfsShell = Path.Combine(state, "shared", id, "rootfs", "bin", "sh");
            string[] hostOnly = [Containerd.RootDirectory, Containerd.StateDirectory, AppContext.BaseDirectory];
            var processes = LeftoverVmProcesses.Find(_fixture.StateRoot);
            var qemuProcess = Assert.Single(processes, p => p.CommandLine.Contains("qemu-system", StringComparison.Ordinal));
            var qemu = ProcessConfinement.Read(qemuProcess.Pid);
            qemu.AssertJailed(QemuJail.ShareCapabilities, hostOnly);
            Assert.True(qemu.SeccompFilters >= 2, $"QEMU has {qemu.SeccompFilters} seccomp filters, not the jail's and its own");
            Assert.True(qemu.Sees(Path.Combine(state, "qmp.sock")));
            Assert.True(qemu.Sees(rootfsShell), "the container's rootfs, bound after QEMU started, did not reach QEMU's mount namespace");
            var metadata = SandboxMetadata.TryRead(Path.Combine(state, "sandbox.json"))!;
            Assert.True(qemu.Sees(metadata.KernelPath));
            Assert.StartsWith("jailed", metadata.Confinement);

            foreach (var daemonProcess in processes.Where(p => p.CommandLine.Contains("vhost-device-vsock", StringComparison.Ordinal)))
            {
                var daemon = ProcessConfinement.Read(daemonProcess.Pid);
                daemon.AssertJailed([], hostOnly);
                Assert.True(daemon.Sees(Path.Combine(state, "vsock.sock")));
                Assert.False(daemon.Sees(rootfsShell), "the vsock daemon sees the pod's share");
                Assert.False(daemon.Sees(metadata.KernelPath), "the vsock daemon sees the guest kernel");
            }
        }
        finally
        {
            await StopAndRemoveAsync(id);
        }
        await AssertNothingLeftAsync();
    }

    /// <summary>Issue 11: a container's files keep the ownership runc gives them (`touch`, `chown`, `ls -ln`, `id`),
    /// but a guest cannot make a setuid or setgid file, nor a device node, in its share: both are refused in the guest
    /// and nothing of the kind appears on the host.</summary>
    [Fact]
    public async Task The_share_keeps_runc_ownership_but_refuses_setuid_files_and_device_nodes()
    {
        const string ownership = "cd /tmp && touch f && chown 1000:1000 f && mkdir d && chown 7:7 d && id && ls -ln f d | awk '{print $1, $3, $4, $NF}'";
        const string privileges = "cd /tmp && touch s && chmod 4755 s; echo chmod-setuid=$?; chmod 2755 s; echo chmod-setgid=$?; " +
                                  "mknod null c 1 3; echo mknod=$?; ls -ln s | cut -c1-10";
        var vm = await RunAsync(Runtime, "vm-owner", ["sh", "-c", ownership]);
        var runc = await RunAsync(RuncRuntime, "runc-owner", ["sh", "-c", ownership]);
        Assert.True(vm.ExitCode == 0, Containerd.Describe(vm));
        Assert.Equal(runc.Stdout, vm.Stdout);

        const string id = "vm-setuid";
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", Runtime, _fixture.Image, id, "sleep", "1000");
        try
        {
            var result = await Containerd.CtrAsync(["task", "exec", "--exec-id", "try", id, "sh", "-c", privileges]);
            // each refused call fails as a whole: s keeps the mode touch gave it
            Assert.Equal("chmod-setuid=1\nchmod-setgid=1\nmknod=1\n-rw-r--r--\n", result.Stdout);
            string tmp = Path.Combine(_fixture.StateRoot, id, "shared", id, "rootfs", "tmp");
            var mode = File.GetUnixFileMode(Path.Combine(tmp, "s"));
            Assert.False((mode & (UnixFileMode.SetUser | UnixFileMode.SetGroup)) != 0, $"the host file is {mode}");
            Assert.False(File.Exists(Path.Combine(tmp, "null")), "the guest made a device node on the host");
        }
        finally
        {
            await StopAndRemoveAsync(id);
        }
        await AssertNothingLeftAsync();
    }

    /// <summary>Killing vhost-device-vsock under a running container used to leave the sandbox stuck: `ctr task rm -f`
    /// failed and the shim, QEMU, mounts and state stayed (issue 15). The VM now ends as if QEMU had died.</summary>
    [Fact]
    public async Task When_the_vsock_daemon_dies_the_task_exits_with_137_and_the_vm_is_cleaned_up()
    {
        await KillingAVmProcessEndsTheTaskWith137Async("vm-vsockdkill", "vhost-device-vsock");
    }

    /// <summary>`ctr run -d`, kill -9 of the VM process whose command line contains <paramref name="processName"/>:
    /// the task stops, every VM process goes, `task rm` reports exit code 137, and nothing is left.</summary>
    private async Task KillingAVmProcessEndsTheTaskWith137Async(string id, string processName)
    {
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", Runtime, _fixture.Image, id, "sleep", "1000");
        var victim = Assert.Single(LeftoverVmProcesses.Find(_fixture.StateRoot), p => p.CommandLine.Contains(processName, StringComparison.Ordinal));

        System.Diagnostics.Process.GetProcessById(victim.Pid).Kill();

        await CtrSteps.WaitUntilAsync(async () => (await Containerd.CtrOkAsync("task", "ls")).Stdout.Split('\n').Any(l => l.StartsWith(id) && l.Contains("STOPPED")));
        await CtrSteps.WaitUntilAsync(() => Task.FromResult(LeftoverVmProcesses.Find(_fixture.StateRoot).Count == 0)); // the other VM process too
        var delete = await Containerd.CtrOkAsync("task", "rm", id);
        Assert.Contains("exit code 137", delete.Stderr);
        await Containerd.CtrOkAsync("container", "rm", id);
        await AssertNothingLeftAsync();
    }

    private async Task StopAndRemoveAsync(string id)
    {
        await Containerd.CtrOkAsync("task", "kill", "-s", "SIGKILL", id);
        await CtrSteps.WaitUntilAsync(async () => (await Containerd.CtrOkAsync("task", "ls")).Stdout.Split('\n').Any(l => l.StartsWith(id) && l.Contains("STOPPED")));
        await Containerd.CtrAsync(new[] { "task", "rm", id });
        await Containerd.CtrOkAsync("container", "rm", id);
    }

    private Task<CommandResult> RunAsync(string runtime, string id, string[] command, string[]? flags = null, string? stdin = null) =>
        Containerd.CtrAsync(new[] { "run", "--fifo-dir", Containerd.FifoDirectory, "--rm", "--runtime", runtime }
            .Concat(flags ?? Array.Empty<string>()).Concat(new[] { _fixture.Image, id }).Concat(command), RunTimeout, stdin: stdin);

    private Task<CommandResult> ExecAsync(string id, string execId, string? stdin, params string[] command) =>
        ExecWithFlagsAsync(id, execId, Array.Empty<string>(), stdin, command);

    private Task<CommandResult> ExecWithFlagsAsync(string id, string execId, string[] flags, string? stdin, params string[] command) =>
        Containerd.CtrAsync(new[] { "task", "exec", "--fifo-dir", Containerd.FifoDirectory, "--exec-id", execId }
            .Concat(flags).Concat(new[] { id }).Concat(command), RunTimeout, stdin: stdin);

    /// <summary>No shim, QEMU or vhost-device-vsock process, no mount and no sandbox state directory is left.</summary>
    private async Task AssertNothingLeftAsync()
    {
        // the daemon exits after containerd's Shutdown and the `delete` subcommand; give it a moment
        for (int i = 0; i < 300 && !NothingLeft(); i++)
            await Task.Delay(50);
        Assert.Empty(Containerd.LeftoverShimProcesses());
        Assert.Empty(Containerd.LeftoverShimSockets());
        Assert.Empty(LeftoverVmProcesses.Find(_fixture.StateRoot));
        Assert.Empty(Containerd.LeftoverMounts());
        Assert.Empty(VmBackedContainerdFixture.MountPointsBelow(_fixture.StateRoot));
        Assert.Empty(SandboxStateDirectory.List(_fixture.StateRoot)); // (its post-mortem records stay, bounded)
        Assert.Empty(LeftoverHostCgroups());
    }

    /// <summary>Sandbox cgroups of this suite's VMs (vm-*) left in containerd's default namespace cgroup, in any hierarchy.</summary>
    private static List<string> LeftoverHostCgroups() =>
        HostCgroupMounts.Read().Select(h => Path.Combine(h.MountPoint, "default")).Where(Directory.Exists)
            .SelectMany(d => Directory.GetDirectories(d, "vm-*")).ToList();

    /// <summary>`ctr task metrics`: runc's container gives its host cgroup (v1 here), the VM's its guest cgroup (v2),
    /// each as containerd's cgroups metrics type; both carry memory, CPU and pids.</summary>
    [Fact]
    public async Task Ctr_task_metrics_prints_memory_cpu_and_pids_as_for_runc()
    {
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", Runtime, _fixture.Image, "vm-metrics", "sleep", "1000");
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", RuncRuntime, _fixture.Image, "runc-metrics", "sleep", "1000");
        try
        {
            var vm = await Containerd.CtrOkAsync("task", "metrics", "vm-metrics");
            var runc = await Containerd.CtrOkAsync("task", "metrics", "runc-metrics");
            // ctr prints v1 metrics as memory.usage_in_bytes/cpuacct.usage, v2 as memory.usage/cpu.usage_usec
            foreach (var metrics in new[] { vm, runc })
            {
                Assert.Matches(@"memory\.usage(_in_bytes)?\s+[1-9]", metrics.Stdout);
                Assert.Matches(@"(cpu\.usage_usec|cpuacct\.usage)\s+[1-9]", metrics.Stdout);
                Assert.Matches(@"pids\.current\s+[1-9]", metrics.Stdout);
            }
            Assert.Contains("cpu.usage_usec", vm.Stdout); // cgroup v2 in the guest
        }
        finally
        {
            await StopAndRemoveAsync("vm-metrics");
            await StopAndRemoveAsync("runc-metrics");
        }
        await AssertNothingLeftAsync();
    }

    /// <summary>`ctr run` gives a container the cgroupsPath /&lt;namespace&gt;/&lt;id&gt;, where runc puts it: the VM's
    /// QEMU and vhost-device-vsock run there.</summary>
    [Fact]
    public async Task A_ctr_run_vm_runs_in_the_cgroup_runc_would_give_the_container()
    {
        const string id = "vm-cgroup";
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", Runtime, _fixture.Image, id, "sleep", "1000");
        var vm = LeftoverVmProcesses.Find(_fixture.StateRoot);
        Assert.Equal(2, vm.Count);
        foreach (var process in vm)
        {
            var memoryLine = File.ReadAllLines($"/proc/{process.Pid}/cgroup").First(l => l.Contains(":memory:", StringComparison.Ordinal) || l.StartsWith("0::", StringComparison.Ordinal));
            Assert.EndsWith(":/default/" + id, memoryLine);
        }
        await StopAndRemoveAsync(id);
        await AssertNothingLeftAsync();
    }

    private bool NothingLeft() =>
        Containerd.LeftoverShimProcesses().Count == 0 && Containerd.LeftoverShimSockets().Count == 0
        && LeftoverVmProcesses.Find(_fixture.StateRoot).Count == 0
        && !SandboxStateDirectory.List(_fixture.StateRoot).Any()
        && LeftoverHostCgroups().Count == 0;

    /// <summary>Where <paramref name="actual"/> leaves <paramref name="expected"/>: the sizes, the first differing offset,
    /// and, when bytes are missing, whether the rest matches again after a gap (which bytes were lost).</summary>
    private static string OutputDifference(string expected, string actual)
    {
        int first = 0;
        while (first < expected.Length && first < actual.Length && expected[first] == actual[first]) first++;
        string text = $"expected {expected.Length} bytes, got {actual.Length}; first difference at offset {first}";
        int missing = expected.Length - actual.Length;
        if (missing > 0 && expected.AsSpan(first + missing).SequenceEqual(actual.AsSpan(first)))
            text += $"; exactly bytes {first}..{first + missing} are missing, the rest is intact";
        return text;
    }

}
