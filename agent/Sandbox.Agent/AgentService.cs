using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Sandbox.Agent.Containers;
using Sandbox.Agent.Native;
using Sandbox.Agent.Network;
using Sandbox.Agent.Protocol;

namespace Sandbox.Agent;

/// <summary>The RPCs of agent.proto. Nothing here runs before the agent listens.</summary>
public sealed class AgentService : Protocol.Agent.AgentBase
{
    /// <summary>At most this much output per gRPC message: as much as the output pipe holds (see ProcessStdio).</summary>
    private const int OutputChunkSize = ProcessStdio.OutputPipeCapacity;
    private readonly ContainerRunner _containers;
    private readonly GuestNetwork _network;
    private readonly SandboxSetup _sandbox;
    private readonly KernelModules _modules;
    private readonly bool _isGuestInit;

    public AgentService(AgentRuntime runtime)
    {
        _modules = new KernelModules(runtime.ModprobePath);
        _isGuestInit = runtime.IsGuestInit;
        _containers = runtime.CreateContainerRunner();
        _network = new GuestNetwork(_modules);
        _sandbox = new SandboxSetup(runtime, _modules, _network);
    }

    private double _readyUptime;

    public void MarkReady(double uptimeSeconds) => _readyUptime = uptimeSeconds;

    /// <summary>Work that can wait until the agent listens: start the reaper (the agent is PID 1) and the fd poller; in the
    /// guest, give the helper processes a fixed address layout, load the modules of the VM's devices (the 9p share,
    /// network cards) and bring lo up while the host connects.</summary>
    public void StartBackgroundWork()
    {
        if (_isGuestInit) HelperAddressLayout.Enable();
        _ = ChildProcesses.Shared;
        if (_isGuestInit) _ = _modules.PreloadForVirtioDevices();
        if (_isGuestInit) _network.BringLoopbackUpAhead();
        _ = FdPoller.Shared;
    }

    /// <summary>Runs one lifecycle RPC and logs how long it took ("CreateContainer 1f196f75b482: 240 ms"), or that it
    /// failed after how long (the transport logs the error itself).</summary>
    private static async Task<T> TimedAsync<T>(string what, Func<Task<T>> call)
    {
        long start = Stopwatch.GetTimestamp();
        try
        {
            T result = await call();
            AgentLog.Write($"{what}: {AgentLog.Milliseconds(start)}");
            return result;
        }
        catch
        {
            AgentLog.Write($"{what}: failed after {AgentLog.Milliseconds(start)}");
            throw;
        }
    }

    private static Task TimedAsync(string what, Func<Task> call) => TimedAsync(what, async () =>
    {
        await call();
        return true;
    });

    public override Task<HealthResponse> Health(HealthRequest request, ServerCallContext context) =>
        Task.FromResult(new HealthResponse { AgentVersion = AgentVersion.Text });

    public override Task<GetGuestInfoResponse> GetGuestInfo(GetGuestInfoRequest request, ServerCallContext context) =>
        Task.FromResult(new GetGuestInfoResponse
        {
            KernelRelease = GuestFacts.KernelRelease(),
            BootId = GuestFacts.BootId(),
            AgentRssBytes = GuestFacts.RssBytes(),
            UptimeSeconds = GuestFacts.UptimeSeconds(),
            AgentReadyUptimeSeconds = _readyUptime,
            AgentVersion = AgentVersion.Text,
            MemTotalBytes = GuestFacts.MemInfoBytes("MemTotal"),
            MemAvailableBytes = GuestFacts.MemInfoBytes("MemAvailable"),
        });

    public override Task DebugConsole(IAsyncStreamReader<DebugConsoleInput> requestStream, IServerStreamWriter<DebugConsoleOutput> responseStream,
        ServerCallContext context) =>
        new DebugConsoleSession(_sandbox).RunAsync(requestStream, responseStream, context.CancellationToken);

