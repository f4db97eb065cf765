using System.Diagnostics;
using System.Text;

namespace Sandbox.Shim.Tests.Containerd;

/// <summary>How to run a <see cref="PrivateContainerd"/>.</summary>
public sealed class PrivateContainerdOptions
{
    /// <summary>
    /// Shim binaries to install as &lt;opt&gt;/bin/&lt;name&gt; (containerd puts that directory first on the shims' PATH),
    /// e.g. ["containerd-shim-sandbox-v2"] = path of the binary.
    /// </summary>
    public Dictionary<string, string> Shims { get; } = new(StringComparer.Ordinal);

    /// <summary>Variables added to containerd's environment, which its shims inherit.</summary>
    public Dictionary<string, string> Environment { get; } = new(StringComparer.Ordinal);

    /// <summary>Keep the CRI plugin (off by default: it is slow to start and not needed for ctr).</summary>
    public bool EnableCri { get; init; }

    /// <summary>Appended verbatim to the generated config.toml (e.g. CRI runtime tables).</summary>
    public string ExtraConfigToml { get; init; } = "";

    /// <summary>How long to wait for containerd to answer `ctr version`.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>
/// A private containerd for end-to-end tests: its own root, state, gRPC and ttrpc sockets, opt directory and
/// config.toml under a temporary directory. The system containerd is never touched. Shims it starts get
/// SANDBOX_SHIM_SOCKET_DIR and SANDBOX_RUNC_ROOT inside that directory too, so that everything a test leaves is
/// visible there (<see cref="LeftoverShimProcesses"/>, <see cref="LeftoverMounts"/>, <see cref="LeftoverShimSockets"/>).
/// Disposing stops containerd, kills leftover shims of this instance, unmounts and deletes the directory.
/// </summary>
public sealed class PrivateContainerd : IAsyncDisposable
{
    private readonly StringBuilder _log = new();
    private readonly IReadOnlyDictionary<string, string> _environment;
    private Process? _process;

    private PrivateContainerd(string directory, ContainerdRelease release, IReadOnlyDictionary<string, string> environment)
    {
        Directory = directory;
        Release = release;
        _environment = environment;
    }

    /// <summary>The containerd daemon's pid (for its memory, descriptor and thread figures).</summary>
    public int Pid => _process?.Id ?? throw new InvalidOperationException("containerd is not running");

    /// <summary>The containerd release running (the one on PATH).</summary>
    public ContainerdRelease Release { get; }

    /// <summary>The private directory holding everything of this instance.</summary>
    public string Directory { get; }

    public string GrpcAddress => Path.Combine(Directory, "c.sock");

    public string TtrpcAddress => GrpcAddress + ".ttrpc";

    public string RootDirectory => Path.Combine(Directory, "root");

    public string StateDirectory => Path.Combine(Directory, "state");

    public string OptDirectory => Path.Combine(Directory, "opt");

    public string ShimSocketDirectory => Path.Combine(Directory, "s");

    public string RuncRoot => Path.Combine(Directory, "runc");

    public string ConfigPath => Path.Combine(Directory, "config.toml");

    /// <summary>For ctr's --fifo-dir, so that ctr's stdio FIFOs stay inside this instance too (default /run/containerd/fifo).</summary>
    public string FifoDirectory => Path.Combine(Directory, "fifo");

    /// <summary>containerd's own output so far (debug level).</summary>
    public string Log
    {
        get { lock (_log) return _log.ToString(); }
    }

