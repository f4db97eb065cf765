using Containerd.Runtime.Sandbox.V1;
using Containerd.Types;
using Cri.Runtime.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Sandbox.Shim.Backend;
using Sandbox.Shim.Vm;
using Sandbox.Ttrpc;

namespace Sandbox.Shim.SandboxApi;

/// <summary>
/// containerd.runtime.sandbox.v1.Sandbox, which containerd 2.x calls on the shim of a runtime configured with
/// <c>sandboxer = "shim"</c>: the shim starts the pod sandbox itself (for the VM backend: the VM and the guest process
/// holding the pod's namespaces, <see cref="GuestPodNamespaces"/>), with no pause container. One sandbox per shim;
/// its containers then come through the task API. CreateSandbox reads CRI's PodSandboxConfig from the options
/// (hostname, the pod's resources, which size the VM as the sandbox-cpu/-memory annotations do); StartSandbox boots;
/// StopSandbox stops it (WaitSandbox returns); ShutdownSandbox ends the shim; SandboxMetrics gives the VM process's
/// CPU time and memory. A call for a sandbox this shim does not run fails with NotFound naming both.
/// </summary>
internal sealed class SandboxApiService
{
    public const string ServiceName = "containerd.runtime.sandbox.v1.Sandbox";
    public const string PodSandboxConfigType = "runtime.v1.PodSandboxConfig";

    private readonly IPodSandboxBackend? _backend;
    private readonly string _backendName;
    private readonly Action<string> _log;
    private readonly object _gate = new();
    private readonly TaskCompletionSource _shutdownRequested = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private PodSandboxRecord? _sandbox;

    /// <param name="backend">null when the backend cannot run a sandbox by itself (the runc backend).</param>
    public SandboxApiService(IPodSandboxBackend? backend, string backendName, Action<string> log)
    {
        _backend = backend;
        _backendName = backendName;
        _log = log;
    }

    /// <summary>Completes on ShutdownSandbox: the daemon should exit.</summary>
    public Task ShutdownRequested => _shutdownRequested.Task;

    /// <summary>A sandbox was created here and not shut down: containerd's task Shutdown must not end the daemon.</summary>
    public bool HoldsSandbox
    {
        get { lock (_gate) return _sandbox is not null && !_shutdownRequested.Task.IsCompleted; }
    }

    public void RegisterOn(TtrpcServiceRegistry registry)
    {
        registry.Register<CreateSandboxRequest, CreateSandboxResponse>(ServiceName, "CreateSandbox", CreateSandboxRequest.Parser, (r, c) => CreateAsync(r));
        registry.Register<StartSandboxRequest, StartSandboxResponse>(ServiceName, "StartSandbox", StartSandboxRequest.Parser, (r, c) => StartAsync(r, c.CancellationToken));
        registry.Register<PlatformRequest, PlatformResponse>(ServiceName, "Platform", PlatformRequest.Parser, (r, c) => PlatformAsync(r));
        registry.Register<StopSandboxRequest, StopSandboxResponse>(ServiceName, "StopSandbox", StopSandboxRequest.Parser, (r, c) => StopAsync(r, c.CancellationToken));
        registry.Register<WaitSandboxRequest, WaitSandboxResponse>(ServiceName, "WaitSandbox", WaitSandboxRequest.Parser, (r, c) => WaitAsync(r, c.CancellationToken));
        registry.Register<SandboxStatusRequest, SandboxStatusResponse>(ServiceName, "SandboxStatus", SandboxStatusRequest.Parser, (r, c) => StatusAsync(r));
        registry.Register<PingRequest, PingResponse>(ServiceName, "PingSandbox", PingRequest.Parser, (r, c) => PingAsync(r));
        registry.Register<ShutdownSandboxRequest, ShutdownSandboxResponse>(ServiceName, "ShutdownSandbox", ShutdownSandboxRequest.Parser, (r, c) => ShutdownAsync(r, c.CancellationToken));
        registry.Register<SandboxMetricsRequest, SandboxMetricsResponse>(ServiceName, "SandboxMetrics", SandboxMetricsRequest.Parser, (r, c) => MetricsAsync(r));
    }