    /// <summary>The most host randomness CreateSandbox takes (the kernel's pool holds 256 bits; 512 bytes is ample).</summary>
    public const int MaxEntropyBytes = 512;

    public override async Task<CreateSandboxResponse> CreateSandbox(CreateSandboxRequest request, ServerCallContext context)
    {
        if (request.Entropy.Length > MaxEntropyBytes)
            throw AgentErrors.InvalidArgument($"entropy of {request.Entropy.Length} bytes; at most {MaxEntropyBytes}");
        // Only as the guest's init: an agent run on a host (the tests) must not touch that host's clock or generator.
        if (_isGuestInit)
        {
            CloneFreshness.Reseed(request.Entropy.Span);
            var clockOffset = CloneFreshness.SetClock(request.HostTimeUnixNanos == 0 ? null
                : DateTimeOffset.UnixEpoch.AddTicks(request.HostTimeUnixNanos / 100));
            if (clockOffset is { } offset)
                AgentLog.Write($"the guest's clock was {offset.TotalSeconds:0.###} s off the host's: set to the host's");
        }
        if (request.NetworkCardMacs.Count > 0)
        {
            try
            {
                _network.SetCardAddresses(request.NetworkCardMacs);
            }
            catch (NetlinkException e)
            {
                throw AgentErrors.Internal($"CreateSandbox: {e.Message}");
            }
        }
        await TimedAsync("CreateSandbox", () => _sandbox.CreateAsync(request.SandboxId, request.Hostname, request.ShareMountTag, request.SharedMountPoint,
            request.DebugConsole, context.CancellationToken));
        return new CreateSandboxResponse();
    }

    public override async Task<DestroySandboxResponse> DestroySandbox(DestroySandboxRequest request, ServerCallContext context)
    {
        await TimedAsync("DestroySandbox", () => _sandbox.DestroyAsync(_containers, context.CancellationToken));
        return new DestroySandboxResponse();
    }

    public override async Task<UpdateInterfaceResponse> UpdateInterface(UpdateInterfaceRequest request, ServerCallContext context)
    {
        await _network.UpdateInterfaceAsync(request.Interface, context.CancellationToken);
        return new UpdateInterfaceResponse();
    }

    public override async Task<UpdateRoutesResponse> UpdateRoutes(UpdateRoutesRequest request, ServerCallContext context)
    {
        await _network.UpdateRoutesAsync(request.Routes, context.CancellationToken);
        return new UpdateRoutesResponse();
    }

    public override Task ForwardPort(IAsyncStreamReader<PortForwardChunk> requestStream, IServerStreamWriter<PortForwardChunk> responseStream,
        ServerCallContext context) =>
        LoopbackPortForward.RunAsync(requestStream, responseStream, context.CancellationToken);

    public override async Task<CreateContainerResponse> CreateContainer(CreateContainerRequest request, ServerCallContext context)
    {
        int pid = await TimedAsync($"CreateContainer {AgentLog.ShortId(request.ContainerId)}", () => _containers.CreateAsync(request.ContainerId,
            request.OciSpecJson.ToByteArray(), request.RootfsPath, request.Terminal, request.Stdin,
            devCore: request.DevCore || !_isGuestInit /* an agent outside a VM (tests) never touches a /dev */, context.CancellationToken));
        return new CreateContainerResponse { Pid = (uint)pid };
    }

    public override async Task<StartContainerResponse> StartContainer(StartContainerRequest request, ServerCallContext context)
    {
        int pid = await TimedAsync($"StartContainer {AgentLog.ShortId(request.ContainerId)}", () => _containers.StartAsync(request.ContainerId, context.CancellationToken));
        return new StartContainerResponse { Pid = (uint)pid };
    }

    public override async Task<RemoveContainerResponse> RemoveContainer(RemoveContainerRequest request, ServerCallContext context)
    {
        await TimedAsync($"RemoveContainer {AgentLog.ShortId(request.ContainerId)}", () => _containers.RemoveAsync(request.ContainerId, request.Force, context.CancellationToken));
        return new RemoveContainerResponse();
    }