    public static async Task<PrivateContainerd> StartAsync(PrivateContainerdOptions options)
    {
        var release = await ContainerdRelease.DetectAsync();
        // short: the shim socket path (dir + 64 hex) must stay within 106 bytes
        string directory = System.IO.Directory.CreateTempSubdirectory("ctd-").FullName;
        System.IO.Directory.CreateDirectory(Path.Combine(directory, "opt", "bin"));
        System.IO.Directory.CreateDirectory(Path.Combine(directory, "s"));
        foreach (var (name, binary) in options.Shims)
            File.CreateSymbolicLink(Path.Combine(directory, "opt", "bin", name), Path.GetFullPath(binary));

        var disabled = new List<string>
        {
            "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
            "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
        };
        if (!options.EnableCri)
            disabled.AddRange(release.ConfigVersion >= 3
                ? new[] { "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.podsandbox.controller.v1.podsandbox" }
                : new[] { "io.containerd.grpc.v1.cri" });
        string config = $"""
            version = {release.ConfigVersion}
            root = "{directory}/root"
            state = "{directory}/state"
            disabled_plugins = [{string.Join(", ", disabled.Select(p => $"\"{p}\""))}]

            [grpc]
              address = "{directory}/c.sock"

            [ttrpc]
              address = "{directory}/c.sock.ttrpc"

            [debug]
              level = "debug"

            [plugins."io.containerd.internal.v1.opt"]
              path = "{directory}/opt"

            {options.ExtraConfigToml}
            """;
        await File.WriteAllTextAsync(Path.Combine(directory, "config.toml"), config);

        var instance = new PrivateContainerd(directory, release, new Dictionary<string, string>(options.Environment, StringComparer.Ordinal));
        try
        {
            instance.Launch();
            await instance.WaitUntilServingAsync(options.StartTimeout);
        }
        catch
        {
            await instance.DisposeAsync();
            throw;
        }
        return instance;
    }

    /// <summary>
    /// Stops containerd (SIGTERM, as systemd does; SIGKILL after 30 s) and starts it again on the same root, state and
    /// sockets, as after an upgrade or a crash: the shims keep running and the new containerd must reconnect to them.
    /// </summary>
    public async Task RestartAsync(TimeSpan startTimeout)
    {
        if (_process is { HasExited: false })
        {
            await ExternalCommand.RunAsync("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(10));
            using var stopped = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await _process.WaitForExitAsync(stopped.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }
        }
        _process?.Dispose();
        lock (_log) _log.AppendLine("==== containerd restarted by the test ====");
        Launch();
        await WaitUntilServingAsync(startTimeout);
    }

    private void Launch()
    {
        var startInfo = new ProcessStartInfo("containerd")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            // containerd looks for a shim binary in its working directory before PATH: keep it away from the test
            // assembly's directory (which holds the shim's apphost), so that the shim installed in <opt>/bin is used
            WorkingDirectory = Directory,
        };
        startInfo.ArgumentList.Add("-c");
        startInfo.ArgumentList.Add(ConfigPath);
        startInfo.Environment["SANDBOX_SHIM_SOCKET_DIR"] = ShimSocketDirectory;
        startInfo.Environment["SANDBOX_RUNC_ROOT"] = RuncRoot;
        foreach (var (key, value) in _environment)
            startInfo.Environment[key] = value;

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException("cannot start containerd");
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
    }

    /// <summary>Runs <c>ctr -a &lt;grpc socket&gt; ARGS</c>.</summary>
    public Task<CommandResult> CtrAsync(IEnumerable<string> arguments, TimeSpan? timeout = null, string? stdin = null,
        Func<Task>? beforeReadingStdout = null) =>
        ExternalCommand.RunAsync("ctr", new[] { "-a", GrpcAddress }.Concat(arguments), timeout ?? TimeSpan.FromMinutes(2), stdin: stdin,
            beforeReadingStdout: beforeReadingStdout);

    /// <summary>The bundle containerd made for task <paramref name="id"/> (its rootfs is mounted inside).</summary>
    public string TaskBundle(string id, string containerdNamespace = "default") =>
        Path.Combine(StateDirectory, "io.containerd.runtime.v2.task", containerdNamespace, id);

    /// <summary>Imports an OCI/docker image tar into <paramref name="containerdNamespace"/>.</summary>
    public async Task ImportImageAsync(string tarPath, string containerdNamespace = "default")
    {
        var result = await CtrAsync(new[] { "-n", containerdNamespace, "images", "import", tarPath });
        if (result.ExitCode != 0)
            throw new InvalidOperationException($"importing {tarPath} failed: {result}\n--- containerd log ---\n{Log}");
    }