    public Task<CreateSandboxResponse> CreateAsync(CreateSandboxRequest request)
    {
        if (request.SandboxId.Length == 0)
            throw Fail(TtrpcStatusCode.InvalidArgument, "create sandbox: the sandbox id is empty");
        if (_backend is null)
            throw Fail(TtrpcStatusCode.Unimplemented,
                $"create sandbox {request.SandboxId}: the {_backendName} backend has no Sandbox API; use the vm backend (the default)");
        var spec = SpecOf(request);
        lock (_gate)
        {
            if (_sandbox is { } existing)
            {
                throw existing.Id == request.SandboxId
                    ? Fail(TtrpcStatusCode.AlreadyExists, $"create sandbox {request.SandboxId}: it already exists in this shim")
                    : Fail(TtrpcStatusCode.FailedPrecondition, $"create sandbox {request.SandboxId}: this shim runs sandbox {existing.Id}; each sandbox has a shim of its own");
            }
            _sandbox = new PodSandboxRecord(spec, DateTime.UtcNow);
        }
        _log($"sandbox {spec.SandboxId}: created through the Sandbox API (hostname '{spec.Hostname}', network namespace " +
             $"{(spec.NetworkNamespacePath.Length > 0 ? spec.NetworkNamespacePath : "none")})");
        return Task.FromResult(new CreateSandboxResponse());
    }