    public override async Task<PauseContainerResponse> PauseContainer(PauseContainerRequest request, ServerCallContext context)
    {
        await TimedAsync($"PauseContainer {AgentLog.ShortId(request.ContainerId)}", () => _containers.PauseAsync(request.ContainerId, context.CancellationToken));
        return new PauseContainerResponse();
    }

    public override async Task<ResumeContainerResponse> ResumeContainer(ResumeContainerRequest request, ServerCallContext context)
    {
        await TimedAsync($"ResumeContainer {AgentLog.ShortId(request.ContainerId)}", () => _containers.ResumeAsync(request.ContainerId, context.CancellationToken));
        return new ResumeContainerResponse();
    }

    public override async Task<ListProcessesResponse> ListProcesses(ListProcessesRequest request, ServerCallContext context)
    {
        var response = new ListProcessesResponse();
        response.Pids.AddRange(await _containers.ListPidsAsync(request.ContainerId, context.CancellationToken));
        return response;
    }

    public override async Task<ExecProcessResponse> ExecProcess(ExecProcessRequest request, ServerCallContext context)
    {
        int pid = await TimedAsync($"ExecProcess {request.ExecId} in {AgentLog.ShortId(request.ContainerId)}", () => _containers.ExecAsync(request.ContainerId,
            request.ExecId, request.ProcessJson.ToByteArray(), request.Terminal, request.Stdin, context.CancellationToken));
        return new ExecProcessResponse { Pid = (uint)pid };
    }

    public override async Task<SignalProcessResponse> SignalProcess(SignalProcessRequest request, ServerCallContext context)
    {
        await _containers.SignalAsync(request.ContainerId, request.ExecId, (int)request.Signal, request.All, context.CancellationToken);
        return new SignalProcessResponse();
    }

    public override async Task<WaitProcessResponse> WaitProcess(WaitProcessRequest request, ServerCallContext context)
    {
        Container container = _containers.Get(request.ContainerId);
        ContainerProcess process = _containers.GetProcess(request.ContainerId, request.ExecId);
        ChildExit exit = await process.Exited.WaitAsync(context.CancellationToken);
        return new WaitProcessResponse
        {
            ExitStatus = exit.ExitStatus,
            ExitedAtUnixNanos = (exit.ExitedAt - DateTime.UnixEpoch).Ticks * 100,
            // the cgroup stays until RemoveContainer (crun delete), so its OOM count is still there after the exit
            OomKilled = request.ExecId.Length == 0 && container.Cgroup?.OomKills() > 0,
        };
    }

    public override Task<GetContainerStatsResponse> GetContainerStats(GetContainerStatsRequest request, ServerCallContext context)
    {
        var container = _containers.Get(request.ContainerId);
        var cgroup = container.Cgroup
            ?? throw AgentErrors.FailedPrecondition($"stats of container {request.ContainerId}: its cgroup was not found when it was created (no cgroup v2 line in /proc/PID/cgroup)");
        return Task.FromResult(cgroup.ReadStats());
    }

    public override async Task<UpdateContainerResponse> UpdateContainer(UpdateContainerRequest request, ServerCallContext context)
    {
        await TimedAsync($"UpdateContainer {AgentLog.ShortId(request.ContainerId)}",
            () => _containers.UpdateAsync(request.ContainerId, request.ResourcesJson.ToByteArray(), context.CancellationToken));
        return new UpdateContainerResponse();
    }

    public override Task ReadStdout(ReadOutputRequest request, IServerStreamWriter<OutputChunk> responseStream, ServerCallContext context) =>
        StreamOutputAsync(request, "stdout", p => p.Stdio.Stdout, responseStream, context);

    public override Task ReadStderr(ReadOutputRequest request, IServerStreamWriter<OutputChunk> responseStream, ServerCallContext context) =>
        StreamOutputAsync(request, "stderr", p => p.Stdio.Stderr, responseStream, context);