    /// <summary>The status `ctr task ls` shows for <paramref name="id"/> (RUNNING, STOPPED...), or null when it lists no such task.</summary>
    public async Task<string?> TaskStatusAsync(string id)
    {
        var list = await CtrAsync(["task", "ls"], TimeSpan.FromSeconds(60));
        return list.Stdout.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .FirstOrDefault(f => f.Length >= 3 && f[0] == id)?[2];
    }

    /// <summary>Polls until the task is STOPPED or gone, or <paramref name="timeout"/> has passed.</summary>
    public async Task WaitUntilTaskStoppedOrGoneAsync(string id, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline && await TaskStatusAsync(id) is { } status && status != "STOPPED")
            await Task.Delay(200);
    }

    /// <summary>Shim processes (any containerd-shim-*) whose working directory is inside this instance's state.</summary>
    public IReadOnlyList<int> LeftoverShimProcesses()
    {
        var pids = new List<int>();
        foreach (var dir in System.IO.Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid))
                continue;
            try
            {
                string cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
                string argv0 = cmdline.Split('\0')[0];
                if (!Path.GetFileName(argv0).StartsWith("containerd-shim-", StringComparison.Ordinal))
                    continue;
                var cwd = new DirectoryInfo(Path.Combine(dir, "cwd")).LinkTarget ?? "";
                if (cwd.StartsWith(Directory, StringComparison.Ordinal))
                    pids.Add(pid);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // the process exited meanwhile
            }
        }
        return pids;
    }

    /// <summary>Mount points inside this instance's directory (the snapshotter's own are excluded).</summary>
    public IReadOnlyList<string> LeftoverMounts() =>
        File.ReadAllLines("/proc/self/mountinfo")
            .Select(line => line.Split(' ')[4])
            .Where(mountPoint => mountPoint.StartsWith(Directory, StringComparison.Ordinal))
            .ToArray();

    public IReadOnlyList<string> LeftoverShimSockets() =>
        System.IO.Directory.Exists(ShimSocketDirectory)
            ? System.IO.Directory.GetFileSystemEntries(ShimSocketDirectory)
            : Array.Empty<string>();

    /// <summary>When set, containerd's log is copied into this directory on dispose (for debugging a run).</summary>
    public const string KeepLogVariable = "SANDBOX_E2E_LOG_DIR";

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: false); // SIGKILL: containerd's own cleanup is not what is tested here
            await _process.WaitForExitAsync();
        }
        _process?.Dispose();
        if (Environment.GetEnvironmentVariable(KeepLogVariable) is { Length: > 0 } keepDir)
        {
            System.IO.Directory.CreateDirectory(keepDir);
            await File.WriteAllTextAsync(Path.Combine(keepDir, $"containerd-{Path.GetFileName(Directory)}.log"), Log);
        }

        foreach (int pid in LeftoverShimProcesses())
        {
            try { Process.GetProcessById(pid).Kill(entireProcessTree: true); } catch (Exception e) when (e is ArgumentException or InvalidOperationException) { }
        }
        // containers started with runc by a killed shim
        if (System.IO.Directory.Exists(RuncRoot))
        {
            foreach (var nsDir in System.IO.Directory.GetDirectories(RuncRoot))
            {
                foreach (var container in System.IO.Directory.GetDirectories(nsDir))
                    await ExternalCommand.RunAsync("runc", new[] { "--root", nsDir, "delete", "--force", Path.GetFileName(container) }, TimeSpan.FromSeconds(30));
            }
        }
        foreach (var mountPoint in LeftoverMounts().OrderByDescending(m => m.Length))
            await ExternalCommand.RunAsync("umount", new[] { "-l", mountPoint }, TimeSpan.FromSeconds(30));
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // a busy leftover: the temp directory stays
        }
    }

    private async Task WaitUntilServingAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        CommandResult? last = null;
        while (DateTime.UtcNow < deadline)
        {
            if (_process!.HasExited)
                throw new InvalidOperationException($"containerd exited with {_process.ExitCode}:\n{Log}");
            if (File.Exists(GrpcAddress))
            {
                last = await CtrAsync(new[] { "version" }, TimeSpan.FromSeconds(10));
                if (last.ExitCode == 0)
                    return;
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"containerd did not serve within {timeout.TotalSeconds} s; last ctr version: {last}\n{Log}");
    }
}
