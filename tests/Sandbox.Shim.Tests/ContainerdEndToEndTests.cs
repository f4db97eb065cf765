using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Shim.Tests;

/// <summary>One private containerd (with the yardstick shim installed and the busybox image imported) for the
/// end-to-end tests of the task service with the runc backend.</summary>
public sealed class RuncBackedContainerdFixture : IAsyncLifetime
{
    public const string Runtime = YardstickShimBinary.Runtime;

    public PrivateContainerd Containerd { get; private set; } = null!;

    public string Image => BusyboxOciImage.DefaultName;

    public async Task InitializeAsync()
    {
        var options = new PrivateContainerdOptions();
        options.Shims[YardstickShimBinary.FileName] = YardstickShimBinary.Locate();
        options.Environment["SANDBOX_SHIM_BACKEND"] = "runc";
        Containerd = await PrivateContainerd.StartAsync(options);
        string tar = Path.Combine(Containerd.Directory, "busybox.tar");
        BusyboxOciImage.Build(tar);
        await Containerd.ImportImageAsync(tar);
    }

    public async Task DisposeAsync() => await Containerd.DisposeAsync();
}

/// <summary>
/// containerd → containerd-shim-yardstick-v2 (the shim's task service with the test-only runc backend,
/// SANDBOX_SHIM_BACKEND=runc) → host runc, through `ctr run`.
/// Needs root, containerd, ctr, runc and busybox-static.
/// </summary>
[Trait("Category", "EndToEnd")]
[Collection(EndToEndCollection.Name)]
public sealed class ContainerdEndToEndTests : IClassFixture<RuncBackedContainerdFixture>
{
    private readonly RuncBackedContainerdFixture _fixture;

    public ContainerdEndToEndTests(RuncBackedContainerdFixture fixture)
    {
        _fixture = fixture;
    }

    private PrivateContainerd Containerd => _fixture.Containerd;