    private async Task StreamOutputAsync(ReadOutputRequest request, string name, Func<ContainerProcess, OutputStream?> select,
        IServerStreamWriter<OutputChunk> responseStream, ServerCallContext context)
    {
        ContainerProcess process = _containers.GetProcess(request.ContainerId, request.ExecId);
        OutputStream stream = select(process) ?? throw AgentErrors.FailedPrecondition($"{name} of {process.Name} is not available");
        if (!stream.TryAttachReader()) throw AgentErrors.FailedPrecondition($"{name} of {process.Name} already has a reader");
        byte[]? chunk = null;
        long sent = 0;
        string end = "end of file";
        try
        {
            while (true)
            {
                try
                {
                    chunk = await stream.ReadAsync(OutputChunkSize, context.CancellationToken);
                }
                catch (ObjectDisposedException)
                {
                    end = "the container was removed";
                    return;
                }
                if (chunk == null) return;
                await responseStream.WriteAsync(new OutputChunk { Data = UnsafeByteOperations.UnsafeWrap(chunk) }, context.CancellationToken);
                sent += chunk.Length;
                chunk = null;
            }
        }
        catch (Exception e)
        {
            end = $"{e.GetType().Name}: {e.Message}";
            throw;
        }
        finally
        {
            stream.DetachReader(chunk);
            AgentLog.Write($"{name} of {process.Name}: {sent} bytes sent, {stream.BytesRead} read from the process ({end})");
        }
    }

    public override async Task<WriteStdinResponse> WriteStdin(IAsyncStreamReader<StdinChunk> requestStream, ServerCallContext context)
    {
        if (!await requestStream.MoveNext(context.CancellationToken))
            throw AgentErrors.InvalidArgument("WriteStdin: the stream carried no message (the first one names the process)");
        StdinChunk first = requestStream.Current;
        ContainerProcess process = _containers.GetProcess(first.ContainerId, first.ExecId);
        InputStream stdin = process.Stdio.Stdin
            ?? throw AgentErrors.FailedPrecondition($"{process.Name} was created without stdin");
        if (stdin.IsClosed) throw AgentErrors.FailedPrecondition($"stdin of {process.Name} is already closed");
        ulong written = 0;
        try
        {
            StdinChunk chunk = first;
            while (true)
            {
                if (!chunk.Data.IsEmpty)
                {
                    await stdin.WriteAsync(chunk.Data.Memory, context.CancellationToken);
                    written += (ulong)chunk.Data.Length;
                }
                if (!await requestStream.MoveNext(context.CancellationToken)) break;
                chunk = requestStream.Current;
            }
        }
        catch (InvalidOperationException e)
        {
            throw AgentErrors.FailedPrecondition($"stdin of {process.Name}: {e.Message} after {written} bytes");
        }
        catch (IOException e)
        {
            throw AgentErrors.Internal($"stdin of {process.Name}: {e.Message} after {written} bytes");
        }
        await stdin.CloseAsync();
        return new WriteStdinResponse { BytesWritten = written };
    }

    public override async Task<CloseStdinResponse> CloseStdin(CloseStdinRequest request, ServerCallContext context)
    {
        ContainerProcess process = _containers.GetProcess(request.ContainerId, request.ExecId);
        if (process.Stdio.Stdin is { } stdin) await stdin.CloseAsync();
        return new CloseStdinResponse();
    }

    public override Task<TtyWinResizeResponse> TtyWinResize(TtyWinResizeRequest request, ServerCallContext context)
    {
        ContainerProcess process = _containers.GetProcess(request.ContainerId, request.ExecId);
        if (!process.Stdio.Terminal) throw AgentErrors.FailedPrecondition($"{process.Name} has no terminal");
        try
        {
            process.Stdio.Resize(request.Rows, request.Columns);
        }
        catch (IOException e)
        {
            throw AgentErrors.Internal($"resize terminal of {process.Name}: {e.Message}");
        }
        return Task.FromResult(new TtyWinResizeResponse());
    }
}
