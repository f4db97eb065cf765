using System.ComponentModel;
using System.Diagnostics;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Sandbox.Hypervisors.Processes;

namespace Sandbox.Hypervisors.Qemu;

/// <summary>Timeouts and limits of <see cref="QemuAdapter"/>.</summary>
public sealed record QemuAdapterOptions
{
    /// <summary>From QEMU's exec until QMP reports the VM "running" (QEMU loads a 65 MB kernel in well under 1 s).</summary>
    public TimeSpan ReadyTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>From vhost-device-vsock's exec until its vhost-user socket exists.</summary>
    public TimeSpan DaemonSocketTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>How long a stop waits for QMP `quit` to end QEMU before SIGTERM.</summary>
    public TimeSpan QuitTimeout { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>How long a process gets between SIGTERM and SIGKILL.</summary>
    public TimeSpan TerminateGrace { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>TCG translation cache (tb-size) in MiB (see <see cref="QemuLaunchSpec.TcgTranslationCacheMiB"/>).</summary>
    public int TcgTranslationCacheMiB { get; init; } = QemuLaunchSpec.DefaultTcgTranslationCacheMiB;
    /// <summary>The same for a VM cloned from a template (<see cref="QemuLaunchSpec.DefaultCloneTcgTranslationCacheMiB"/>).</summary>
    public int CloneTcgTranslationCacheMiB { get; init; } = QemuLaunchSpec.DefaultCloneTcgTranslationCacheMiB;
    /// <summary>QEMU starts tried when an automatically chosen kernel-vsock CID turns out to be taken.</summary>
    public int GuestCidAttempts { get; init; } = 5;
}

/// <summary>
/// <see cref="IHypervisor"/> on QEMU: microvm (or q35) with PVH direct boot of the guest vmlinux, KVM or TCG, kernel
/// or hybrid vsock (one vhost-device-vsock daemon per VM), an optional 9p share, virtio-net cards on existing tap
/// devices (QEMU started through nsenter in the VM's network namespace, if one is set), the serial console in
/// &lt;state&gt;/console.log, QMP on &lt;state&gt;/qmp.sock. The exact command lines are written to
/// &lt;state&gt;/qemu.cmdline and &lt;state&gt;/vsockd.cmdline.
/// QEMU and the daemon are children of this process and live until StopAsync/DisposeAsync (or the guest powers off);
/// the token given to StartAsync only bounds the start-up.
/// </summary>
public sealed class QemuAdapter : IHypervisor
{
    /// <summary>The guest agent's vsock port.</summary>
    public const uint AgentPort = 1024;

    private readonly QemuAdapterOptions _options;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _lifecycle = new(1, 1);
    private readonly CancellationTokenSource _abortStart = new();
    private readonly TaskCompletionSource<VmExit> _exit = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private QemuLaunchPlan? _plan;
    private SupervisedProcess? _qemu;
    private SupervisedProcess? _daemon;

    /// <summary>How long a vhost-device-vsock exit waits for QEMU's own exit before it counts as the cause.</summary>
    private static readonly TimeSpan VsockDaemonLossGrace = TimeSpan.FromMilliseconds(500);

    /// <summary>Set when the host killed QEMU on purpose (vhost-device-vsock died under it, or the runtime abandoned a
    /// guest that stopped answering): the cause its exit reports.</summary>
    private volatile string? _exitCause;
    private bool _startCalled;
    private volatile bool _stopRequested;

    private readonly Func<VmConfig, QemuHostFacts> _probeHost;

    public QemuAdapter(QemuAdapterOptions? options = null, ILogger<QemuAdapter>? logger = null)
        : this(options, logger, QemuHostFactsProbe.Detect)
    {
    }

    /// <summary>For tests: host facts from <paramref name="probeHost"/> instead of the real probes.</summary>
    internal QemuAdapter(QemuAdapterOptions? options, ILogger<QemuAdapter>? logger, Func<VmConfig, QemuHostFacts> probeHost)
    {
        _options = options ?? new QemuAdapterOptions();
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _probeHost = probeHost;
    }

    public HypervisorCapabilities Capabilities => Plan.Capabilities;
    public int? Pid => _qemu?.Pid;
    /// <summary>Host pid of the vhost-device-vsock daemon (hybrid vsock), or null.</summary>
    public int? VsockDaemonPid => _daemon?.Pid;
    public string ConsoleLogPath => Plan.Spec.Files.ConsoleLog;

    public AgentEndpoint AgentEndpoint =>
        !Plan.Spec.HasVsock ? new VirtioSerialEndpoint(Plan.Spec.Files.AgentSerialSocket, Plan.Spec.Files.ToolsSerialSocket)
        : Plan.Spec.VsockMode == VsockMode.Hybrid ? new HybridVsockEndpoint(Plan.Spec.Files.HybridVsockSocket, AgentPort)
        : new KernelVsockEndpoint(Plan.Spec.GuestCid, AgentPort);

    /// <summary>The resolved launch plan (after PrepareAsync): the command line's inputs, the binaries used.</summary>
    public QemuLaunchPlan Plan => _plan ?? throw new InvalidOperationException("QemuAdapter: call PrepareAsync first");

    private string SandboxId => Plan.Spec.SandboxId;
    private QemuStateFiles Files => Plan.Spec.Files;

    /// <summary>The tb-size of a VM in <paramref name="role"/>: a clone's own setting, else the booted VMs' one.</summary>
    public int TcgTranslationCacheFor(VmTemplateRole? role) =>
        role is VmTemplateRole.CloneOf ? _options.CloneTcgTranslationCacheMiB : _options.TcgTranslationCacheMiB;

    public Task PrepareAsync(VmConfig config, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_plan is not null)
            throw new InvalidOperationException($"sandbox {config.SandboxId}: PrepareAsync was already called");
        var plan = QemuLaunchPlanner.Plan(config, _probeHost(config));
        plan = plan with { Spec = plan.Spec with { TcgTranslationCacheMiB = TcgTranslationCacheFor(config.Template) } };
        try
        {
            Directory.CreateDirectory(plan.Spec.Files.Directory);
            if (plan.JailerPath is not null)
                Directory.CreateDirectory(plan.Spec.Files.JailRoot);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HypervisorException(config.SandboxId, $"cannot create state directory {plan.Spec.Files.Directory}: {e.Message}", e);
        }
        _plan = plan;
        WriteCommandLines();
        _logger.LogInformation("sandbox {SandboxId}: QEMU {Machine}, {Capabilities}; command line in {CommandLineFile}",
            config.SandboxId, plan.Spec.Machine, plan.Capabilities.Reason, plan.Spec.Files.QemuCommandLine);
        return Task.CompletedTask;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _ = Plan; // throws before PrepareAsync
        ThrowIfNotStartable();
        using var startup = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _abortStart.Token);
        await _lifecycle.WaitAsync(startup.Token).ConfigureAwait(false);
        try
        {
            ThrowIfNotStartable();
            _startCalled = true;
            try
            {
                await StartProcessesAsync(startup.Token).ConfigureAwait(false);
            }
            catch (Exception failure)
            {
                await AbandonStartAsync(failure).ConfigureAwait(false);
                if (failure is OperationCanceledException && !cancellationToken.IsCancellationRequested && _abortStart.IsCancellationRequested)
                    throw new HypervisorException(SandboxId, "start-up was aborted by StopAsync", failure);
                throw;
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    private void ThrowIfNotStartable()
    {
        if (_startCalled)
            throw new InvalidOperationException($"sandbox {SandboxId}: StartAsync was already called");
        if (_stopRequested)
            throw new InvalidOperationException($"sandbox {SandboxId}: the VM was stopped; it cannot be started again");
    }

    private async Task StartProcessesAsync(CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        RemoveEphemeralFiles();
        AppDomain.CurrentDomain.ProcessExit += KillOnProcessExit;
        if (Plan.VsockDaemonPath is not null)
            await StartVsockDaemonAsync(cancellationToken).ConfigureAwait(false);

        for (var attempt = 1; ; attempt++)
        {
            var launch = QemuLaunchCommand.Build(Plan);
            WriteCommandLines();
            var qemu = StartQemu(launch);
            _qemu = qemu;
            _logger.LogInformation("sandbox {SandboxId}: QEMU started, pid {Pid}", SandboxId, qemu.Pid);
            if (Plan.Spec.Template is VmTemplateRole.CloneOf clone && !await RestoreAsync(qemu, clone, cancellationToken).ConfigureAwait(false))
                throw new HypervisorException(SandboxId, "QEMU exited while the VM was restored from its template. " +
                                                         DescribeExit(qemu, await qemu.Exited.ConfigureAwait(false)));
            if (await WaitUntilRunningAsync(qemu, cancellationToken).ConfigureAwait(false))
            {
                _logger.LogInformation("sandbox {SandboxId}: VM running after {Milliseconds} ms", SandboxId, watch.ElapsedMilliseconds);
                break;
            }
            var exitCode = await qemu.Exited.ConfigureAwait(false);
            if (exitCode == 0)
            {
                // The guest ran and powered off before we saw it running (possible with a trivial guest): not a failure.
                _logger.LogInformation("sandbox {SandboxId}: QEMU exited with code 0 during start-up", SandboxId);
                break;
            }
            if (Plan.GuestCidIsAutomatic && attempt < _options.GuestCidAttempts && IsGuestCidInUse(qemu.OutputTail))
            {
                var taken = Plan.Spec.GuestCid;
                _plan = Plan with { Spec = Plan.Spec with { GuestCid = QemuLaunchPlanner.PickGuestCid() } };
                _logger.LogInformation("sandbox {SandboxId}: guest CID {Taken} is in use, retrying with {Cid}", SandboxId, taken, Plan.Spec.GuestCid);
                continue;
            }
            throw new HypervisorException(SandboxId, "QEMU failed to start. " + DescribeExit(qemu, exitCode));
        }
        _ = RecordExitAsync(_qemu);
        if (_daemon is not null)
            _ = WatchDaemonAsync(_daemon);
    }

    /// <summary>Starts QEMU; a clone's QEMU inherits the template memory's descriptor (close-on-exec is lifted for
    /// the start only; a child this process starts at that very moment inherits it too, which costs nothing: the memfd
    /// is sealed against writes, at the latest once its copy ends, before any guest runs on it).</summary>
    private SupervisedProcess StartQemu(ProcessCommand launch)
    {
        if (Plan.Spec.Template is not VmTemplateRole.CloneOf clone)
            return StartProcess("QEMU", launch.Program, launch.Arguments, Files.QemuLog);
        lock (InheritedDescriptorLock)
        {
            Native.FileDescriptors.SetCloseOnExec(clone.MemoryDescriptor, false);
            try
            {
                return StartProcess("QEMU", launch.Program, launch.Arguments, Files.QemuLog);
            }
            finally
            {
                Native.FileDescriptors.SetCloseOnExec(clone.MemoryDescriptor, true);
            }
        }
    }

    /// <summary>Held while a descriptor is inheritable, so that two clones starting at once do not hand each other theirs.</summary>
    private static readonly object InheritedDescriptorLock = new();

    /// <summary>A clone: loads the template's device state into the waiting QEMU and lets the guest run. False when
    /// QEMU exits first.</summary>
    private async Task<bool> RestoreAsync(SupervisedProcess qemu, VmTemplateRole.CloneOf clone, CancellationToken cancellationToken)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        wait.CancelAfter(_options.ReadyTimeout);
        var watch = Stopwatch.StartNew();
        var restore = Task.Run(async () =>
        {
            await using var qmp = await ConnectQmpAsync(Files.QmpSocket, wait.Token).ConfigureAwait(false);
            // the device state points into guest RAM (virtio rings): the template's memory must be whole first
            await clone.MemoryReady.WaitAsync(wait.Token).ConfigureAwait(false);
            await QemuTemplateMigration.RestoreAsync(qmp, Files.MigrationSocket, clone.StateFile, wait.Token).ConfigureAwait(false);
        }, wait.Token);
        if (await Task.WhenAny(restore, qemu.Exited).ConfigureAwait(false) != restore)
        {
            await wait.CancelAsync().ConfigureAwait(false);
            await restore.ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
            return false;
        }
        try
        {
            await restore.ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or QmpException or SocketException
                                  || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw new HypervisorException(SandboxId, $"restoring the VM from its template failed: {e.Message}. " +
                                                     $"QEMU said:\n{Indent(qemu.OutputTail)}\nCommand line: {Files.QemuCommandLine}", e);
        }
        _logger.LogInformation("sandbox {SandboxId}: restored from the template {StateFile} in {Milliseconds} ms",
            SandboxId, clone.StateFile, watch.ElapsedMilliseconds);
        return true;
    }

    /// <summary>Connects to QMP once QEMU listens.</summary>
    private static async Task<QmpClient> ConnectQmpAsync(string socketPath, CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                return await QmpClient.ConnectAsync(socketPath, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException)
            {
                // Not listening yet.
            }
            await Task.Delay(5, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task<string> SaveAsTemplateAsync(string stateFile, CancellationToken cancellationToken)
    {
        if (Plan.Spec.Template is not VmTemplateRole.Source)
            throw new InvalidOperationException($"sandbox {SandboxId}: only a VM started as a template source can be saved as a template");
        if (_qemu is not { HasExited: false })
            throw new HypervisorException(SandboxId, "the template source VM is not running; nothing to save");
        var watch = Stopwatch.StartNew();
        try
        {
            await using (var qmp = await QmpClient.ConnectAsync(Files.QmpSocket, cancellationToken).ConfigureAwait(false))
                await QemuTemplateMigration.SaveAsync(qmp, Files.MigrationSocket, stateFile, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or QmpException or SocketException)
        {
            throw new HypervisorException(SandboxId, $"saving the VM as a template failed: {e.Message}. QEMU said:\n{Indent(_qemu.OutputTail)}", e);
        }
        _logger.LogInformation("sandbox {SandboxId}: saved as a template ({StateFile}, {Bytes} bytes of device state) in {Milliseconds} ms",
            SandboxId, stateFile, new FileInfo(stateFile).Length, watch.ElapsedMilliseconds);
        await StopAsync(cancellationToken).ConfigureAwait(false);
        return Files.TemplateMemory;
    }

    private async Task StartVsockDaemonAsync(CancellationToken cancellationToken)
    {
        var socket = Files.VhostUserVsockSocket;
        var command = QemuLaunchCommand.BuildVsockDaemon(Plan);
        var daemon = StartProcess("vhost-device-vsock", command.Program, command.Arguments, Files.VsockDaemonLog);
        _daemon = daemon;
        _logger.LogInformation("sandbox {SandboxId}: vhost-device-vsock started, pid {Pid}", SandboxId, daemon.Pid);
        var deadline = Stopwatch.StartNew();
        while (!File.Exists(socket))
        {
            if (daemon.HasExited)
                throw new HypervisorException(SandboxId,
                    $"vhost-device-vsock (pid {daemon.Pid}) exited with code {await daemon.Exited.ConfigureAwait(false)} before creating {socket}. " +
                    $"It said:\n{Indent(daemon.OutputTail)}\nCommand line: {Files.VsockDaemonCommandLine}");
            if (deadline.Elapsed > _options.DaemonSocketTimeout)
                throw new HypervisorException(SandboxId,
                    $"vhost-device-vsock (pid {daemon.Pid}) did not create {socket} within {_options.DaemonSocketTimeout.TotalSeconds} s. " +
                    $"It said:\n{Indent(daemon.OutputTail)}\nCommand line: {Files.VsockDaemonCommandLine}");
            await Task.WhenAny(daemon.Exited, Task.Delay(10, cancellationToken)).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <summary>True once QMP reports the VM running; false when QEMU exits first. Throws on timeout or cancellation.</summary>
    private async Task<bool> WaitUntilRunningAsync(SupervisedProcess qemu, CancellationToken cancellationToken)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        wait.CancelAfter(_options.ReadyTimeout);
        var running = WaitForQmpRunningAsync(Files.QmpSocket, wait.Token);
        if (await Task.WhenAny(running, qemu.Exited).ConfigureAwait(false) != running)
        {
            await wait.CancelAsync().ConfigureAwait(false);
            await running.ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
            return false;
        }
        try
        {
            await running.ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new HypervisorException(SandboxId,
                $"QEMU (pid {qemu.Pid}) did not report the VM running on {Files.QmpSocket} within {_options.ReadyTimeout.TotalSeconds} s. " +
                $"QEMU said:\n{Indent(qemu.OutputTail)}\nCommand line: {Files.QemuCommandLine}");
        }
    }

    private static async Task WaitForQmpRunningAsync(string socketPath, CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                await using var qmp = await QmpClient.ConnectAsync(socketPath, cancellationToken).ConfigureAwait(false);
                while (await qmp.QueryStatusAsync(cancellationToken).ConfigureAwait(false) != "running")
                    await Task.Delay(10, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (SocketException)
            {
                // Not listening yet.
            }
            catch (QmpException e) when (e.ConnectionClosed)
            {
                // QEMU is going away; the caller sees the exit.
            }
            await Task.Delay(10, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Start-up failed or was cancelled: nothing may keep running, and waiters learn how it ended.</summary>
    private async Task AbandonStartAsync(Exception failure)
    {
        var qemu = _qemu;
        var daemon = _daemon;
        qemu?.Kill();
        daemon?.Kill();
        if (qemu is not null)
            await qemu.Exited.ConfigureAwait(false);
        if (daemon is not null)
            await daemon.Exited.ConfigureAwait(false);
        RemoveEphemeralFiles();
        AppDomain.CurrentDomain.ProcessExit -= KillOnProcessExit;
        if (qemu is not null)
            await RecordExitAsync(qemu).ConfigureAwait(false);
        else
            _exit.TrySetResult(new VmExit(-1, DateTimeOffset.UtcNow) { Diagnostics = "QEMU never started: " + failure.Message });
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopRequested = true;
        await _abortStart.CancelAsync().ConfigureAwait(false);
        await _lifecycle.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            if (_qemu is { HasExited: false } qemu)
                await StopQemuAsync(qemu, cancellationToken).ConfigureAwait(false);
            if (_daemon is { HasExited: false } daemon)
                await daemon.TerminateAsync(_options.TerminateGrace, cancellationToken).ConfigureAwait(false);
            if (_plan is not null)
                RemoveEphemeralFiles();
            AppDomain.CurrentDomain.ProcessExit -= KillOnProcessExit;
            if (_qemu is null)
                _exit.TrySetResult(new VmExit(-1, DateTimeOffset.UtcNow) { StoppedByHost = true, Diagnostics = "QEMU never started" });
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>QMP quit, then SIGTERM, then SIGKILL. Cancellation skips straight to SIGKILL.</summary>
    private async Task StopQemuAsync(SupervisedProcess qemu, CancellationToken cancellationToken)
    {
        using (var quit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            quit.CancelAfter(_options.QuitTimeout);
            try
            {
                await using var qmp = await QmpClient.ConnectAsync(Files.QmpSocket, quit.Token).ConfigureAwait(false);
                await qmp.QuitAsync(quit.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or QmpException or IOException or OperationCanceledException)
            {
                _logger.LogWarning("sandbox {SandboxId}: QMP quit failed ({Error}); sending SIGTERM", SandboxId, e.Message);
            }
        }
        if (await qemu.WaitAsync(_options.QuitTimeout, cancellationToken).ConfigureAwait(false))
            return;
        _logger.LogWarning("sandbox {SandboxId}: QEMU pid {Pid} still runs after quit; terminating", SandboxId, qemu.Pid);
        await qemu.TerminateAsync(_options.TerminateGrace, cancellationToken).ConfigureAwait(false);
    }

    public async Task<string> ReleaseBootImagesAsync(CancellationToken cancellationToken)
    {
        if (_qemu is not { HasExited: false } qemu)
            return "QEMU is not running";
        string[] images = [Plan.Spec.KernelPath, Plan.Spec.InitrdPath];
        // smaps parsing and the page-cache refill can take a few milliseconds of I/O: off the caller's thread
        var result = await Task.Run(() => MappedFilePageOut.Run(qemu.Pid, images), cancellationToken).ConfigureAwait(false);
        var description = (result.Problem is null ? "boot images paged out of QEMU: " : "boot images left resident in QEMU: ") + result.Describe();
        _logger.LogInformation("sandbox {SandboxId}: {Description}", SandboxId, description);
        return description;
    }

    public Task<VmExit> WaitForExitAsync(CancellationToken cancellationToken) => _exit.Task.WaitAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (_plan is null)
            return;
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
    }

    private async Task RecordExitAsync(SupervisedProcess qemu)
    {
        var exitCode = await qemu.Exited.ConfigureAwait(false);
        var byHost = _stopRequested;
        var exit = new VmExit(exitCode, qemu.ExitedAt ?? DateTimeOffset.UtcNow)
        {
            StoppedByHost = byHost,
            Diagnostics = byHost ? "" : _exitCause ?? DescribeExit(qemu, exitCode),
        };
        if (_exit.TrySetResult(exit))
        {
            if (byHost)
                _logger.LogInformation("sandbox {SandboxId}: QEMU exited with code {ExitCode} after a stop", SandboxId, exitCode);
            else
                _logger.LogWarning("sandbox {SandboxId}: {Exit}", SandboxId, exit.Diagnostics);
        }
    }

    /// <summary>
    /// vhost-device-vsock carries every byte between the host and the agent. When it dies under a running VM, the agent
    /// is out of reach for good (QEMU does not reconnect its vhost-user device), and a VM nobody can talk to kept every
    /// container "running" and made `ctr task rm -f` fail. So QEMU is stopped too: the sandbox then ends the way a VM
    /// that died does (every process exits 137, the exit events are published, delete cleans up), and the VM's exit
    /// says that the daemon was the cause.
    /// </summary>
    private async Task WatchDaemonAsync(SupervisedProcess daemon)
    {
        var exitCode = await daemon.Exited.ConfigureAwait(false);
        if (_stopRequested || _qemu is not { HasExited: false } qemu)
            return;
        // The daemon also exits when QEMU, its vhost-user peer, goes away: give a dying QEMU a moment to be reaped
        // first, so that its own exit is reported as the cause.
        await Task.WhenAny(qemu.Exited, Task.Delay(VsockDaemonLossGrace)).ConfigureAwait(false);
        if (_stopRequested || qemu.HasExited)
            return;
        var how = exitCode > 128 ? $"was killed by signal {exitCode - 128}" : $"exited with code {exitCode}";
        var output = daemon.OutputTail;
        KillQemuFor($"vhost-device-vsock (pid {daemon.Pid}) {how} while the VM ran, which cut the host off from the agent",
            $"vhost-device-vsock said:\n{(output.Length == 0 ? "  (nothing)" : Indent(output))}\nCommand line: {Files.VsockDaemonCommandLine}");
    }

    public void Abandon(string reason) =>
        KillQemuFor(reason, $"Last console lines ({Files.ConsoleLog}):\n{Indent(ConsoleLogTail.Read(Files.ConsoleLog))}");

    /// <summary>Kills a running QEMU on purpose; its exit then reports <paramref name="cause"/> and the details.</summary>
    private void KillQemuFor(string cause, string details)
    {
        if (_stopRequested || _qemu is not { HasExited: false } qemu)
            return;
        _exitCause = $"{cause}; QEMU (pid {qemu.Pid}) was killed so that the sandbox ends like a VM that died. {details}";
        _logger.LogError("sandbox {SandboxId}: {Cause}", SandboxId, _exitCause);
        qemu.Kill();
    }

    private string DescribeExit(SupervisedProcess qemu, int exitCode)
    {
        var how = exitCode > 128 ? $"was killed by signal {exitCode - 128}" : $"exited with code {exitCode}";
        var output = qemu.OutputTail;
        return $"QEMU (pid {qemu.Pid}) {how}. QEMU said:\n{(output.Length == 0 ? "  (nothing)" : Indent(output))}\n" +
               $"Last console lines ({Files.ConsoleLog}):\n{Indent(ConsoleLogTail.Read(Files.ConsoleLog))}\n" +
               $"Command line: {Files.QemuCommandLine}";
    }

    /// <summary>QEMU's message when the kernel refuses a vhost-vsock CID: "vhost-vsock: unable to set guest cid:
    /// Address already in use".</summary>
    public static bool IsGuestCidInUse(string qemuOutput) =>
        qemuOutput.Contains("unable to set guest cid", StringComparison.OrdinalIgnoreCase) &&
        qemuOutput.Contains("in use", StringComparison.OrdinalIgnoreCase);

    private SupervisedProcess StartProcess(string name, string path, IReadOnlyList<string> args, string outputLog)
    {
        SupervisedProcess process;
        try
        {
            process = SupervisedProcess.Start(name, path, args, outputLog: outputLog);
        }
        catch (Win32Exception e)
        {
            throw new HypervisorException(SandboxId, $"cannot run {name} ({path}): {e.Message}", e);
        }
        // Into the sandbox's host cgroup at once: the process has just exec'd, before it maps or touches guest memory.
        foreach (string procs in Plan.Spec.CgroupProcsFiles)
        {
            try
            {
                File.WriteAllText(procs, process.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                process.Kill();
                throw new HypervisorException(SandboxId, $"cannot move {name} (pid {process.Pid}) into the sandbox's host cgroup: {procs}: {e.Message}", e);
            }
        }
        return process;
    }

    private void WriteCommandLines()
    {
        try
        {
            var launch = QemuLaunchCommand.Build(Plan);
            File.WriteAllText(Files.QemuCommandLine, CommandLineText.Format(launch.Program, launch.Arguments));
            if (Plan.VsockDaemonPath is not null)
            {
                var daemon = QemuLaunchCommand.BuildVsockDaemon(Plan);
                File.WriteAllText(Files.VsockDaemonCommandLine, CommandLineText.Format(daemon.Program, daemon.Arguments));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HypervisorException(SandboxId, $"cannot write the command line files in {Files.Directory}: {e.Message}", e);
        }
    }

    private void RemoveEphemeralFiles()
    {
        foreach (var path in Files.Ephemeral)
        {
            try
            {
                File.Delete(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _logger.LogWarning("sandbox {SandboxId}: cannot remove {Path}: {Error}", SandboxId, path, e.Message);
            }
        }
    }

    /// <summary>If this process exits without stopping the VM (an unhandled shutdown path), take the VM with it.</summary>
    private void KillOnProcessExit(object? sender, EventArgs e)
    {
        _qemu?.Kill();
        _daemon?.Kill();
    }

    private static string Indent(string text) =>
        string.Join('\n', text.Split('\n').Select(line => "  " + line));
}