    [Fact]
    public async Task Ctr_run_prints_the_output_and_leaves_nothing_behind()
    {
        var result = await RunAsync("e2e-echo", "echo", "hi");

        Assert.True(result.ExitCode == 0, Containerd.Describe(result));
        Assert.Equal("hi", result.Stdout.Trim());
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Ctr_run_passes_the_exit_code_through()
    {
        var result = await RunAsync("e2e-exit3", "sh", "-c", "echo out; echo err >&2; exit 3");

        Assert.True(result.ExitCode == 3, Containerd.Describe(result));
        Assert.Equal("out", result.Stdout.Trim());
        Assert.Contains("err", result.Stderr);
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Every_byte_of_a_large_output_arrives_before_the_exit()
    {
        var result = await RunAsync("e2e-large", "sh", "-c", "seq 1 20000");

        Assert.True(result.ExitCode == 0, Containerd.Describe(result));
        var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(20000, lines.Length);
        Assert.Equal("20000", lines[^1].Trim());
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Output_still_in_the_fifo_at_the_exit_reaches_a_late_reader()
    {
        var result = await Containerd.RunWithLateReaderAsync(RuncBackedContainerdFixture.Runtime, _fixture.Image, "e2e-late-reader", TimeSpan.FromMinutes(2));

        Assert.True(result.ExitCode == 0, Containerd.Describe(result));
        string expected = string.Concat(Enumerable.Range(1, 20000).Select(i => $"{i}\n"));
        Assert.True(expected == result.Stdout, $"{result.Stdout.Length} of {expected.Length} bytes arrived\n{Containerd.LogTail(40)}");
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Detached_container_supports_exec_ps_pause_resume_kill_and_delete()
    {
        const string id = "e2e-detached";
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", RuncBackedContainerdFixture.Runtime, _fixture.Image, id, "sleep", "1000");

        var exec = await Containerd.CtrAsync(new[] { "task", "exec", "--fifo-dir", Containerd.FifoDirectory, "--exec-id", "e1", id, "sh", "-c", "echo exec-out; exit 5" });
        Assert.True(exec.ExitCode == 5, Containerd.Describe(exec));
        Assert.Equal("exec-out", exec.Stdout.Trim());

        var ps = await Containerd.CtrOkAsync("task", "ps", id);
        Assert.Contains("PID", ps.Stdout);
        Assert.True(ps.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length >= 2, Containerd.Describe(ps));

        await Containerd.CtrOkAsync("task", "pause", id);
        Assert.Contains("PAUSED", (await Containerd.CtrOkAsync("task", "ls")).Stdout);
        await Containerd.CtrOkAsync("task", "resume", id);
        Assert.Contains("RUNNING", (await Containerd.CtrOkAsync("task", "ls")).Stdout);

        await Containerd.CtrOkAsync("task", "kill", "-s", "SIGKILL", id);
        await CtrSteps.WaitUntilAsync(async () => (await Containerd.CtrOkAsync("task", "ls")).Stdout.Contains("STOPPED"));
        await Containerd.CtrOkAsync("task", "delete", id);
        await Containerd.CtrOkAsync("container", "rm", id);
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Containers_of_one_pod_share_one_daemon_until_the_last_is_gone()
    {
        string[] annotation = { "--annotation", "io.kubernetes.cri.sandbox-id=e2e-pod" };
        await Containerd.CtrOkAsync(new[] { "run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", RuncBackedContainerdFixture.Runtime }.Concat(annotation)
            .Concat(new[] { _fixture.Image, "e2e-pod-a", "sleep", "1000" }).ToArray());
        await Containerd.CtrOkAsync(new[] { "run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", RuncBackedContainerdFixture.Runtime }.Concat(annotation)
            .Concat(new[] { _fixture.Image, "e2e-pod-b", "sleep", "1000" }).ToArray());

        Assert.Single(Containerd.LeftoverShimProcesses());
        Assert.Single(Containerd.LeftoverShimSockets());

        await StopAndRemoveAsync("e2e-pod-a");
        Assert.Single(Containerd.LeftoverShimProcesses());
        var stillThere = await Containerd.CtrAsync(new[] { "task", "exec", "--fifo-dir", Containerd.FifoDirectory, "--exec-id", "e2", "e2e-pod-b", "echo", "alive" });
        Assert.True(stillThere.ExitCode == 0 && stillThere.Stdout.Trim() == "alive", Containerd.Describe(stillThere));

        await StopAndRemoveAsync("e2e-pod-b");
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task A_killed_daemon_is_cleaned_up_by_containerd_through_delete()
    {
        const string id = "e2e-shimkill";
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", RuncBackedContainerdFixture.Runtime, _fixture.Image, id, "sleep", "1000");
        int daemon = Assert.Single(Containerd.LeftoverShimProcesses());

        System.Diagnostics.Process.GetProcessById(daemon).Kill();

        // containerd notices the lost connection, runs `delete` and drops the task
        await CtrSteps.WaitUntilAsync(async () => !(await Containerd.CtrOkAsync("task", "ls")).Stdout.Contains(id));
        await Containerd.CtrOkAsync("container", "rm", id);
        await AssertNothingLeftAsync();
        Assert.DoesNotContain(id, (await Containerd.CtrAsync(new[] { "task", "ls" })).Stdout);
    }

    [Fact]
    public async Task SIGTERM_stops_the_daemon_in_order_and_it_leaves_nothing_behind()
    {
        const string id = "e2e-sigterm";
        await Containerd.CtrOkAsync("run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", RuncBackedContainerdFixture.Runtime, _fixture.Image, id, "sleep", "1000");
        int daemon = Assert.Single(Containerd.LeftoverShimProcesses());
        Assert.NotEmpty(Containerd.LeftoverMounts());

        var kill = await ExternalCommand.RunAsync("kill", new[] { "-TERM", daemon.ToString() }, TimeSpan.FromSeconds(30));
        Assert.Equal(0, kill.ExitCode);

        // the daemon kills its container, unmounts the rootfs and removes its socket before exiting
        await CtrSteps.WaitUntilAsync(() => Task.FromResult(Containerd.LeftoverShimProcesses().Count == 0));
        Assert.Empty(Containerd.LeftoverShimSockets());
        Assert.Empty(Containerd.LeftoverMounts());
        await CtrSteps.WaitUntilAsync(async () => !(await Containerd.CtrOkAsync("task", "ls")).Stdout.Contains(id));
        await Containerd.CtrOkAsync("container", "rm", id);
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Ctr_run_with_a_terminal_gets_a_pty()
    {
        // ctr -t needs a terminal of its own: `script` gives it one
        string ctr = $"ctr -a {Containerd.GrpcAddress} run --fifo-dir {Containerd.FifoDirectory} -t --rm --runtime {RuncBackedContainerdFixture.Runtime} " +
                     $"{_fixture.Image} e2e-tty sh -c 'tty; echo cols=$(stty size 2>/dev/null); exit 4'";
        var result = await ExternalCommand.RunAsync("script", new[] { "-qec", ctr, "/dev/null" }, TimeSpan.FromMinutes(2));

        Assert.True(result.ExitCode == 4, Containerd.Describe(result));
        Assert.Contains("/dev/pts/", result.Stdout);
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Output_goes_to_a_logging_binary_given_as_a_binary_log_uri()
    {
        var run = await Containerd.RunWithLoggingBinaryAsync(RuncBackedContainerdFixture.Runtime, _fixture.Image, "e2e-binlog", TimeSpan.FromMinutes(2));

        Assert.True(run.Ctr.ExitCode == 2, Containerd.Describe(run.Ctr));
        Assert.Equal("to-stdout\n", run.Stdout);
        Assert.Equal("to-stderr\n", run.Stderr);
        Assert.Equal("e2e-binlog default", run.Ids);
        await AssertNothingLeftAsync();
    }

    [Fact]
    public async Task A_logging_binary_that_does_not_exist_fails_the_run_with_its_path()
    {
        var result = await Containerd.CtrAsync(new[] { "run", "--rm", "--log-uri", "binary:///nonexistent/logger", "--runtime",
            RuncBackedContainerdFixture.Runtime, _fixture.Image, "e2e-binlog-missing", "true" }, TimeSpan.FromMinutes(2));

        Assert.True(result.ExitCode != 0, Containerd.Describe(result));
        Assert.Contains("/nonexistent/logger", result.Stderr);
        await Containerd.CtrAsync(new[] { "container", "rm", "e2e-binlog-missing" });
        await AssertNothingLeftAsync();
    }

    /// <summary>containerd 2.x gets the JSON bootstrap and speaks containerd.task.v3.Task; 1.6 and 1.7 the plain address (v2).</summary>
    [Fact]
    public async Task The_shim_speaks_the_task_api_version_of_its_containerd_release()
    {
        var result = await RunAsync("e2e-taskapi", "true");

        Assert.True(result.ExitCode == 0, Containerd.Describe(result));
        var connecting = Containerd.Log.Split('\n').Where(l => l.Contains("connecting to shim", StringComparison.Ordinal) && l.Contains("e2e-taskapi")).ToList();
        if (Containerd.Release.Major >= 2)
            Assert.True(connecting.Any(l => l.Contains("version=3")), $"{Containerd.Release}: no 'connecting to shim ... version=3' line:\n{string.Join('\n', connecting)}\n{Containerd.LogTail(40)}");
        else
            Assert.DoesNotContain(connecting, l => l.Contains("version=3"));
        await AssertNothingLeftAsync();
    }

    private async Task StopAndRemoveAsync(string id)
    {
        await Containerd.CtrOkAsync("task", "kill", "-s", "SIGKILL", id);
        await CtrSteps.WaitUntilAsync(async () => (await Containerd.CtrOkAsync("task", "ls")).Stdout.Split('\n').Any(l => l.StartsWith(id) && l.Contains("STOPPED")));
        await Containerd.CtrOkAsync("task", "delete", id);
        await Containerd.CtrOkAsync("container", "rm", id);
    }

    private Task<CommandResult> RunAsync(string id, params string[] command) =>
        Containerd.CtrAsync(new[] { "run", "--fifo-dir", Containerd.FifoDirectory, "--rm", "--runtime", RuncBackedContainerdFixture.Runtime, _fixture.Image, id }.Concat(command),
            TimeSpan.FromMinutes(2));

    private async Task AssertNothingLeftAsync()
    {
        // the daemon exits after containerd's Shutdown and the `delete` subcommand; give it a moment
        for (int i = 0; i < 200 && (Containerd.LeftoverShimProcesses().Count > 0 || Containerd.LeftoverShimSockets().Count > 0); i++)
            await Task.Delay(50);
        Assert.Empty(Containerd.LeftoverShimProcesses());
        Assert.Empty(Containerd.LeftoverShimSockets());
        Assert.Empty(Containerd.LeftoverMounts());
    }
}