    public async Task<StartSandboxResponse> StartAsync(StartSandboxRequest request, CancellationToken cancellationToken)
    {
        var sandbox = Find(request.SandboxId, "start");
        lock (_gate)
        {
            if (sandbox.State != PodSandboxState.Created)
                throw Fail(TtrpcStatusCode.FailedPrecondition, $"start sandbox {sandbox.Id}: it is {sandbox.State.ToString().ToLowerInvariant()}, not created: it starts once");
            sandbox.State = PodSandboxState.Starting;
        }
        StartedPodSandbox started;
        try
        {
            started = await _backend!.StartPodSandboxAsync(sandbox.Spec, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            lock (_gate) sandbox.State = PodSandboxState.Created;
            throw;
        }
        lock (_gate)
        {
            sandbox.Pid = started.Pid;
            sandbox.StartedAt = DateTime.UtcNow;
            sandbox.State = PodSandboxState.Ready;
        }
        _ = RecordExitAsync(sandbox, started.Exited);
        return new StartSandboxResponse { Pid = started.Pid, CreatedAt = Timestamp.FromDateTime(sandbox.StartedAt.Value) };
    }

    public Task<PlatformResponse> PlatformAsync(PlatformRequest request)
    {
        Find(request.SandboxId, "platform of");
        return Task.FromResult(new PlatformResponse { Platform = new Platform { Os = "linux", Architecture = "amd64" } });
    }

    public async Task<StopSandboxResponse> StopAsync(StopSandboxRequest request, CancellationToken cancellationToken)
    {
        var sandbox = Find(request.SandboxId, "stop");
        bool running;
        lock (_gate)
            running = sandbox.State is PodSandboxState.Ready or PodSandboxState.Starting;
        if (running)
            await _backend!.StopPodSandboxAsync(sandbox.Id, TimeSpan.FromSeconds(request.TimeoutSecs), cancellationToken).ConfigureAwait(false);
        else
            sandbox.Exit.TrySetResult(new PodSandboxExit(0, DateTime.UtcNow)); // never started: nothing runs
        return new StopSandboxResponse();
    }

    public async Task<WaitSandboxResponse> WaitAsync(WaitSandboxRequest request, CancellationToken cancellationToken)
    {
        var sandbox = Find(request.SandboxId, "wait for");
        var exit = await sandbox.Exit.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        return new WaitSandboxResponse { ExitStatus = exit.Status, ExitedAt = Timestamp.FromDateTime(exit.At) };
    }

    public Task<SandboxStatusResponse> StatusAsync(SandboxStatusRequest request)
    {
        var sandbox = Find(request.SandboxId, "status of");
        var response = new SandboxStatusResponse { SandboxId = sandbox.Id };
        lock (_gate)
        {
            response.Pid = sandbox.Pid;
            response.State = sandbox.State == PodSandboxState.Ready ? "SANDBOX_READY" : "SANDBOX_NOTREADY";
            response.CreatedAt = Timestamp.FromDateTime(sandbox.StartedAt ?? sandbox.CreatedAt);
        }
        if (sandbox.Exit.Task.IsCompletedSuccessfully)
            response.ExitedAt = Timestamp.FromDateTime(sandbox.Exit.Task.Result.At);
        if (request.Verbose)
        {
            response.Info["info"] = System.Text.Json.JsonSerializer.Serialize(new SandboxStatusInfo(
                sandbox.Pid, sandbox.State.ToString().ToLowerInvariant(), sandbox.Spec.NetworkNamespacePath, "sandbox-api"),
                SandboxApiJson.Default.SandboxStatusInfo);
        }
        return Task.FromResult(response);
    }

    public Task<PingResponse> PingAsync(PingRequest request)
    {
        Find(request.SandboxId, "ping");
        return Task.FromResult(new PingResponse());
    }

    public async Task<ShutdownSandboxResponse> ShutdownAsync(ShutdownSandboxRequest request, CancellationToken cancellationToken)
    {
        var sandbox = Find(request.SandboxId, "shut down");
        bool running;
        lock (_gate)
            running = sandbox.State is PodSandboxState.Ready or PodSandboxState.Starting;
        if (running && !sandbox.Exit.Task.IsCompleted)
            await _backend!.StopPodSandboxAsync(sandbox.Id, TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        _log($"sandbox {sandbox.Id}: ShutdownSandbox: the shim exits");
        _shutdownRequested.TrySetResult();
        return new ShutdownSandboxResponse();
    }

    /// <summary>
    /// The host's cost of the sandbox: its VM's QEMU process (CPU time, resident memory), as cgroups v1 metrics. What
    /// runs inside the guest is not broken down here.
    /// </summary>
    public Task<SandboxMetricsResponse> MetricsAsync(SandboxMetricsRequest request)
    {
        var sandbox = Find(request.SandboxId, "metrics of");
        uint pid;
        lock (_gate)
        {
            if (sandbox.State != PodSandboxState.Ready)
                throw Fail(TtrpcStatusCode.FailedPrecondition, $"metrics of sandbox {sandbox.Id}: it is {sandbox.State.ToString().ToLowerInvariant()}, not running");
            pid = sandbox.Pid;
        }
        HostProcessUsage usage;
        try
        {
            usage = HostProcessUsage.Read((int)pid);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            throw Fail(TtrpcStatusCode.Unavailable, $"metrics of sandbox {sandbox.Id}: reading its VM process {pid} failed: {e.Message}");
        }
        var metrics = new Containerd.Cgroups.V1.Metrics
        {
            Cpu = new Containerd.Cgroups.V1.CPUStat
            {
                Usage = new Containerd.Cgroups.V1.CPUUsage
                {
                    Total = usage.UserNanoseconds + usage.KernelNanoseconds,
                    User = usage.UserNanoseconds,
                    Kernel = usage.KernelNanoseconds,
                },
            },
            Memory = new Containerd.Cgroups.V1.MemoryStat
            {
                Rss = usage.ResidentBytes,
                Usage = new Containerd.Cgroups.V1.MemoryEntry { Usage = usage.ResidentBytes },
            },
        };
        return Task.FromResult(new SandboxMetricsResponse
        {
            Metrics = new Metric
            {
                Timestamp = Timestamp.FromDateTime(DateTime.UtcNow),
                Id = sandbox.Id,
                Data = new Any { TypeUrl = MetricsTypeUrl, Value = metrics.ToByteString() },
            },
        });
    }

    /// <summary>The type URL containerd decodes cgroups v1 metrics by.</summary>
    public const string MetricsTypeUrl = "io.containerd.cgroups.v1.Metrics";

    private async Task RecordExitAsync(PodSandboxRecord sandbox, Task<uint> exited)
    {
        uint status = await exited.ConfigureAwait(false);
        lock (_gate)
            sandbox.State = PodSandboxState.Stopped;
        sandbox.Exit.TrySetResult(new PodSandboxExit(status, DateTime.UtcNow));
        _log($"sandbox {sandbox.Id}: stopped (exit status {status})");
    }

    private PodSandboxRecord Find(string sandboxId, string what)
    {
        lock (_gate)
        {
            if (_sandbox is { } sandbox && sandbox.Id == sandboxId)
                return sandbox;
            throw Fail(TtrpcStatusCode.NotFound, _sandbox is null
                ? $"{what} sandbox {sandboxId}: no sandbox was created in this shim (CreateSandbox comes first)"
                : $"{what} sandbox {sandboxId}: this shim runs sandbox {_sandbox.Id} only");
        }
    }

    /// <summary>The sandbox to start, from the request and CRI's PodSandboxConfig in its options.</summary>
    internal static PodSandboxSpec SpecOf(CreateSandboxRequest request)
    {
        var annotations = new Dictionary<string, string>(request.Annotations, StringComparer.Ordinal);
        string hostname = "";
        string cgroupsPath = "";
        if (request.Options is { TypeUrl.Length: > 0 } options)
        {
            if (!options.TypeUrl.EndsWith(PodSandboxConfigType, StringComparison.Ordinal))
                throw Fail(TtrpcStatusCode.InvalidArgument,
                    $"create sandbox {request.SandboxId}: options of type {options.TypeUrl}; the sandbox shim reads CRI's {PodSandboxConfigType}");
            PodSandboxConfig config;
            try
            {
                config = PodSandboxConfig.Parser.ParseFrom(options.Value);
            }
            catch (Google.Protobuf.InvalidProtocolBufferException e)
            {
                throw Fail(TtrpcStatusCode.InvalidArgument, $"create sandbox {request.SandboxId}: its {PodSandboxConfigType} options do not parse: {e.Message}");
            }
            if (HostNamespaceRefusal.MessageFor(request.SandboxId, HostNamespaceRefusal.RequestedBy(config)) is { } refusal)
                throw Fail(TtrpcStatusCode.InvalidArgument, $"create sandbox {request.SandboxId}: {refusal}");
            hostname = config.Hostname;
            cgroupsPath = Sandbox.Runtime.Cgroups.CgroupsPath.ForPod(config.Linux?.CgroupParent ?? "", request.SandboxId);
            if (config.Linux?.Resources is { } resources)
            {
                // what CRI's pause container spec carries as annotations: the same VM size either way
                if (resources.CpuQuota > 0)
                    annotations[PodVmSize.CpuQuotaAnnotation] = resources.CpuQuota.ToString(System.Globalization.CultureInfo.InvariantCulture);
                if (resources.CpuPeriod > 0)
                    annotations[PodVmSize.CpuPeriodAnnotation] = resources.CpuPeriod.ToString(System.Globalization.CultureInfo.InvariantCulture);
                if (resources.MemoryLimitInBytes > 0)
                    annotations[PodVmSize.MemoryAnnotation] = resources.MemoryLimitInBytes.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        return new PodSandboxSpec(request.SandboxId, hostname, request.NetnsPath, annotations, cgroupsPath);
    }

    private static TtrpcException Fail(TtrpcStatusCode code, string message) => new(code, message);
}

internal enum PodSandboxState
{
    Created,
    Starting,
    Ready,
    Stopped,
}

internal sealed record PodSandboxExit(uint Status, DateTime At);

/// <summary>One sandbox of the Sandbox API and what containerd asks about it.</summary>
internal sealed class PodSandboxRecord(PodSandboxSpec spec, DateTime createdAt)
{
    public PodSandboxSpec Spec { get; } = spec;

    public string Id => Spec.SandboxId;

    public DateTime CreatedAt { get; } = createdAt;

    public DateTime? StartedAt { get; set; }

    public PodSandboxState State { get; set; } = PodSandboxState.Created;

    public uint Pid { get; set; }

    public TaskCompletionSource<PodSandboxExit> Exit { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>SandboxStatus's verbose "info": what an operator needs to find the sandbox's VM.</summary>
internal sealed record SandboxStatusInfo(uint Pid, string State, string NetworkNamespace, string Mode);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(SandboxStatusInfo))]
internal sealed partial class SandboxApiJson : System.Text.Json.Serialization.JsonSerializerContext;
