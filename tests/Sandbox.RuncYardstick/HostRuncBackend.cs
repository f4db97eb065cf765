using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Sockets;
using System.Text.Json;
using Sandbox.Native;
using Sandbox.Runtime.Configuration;
using Sandbox.Shim.Backend;
using Sandbox.Shim.Native;
using Sandbox.Ttrpc;
using static Tmds.Linux.LibC;

namespace Sandbox.RuncYardstick;

/// <summary>
/// DEVELOPMENT BACKEND, NOT THE PRODUCT: runs containers directly on the host with runc
/// (<c>runc create/start/exec/kill/pause/resume/ps/delete</c>, bundle as given by containerd, containerd's FIFOs as
/// stdio through <see cref="StdioRelay"/>). It exists to exercise the whole containerd path before the VM backend
/// is ready and to serve as the reference behaviour in tests. Selected only by SANDBOX_SHIM_BACKEND=runc.
/// The shim daemon must be a child subreaper: runc leaves container processes to it, and
/// <see cref="ChildProcessReaper"/> collects their exits. Terminals come from runc's --console-socket.
/// </summary>
public sealed class HostRuncBackend : ISandboxBackend
{
    private static readonly TimeSpan OutputDrainLimit = TimeSpan.FromSeconds(5);

    private readonly RuncCli _runc;
    private readonly Action<string> _log;
    private readonly string _containerdNamespace;
    private readonly ConcurrentDictionary<string, RuncContainer> _containers = new(StringComparer.Ordinal);
    private int _execCounter;

    internal HostRuncBackend(RuncCli runc, string containerdNamespace, Action<string> log)
    {
        _containerdNamespace = containerdNamespace;
        _runc = runc;
        _log = log;
    }

    public async Task<uint> CreateContainerAsync(ContainerCreateRequest request, CancellationToken cancellationToken)
    {
        string owner = $"container {request.ContainerId}";
        string pidFile = Path.Combine(request.Bundle, "init.pid");
        File.Delete(pidFile);

        var stdio = StdioRelay.Open(request.Stdio, request.ContainerId, _containerdNamespace, owner, _log);
        var result = await RunWithStdioAsync(
            new[] { "create", "--bundle", request.Bundle, "--pid-file", pidFile, request.ContainerId },
            stdio, request.Bundle, owner, cancellationToken).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            stdio.Dispose();
            await _runc.RunAsync(new[] { "delete", "--force", request.ContainerId }, CancellationToken.None).ConfigureAwait(false);
            throw new SandboxBackendException(TtrpcStatusCode.Unknown, $"runc create failed: {result.Error}");
        }

        int pid = ReadPidFile(pidFile, owner);
        var container = new RuncContainer(request.ContainerId, request.Bundle, new RuncProcess(pid, stdio));
        _containers[request.ContainerId] = container;
        return (uint)pid;
    }

    public async Task<uint> StartContainerAsync(string containerId, CancellationToken cancellationToken)
    {
        var container = Find(containerId);
        var result = await _runc.RunAsync(new[] { "start", containerId }, cancellationToken).ConfigureAwait(false);
        if (!result.Succeeded)
            throw new SandboxBackendException(TtrpcStatusCode.Unknown, $"runc start failed: {result.Error}");
        return (uint)container.Init.Pid;
    }

    public async Task<uint> StartExecAsync(ExecStartRequest request, CancellationToken cancellationToken)
    {
        var container = Find(request.ContainerId);
        string owner = $"exec {request.ExecId} of container {request.ContainerId}";
        int n = Interlocked.Increment(ref _execCounter);
        string processFile = Path.Combine(container.Bundle, $"exec-{n}.process.json");
        string pidFile = Path.Combine(container.Bundle, $"exec-{n}.pid");
        await File.WriteAllTextAsync(processFile, request.ProcessSpecJson, cancellationToken).ConfigureAwait(false);

        var stdio = StdioRelay.Open(request.Stdio, request.ContainerId, _containerdNamespace, owner, _log);
        RuncResult result;
        try
        {
            result = await RunWithStdioAsync(
                new[] { "exec", "--process", processFile, "--detach", "--pid-file", pidFile, request.ContainerId },
                stdio, container.Bundle, owner, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(processFile);
        }
        if (!result.Succeeded)
        {
            stdio.Dispose();
            throw new SandboxBackendException(TtrpcStatusCode.Unknown, $"runc exec failed: {result.Error}");
        }

        int pid = ReadPidFile(pidFile, owner);
        File.Delete(pidFile);
        container.Execs[request.ExecId] = new RuncProcess(pid, stdio);
        return (uint)pid;
    }

    public async Task<ProcessExit> WaitAsync(string containerId, string execId, CancellationToken cancellationToken)
    {
        var process = FindProcess(containerId, execId);
        var exit = await process.Exit.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await process.Stdio.OutputCompleted.WaitAsync(OutputDrainLimit, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _log($"container {containerId} exec '{execId}': output still open {OutputDrainLimit.TotalSeconds} s after the process exited " +
                 "(a background process keeps it); reporting the exit anyway");
        }
        return exit;
    }

    public async Task KillAsync(string containerId, string execId, uint signal, bool all, CancellationToken cancellationToken)
    {
        var process = FindProcess(containerId, execId);
        if (execId.Length > 0)
        {
            if (process.Exit.IsCompleted)
                throw new SandboxBackendException(TtrpcStatusCode.NotFound, "process already finished");
            if (kill(process.Pid, (int)signal) != 0)
            {
                int errno = Errno.Last;
                throw errno == ESRCH
                    ? new SandboxBackendException(TtrpcStatusCode.NotFound, "process already finished")
                    : new SandboxBackendException(TtrpcStatusCode.Unknown, $"kill({process.Pid}, {signal}): {Errno.Describe(errno)}");
            }
            return;
        }

        var arguments = all
            ? new[] { "kill", "--all", containerId, signal.ToString(CultureInfo.InvariantCulture) }
            : new[] { "kill", containerId, signal.ToString(CultureInfo.InvariantCulture) };
        var result = await _runc.RunAsync(arguments, cancellationToken).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            if (result.Error.Contains("not running", StringComparison.Ordinal) || result.Error.Contains("does not exist", StringComparison.Ordinal))
                throw new SandboxBackendException(TtrpcStatusCode.NotFound, "process already finished");
            throw new SandboxBackendException(TtrpcStatusCode.Unknown, $"runc kill failed: {result.Error}");
        }
    }

    public Task PauseAsync(string containerId, CancellationToken cancellationToken) => RunSimpleAsync(containerId, "pause", cancellationToken);

    public Task ResumeAsync(string containerId, CancellationToken cancellationToken) => RunSimpleAsync(containerId, "resume", cancellationToken);

    /// <summary>`runc update --resources FILE`, the file holding the update's LinuxResources JSON (in the bundle).</summary>
    public async Task UpdateAsync(string containerId, ContainerResources resources, CancellationToken cancellationToken)
    {
        var container = Find(containerId);
        string file = Path.Combine(container.Bundle, "update-resources.json");
        await File.WriteAllTextAsync(file, resources.Json, cancellationToken).ConfigureAwait(false);
        try
        {
            var result = await _runc.RunAsync(new[] { "update", "--resources", file, containerId }, cancellationToken).ConfigureAwait(false);
            if (!result.Succeeded)
                throw new SandboxBackendException(TtrpcStatusCode.Unknown, $"runc update failed: {result.Error}");
        }
        finally
        {
            File.Delete(file);
        }
    }

    public Task<Google.Protobuf.WellKnownTypes.Any> StatsAsync(string containerId, CancellationToken cancellationToken) =>
        throw new SandboxBackendException(TtrpcStatusCode.Unimplemented, $"stats of container {containerId}: the runc yardstick backend has no metrics");

    public async Task<IReadOnlyList<uint>> ListPidsAsync(string containerId, CancellationToken cancellationToken)
    {
        Find(containerId);
        var result = await _runc.RunAsync(new[] { "ps", "--format", "json", containerId }, cancellationToken).ConfigureAwait(false);
        if (!result.Succeeded)
            throw new SandboxBackendException(TtrpcStatusCode.Unknown, $"runc ps failed: {result.Error}");
        using var document = JsonDocument.Parse(result.Stdout.Trim() is { Length: > 0 } json ? json : "[]");
        return document.RootElement.EnumerateArray().Select(e => e.GetUInt32()).ToArray();
    }

    public Task ResizePtyAsync(string containerId, string execId, uint width, uint height, CancellationToken cancellationToken)
    {
        FindProcess(containerId, execId).Stdio.Resize(width, height); // without a terminal: nothing to do, as in runc's shim
        return Task.CompletedTask;
    }

    public Task CloseStdinAsync(string containerId, string execId, CancellationToken cancellationToken)
    {
        FindProcess(containerId, execId).Stdio.CloseStdin();
        return Task.CompletedTask;
    }

    public Task DeleteExecAsync(string containerId, string execId, CancellationToken cancellationToken)
    {
        var container = Find(containerId);
        if (container.Execs.TryRemove(execId, out var process))
            process.Stdio.Dispose();
        return Task.CompletedTask;
    }

    public async Task DeleteContainerAsync(string containerId, CancellationToken cancellationToken)
    {
        var container = Find(containerId);
        var result = await _runc.RunAsync(new[] { "delete", "--force", containerId }, cancellationToken).ConfigureAwait(false);
        if (!result.Succeeded && !result.Error.Contains("does not exist", StringComparison.Ordinal))
            throw new SandboxBackendException(TtrpcStatusCode.Unknown, $"runc delete failed: {result.Error}");
        _containers.TryRemove(containerId, out _);
        container.Init.Stdio.Dispose();
        foreach (var exec in container.Execs.Values)
            exec.Stdio.Dispose();
    }

    public async Task ShutdownAsync(CancellationToken cancellationToken)
    {
        foreach (var container in _containers.Values.ToArray())
        {
            _log($"container {container.Id}: still present at shutdown; removing it with runc delete --force");
            try
            {
                await DeleteContainerAsync(container.Id, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                _log($"container {container.Id}: removing it at shutdown failed: {e.Message}");
            }
        }
    }

    /// <summary>
    /// runc create/exec with the process's stdio: pipes, or for a terminal a console socket on which runc hands over
    /// the pty master, which is then attached to containerd's FIFOs.
    /// </summary>
    private async Task<RuncResult> RunWithStdioAsync(string[] arguments, StdioRelay stdio, string bundle, string owner, CancellationToken cancellationToken)
    {
        if (!stdio.IsTerminal)
        {
            try
            {
                return await _runc.RunWithStdioAsync(arguments, stdio, RuncLogFile(bundle), cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                stdio.ReleaseChildEnds();
            }
        }

        using var console = ConsoleSocket.Create();
        using var stopReceiving = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var master = console.ReceiveMasterAsync(stopReceiving.Token);
        var withConsole = new[] { arguments[0], "--console-socket", console.Path }.Concat(arguments.Skip(1)).ToArray();
        var result = await _runc.RunWithStdioAsync(withConsole, stdio, RuncLogFile(bundle), cancellationToken).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            stopReceiving.Cancel();
            try { await master.ConfigureAwait(false); } catch (Exception e) when (e is OperationCanceledException or IOException or SocketException) { }
            return result;
        }
        int masterFd;
        try
        {
            masterFd = await master.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or IOException or SocketException)
        {
            throw new SandboxBackendException(TtrpcStatusCode.Unknown, $"{owner}: runc did not hand over the terminal: {e.Message}");
        }
        stdio.AttachTerminal(masterFd);
        return result;
    }

    private async Task RunSimpleAsync(string containerId, string command, CancellationToken cancellationToken)
    {
        Find(containerId);
        var result = await _runc.RunAsync(new[] { command, containerId }, cancellationToken).ConfigureAwait(false);
        if (!result.Succeeded)
            throw new SandboxBackendException(TtrpcStatusCode.Unknown, $"runc {command} failed: {result.Error}");
    }

    private RuncContainer Find(string containerId) =>
        _containers.TryGetValue(containerId, out var container)
            ? container
            : throw new SandboxBackendException(TtrpcStatusCode.NotFound, $"container {containerId} is not known to the runc backend");

    private RuncProcess FindProcess(string containerId, string execId)
    {
        var container = Find(containerId);
        if (execId.Length == 0)
            return container.Init;
        return container.Execs.TryGetValue(execId, out var process)
            ? process
            : throw new SandboxBackendException(TtrpcStatusCode.NotFound, $"exec {execId} of container {containerId} is not known to the runc backend");
    }

    private static string RuncLogFile(string bundle) => Path.Combine(bundle, "runc-log.json");

    private static int ReadPidFile(string path, string owner)
    {
        try
        {
            return int.Parse(File.ReadAllText(path).Trim(), CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or FormatException or OverflowException)
        {
            throw new SandboxBackendException(TtrpcStatusCode.Unknown, $"{owner}: runc succeeded but its pid file {path} is unreadable: {e.Message}");
        }
    }

    private sealed class RuncContainer
    {
        public RuncContainer(string id, string bundle, RuncProcess init)
        {
            Id = id;
            Bundle = bundle;
            Init = init;
        }

        public string Id { get; }

        public string Bundle { get; }

        public RuncProcess Init { get; }

        public ConcurrentDictionary<string, RuncProcess> Execs { get; } = new(StringComparer.Ordinal);
    }

    private sealed class RuncProcess
    {
        public RuncProcess(int pid, StdioRelay stdio)
        {
            Pid = pid;
            Stdio = stdio;
            Exit = CollectExitAsync(pid);
        }

        public int Pid { get; }

        public StdioRelay Stdio { get; }

        /// <summary>Collected from the moment the pid is known, so that no exit is missed.</summary>
        public Task<ProcessExit> Exit { get; }

        private static async Task<ProcessExit> CollectExitAsync(int pid)
        {
            uint status = await ChildProcessReaper.Shared.WaitForExitAsync(pid).ConfigureAwait(false);
            return new ProcessExit(status, DateTime.UtcNow);
        }
    }
}

/// <summary>Makes <see cref="HostRuncBackend"/>s; runc's state lives in SANDBOX_RUNC_ROOT (default /run/sandbox/runc)/&lt;namespace&gt;.</summary>
public sealed class HostRuncBackendFactory : ISandboxBackendFactory
{
    public const string RootVariable = "SANDBOX_RUNC_ROOT";
    public const string DefaultRoot = "/run/sandbox/runc";

    public string Name => "runc";

    public bool NeedsChildSubreaper => true;

    public void EnsureUsable(ShimContext context)
    {
        if (RuncCli.FindRunc() is null)
            throw new InvalidOperationException("SANDBOX_SHIM_BACKEND=runc but no runc binary was found on PATH (or at SANDBOX_RUNC_BINARY)");
    }

    public TimeSpan IdleExit(ShimContext context) => SandboxConfiguration.Default.Runtime.IdleExit;

    public ISandboxBackend Create(ShimContext context) => new HostRuncBackend(MakeCli(context), context.Namespace, context.Log);

    public async Task CleanupAfterDeadShimAsync(ShimContext context, string containerId, CancellationToken cancellationToken)
    {
        var result = await MakeCli(context).RunAsync(new[] { "delete", "--force", containerId }, cancellationToken).ConfigureAwait(false);
        if (!result.Succeeded && !result.Error.Contains("does not exist", StringComparison.Ordinal))
            context.Log($"container {containerId}: runc delete --force failed: {result.Error}");
    }

    private static RuncCli MakeCli(ShimContext context)
    {
        string runc = RuncCli.FindRunc()
            ?? throw new InvalidOperationException("no runc binary was found on PATH (or at SANDBOX_RUNC_BINARY)");
        string root = Environment.GetEnvironmentVariable(RootVariable) is { Length: > 0 } configured ? configured : DefaultRoot;
        return new RuncCli(runc, Path.Combine(root, context.Namespace));
    }
}
