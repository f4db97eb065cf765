using System.Text.Json;
using Containerd.Events;
using Containerd.Runc.V1;
using Containerd.Task.V2;
using Containerd.V1.Types;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Sandbox.Shim.Backend;
using Sandbox.Shim.Events;
using Sandbox.Shim.Rootfs;
using Sandbox.Ttrpc;
using TaskStatus = Containerd.V1.Types.Status;

namespace Sandbox.Shim.Tasks;

/// <summary>
/// containerd.task.v2.Task: the containerd-facing behaviour of the shim. It keeps the state machine of every
/// container and exec, answers Wait (early, repeated and concurrent callers), keeps exit info until Delete, mounts
/// the rootfs, and publishes the task events in order. Processes themselves run in an <see cref="ISandboxBackend"/>.
/// </summary>
public sealed class TaskService
{
    public const string ServiceName = "containerd.task.v2.Task";

    /// <summary>containerd 2.x's name for the same service (api/runtime/task/v3: the v2 messages in another package).</summary>
    public const string ServiceNameV3 = "containerd.task.v3.Task";

    /// <summary>What containerd expects for "not exited": Go's zero time.</summary>
    public static readonly Timestamp GoZeroTime = new() { Seconds = -62135596800, Nanos = 0 };

    private const uint SigKill = 9;
    private static readonly TimeSpan CreatedKillWait = TimeSpan.FromSeconds(10);

    private readonly ISandboxBackend _backend;
    private readonly IEventPublisher _events;
    private readonly IRootfsMounter _rootfs;
    private readonly Action<string> _log;
    private readonly object _gate = new();
    private readonly Dictionary<string, ContainerRecord> _containers = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _shutdownRequested = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _lifetime = new();

    public TaskService(ISandboxBackend backend, IEventPublisher events, IRootfsMounter rootfs, Action<string> log)
    {
        _backend = backend;
        _events = events;
        _rootfs = rootfs;
        _log = log;
    }

    /// <summary>Completes when containerd called Shutdown and no container is left: the daemon should exit.</summary>
    public Task ShutdownRequested => _shutdownRequested.Task;

    /// <summary>
    /// True while a sandbox of containerd's Sandbox API lives in this shim: then a task Shutdown with no container left
    /// does not end the daemon (containerd's ShutdownSandbox does).
    /// </summary>
    public Func<bool> HoldsSandbox { get; init; } = () => false;

    public int ContainerCount
    {
        get { lock (_gate) return _containers.Count; }
    }

    /// <summary>Registers every method of containerd.task.v2.Task on <paramref name="registry"/>.</summary>
    public void RegisterOn(TtrpcServiceRegistry registry, string serviceName = ServiceName)
    {
        registry.Register<StateRequest, StateResponse>(serviceName, "State", StateRequest.Parser, (r, c) => StateAsync(r, c.CancellationToken));
        registry.Register<CreateTaskRequest, CreateTaskResponse>(serviceName, "Create", CreateTaskRequest.Parser, CreateOutlivingTheConnectionAsync);
        registry.Register<StartRequest, StartResponse>(serviceName, "Start", StartRequest.Parser, (r, c) => StartAsync(r, c.CancellationToken));
        registry.Register<DeleteRequest, DeleteResponse>(serviceName, "Delete", DeleteRequest.Parser, (r, c) => DeleteAsync(r, c.CancellationToken));
        registry.Register<PidsRequest, PidsResponse>(serviceName, "Pids", PidsRequest.Parser, (r, c) => PidsAsync(r, c.CancellationToken));
        registry.Register<PauseRequest, Empty>(serviceName, "Pause", PauseRequest.Parser, (r, c) => PauseAsync(r, c.CancellationToken));
        registry.Register<ResumeRequest, Empty>(serviceName, "Resume", ResumeRequest.Parser, (r, c) => ResumeAsync(r, c.CancellationToken));
        registry.Register<CheckpointTaskRequest, Empty>(serviceName, "Checkpoint", CheckpointTaskRequest.Parser, (r, c) => CheckpointAsync(r));
        registry.Register<KillRequest, Empty>(serviceName, "Kill", KillRequest.Parser, (r, c) => KillAsync(r, c.CancellationToken));
        registry.Register<ExecProcessRequest, Empty>(serviceName, "Exec", ExecProcessRequest.Parser, (r, c) => ExecAsync(r));
        registry.Register<ResizePtyRequest, Empty>(serviceName, "ResizePty", ResizePtyRequest.Parser, (r, c) => ResizePtyAsync(r, c.CancellationToken));
        registry.Register<CloseIORequest, Empty>(serviceName, "CloseIO", CloseIORequest.Parser, (r, c) => CloseIOAsync(r, c.CancellationToken));
        registry.Register<UpdateTaskRequest, Empty>(serviceName, "Update", UpdateTaskRequest.Parser, (r, c) => UpdateAsync(r, c.CancellationToken));
        registry.Register<WaitRequest, WaitResponse>(serviceName, "Wait", WaitRequest.Parser, (r, c) => WaitAsync(r, c.CancellationToken));
        registry.Register<StatsRequest, StatsResponse>(serviceName, "Stats", StatsRequest.Parser, (r, c) => StatsAsync(r));
        registry.Register<ConnectRequest, ConnectResponse>(serviceName, "Connect", ConnectRequest.Parser, (r, c) => ConnectAsync(r));
        registry.Register<ShutdownRequest, Empty>(serviceName, "Shutdown", ShutdownRequest.Parser, (r, c) => ShutdownAsync(r));
    }

    // ---------------------------------------------------------------------------------------------------------
    // Create / Start / Exec

    /// <summary>
    /// Create runs to its end when containerd's connection closes meanwhile (containerd restarting during a VM boot):
    /// only the call's deadline stops it. Cancelled with the connection, the create was undone and the shim went on
    /// serving no task; containerd, once back, loaded the shim from its bundle and nothing ever removed either (issue 15's
    /// soak). Completed, the task is there as CREATED for the new containerd, which can kill and delete it. Failed with
    /// nobody to hear it, and no container left, the shim asks itself to shut down, as containerd does after a failed
    /// create: containerd then finds it gone and cleans up the bundle.
    /// </summary>
    private async Task<CreateTaskResponse> CreateOutlivingTheConnectionAsync(CreateTaskRequest request, TtrpcCallContext call)
    {
        using var deadline = new CancellationTokenSource();
        if (call.Timeout is { } timeout)
            deadline.CancelAfter(timeout);
        using var logClose = call.CancellationToken.Register(() =>
        {
            if (!deadline.IsCancellationRequested)
                _log($"container {request.Id}: containerd's connection closed during its create; the create goes on, so that the task is there when containerd reconnects");
        });
        try
        {
            return await CreateAsync(request, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (call.CancellationToken.IsCancellationRequested)
        {
            _log($"container {request.Id}: its create failed after containerd's connection closed, so nobody hears the error: {e.Message}");
            await ShutdownAsync(new ShutdownRequest { Id = request.Id }).ConfigureAwait(false);
            throw;
        }
    }

    public async Task<CreateTaskResponse> CreateAsync(CreateTaskRequest request, CancellationToken cancellationToken)
    {
        if (ContainerdIdentifier.Problem(request.Id) is { } idProblem)
            throw Fail(TtrpcStatusCode.InvalidArgument, $"create: the container id {UntrustedText.Quote(request.Id)} is not valid: {idProblem}");
        if (!Path.IsPathFullyQualified(request.Bundle))
            throw Fail(TtrpcStatusCode.InvalidArgument, $"create container {request.Id}: the bundle path {UntrustedText.Quote(request.Bundle)} is not an absolute path");
        if (request.Checkpoint.Length > 0 || request.ParentCheckpoint.Length > 0)
            throw Fail(TtrpcStatusCode.Unimplemented, $"create container {request.Id}: restoring from a checkpoint is not supported by the sandbox shim");

        var stdio = new ProcessStdio(request.Stdin, request.Stdout, request.Stderr, request.Terminal);
        var init = new ProcessRecord(request.Id, "", stdio, specJson: null) { Phase = ProcessPhase.Creating };
        var container = new ContainerRecord(request.Id, request.Bundle, request.Rootfs.ToList(), init);
        lock (_gate)
        {
            if (_containers.ContainsKey(request.Id))
                throw Fail(TtrpcStatusCode.AlreadyExists, $"container {request.Id}: already exists");
            _containers.Add(request.Id, container);
        }

        try
        {
            if (container.Rootfs.Count > 0)
            {
                try
                {
                    _rootfs.Mount(container.Rootfs, container.RootfsPath);
                }
                catch (RootfsMountException e)
                {
                    throw Fail(TtrpcStatusCode.InvalidArgument, $"create container {request.Id}: {e.Message}");
                }
                container.RootfsMounted = true;
            }

            var backendRequest = new ContainerCreateRequest(request.Id, request.Bundle, stdio, request.Options);
            uint pid = await CallBackendAsync($"create container {request.Id}",
                () => _backend.CreateContainerAsync(backendRequest, cancellationToken)).ConfigureAwait(false);

            lock (_gate)
            {
                init.Pid = pid;
                init.Phase = ProcessPhase.Created;
                var created = new TaskCreate
                {
                    ContainerId = request.Id,
                    Bundle = request.Bundle,
                    Io = new TaskIO { Stdin = request.Stdin, Stdout = request.Stdout, Stderr = request.Stderr, Terminal = request.Terminal },
                    Checkpoint = request.Checkpoint,
                    Pid = pid,
                };
                created.Rootfs.AddRange(request.Rootfs);
                _events.Publish(ContainerdEvent.Of(created));
            }
            _ = MonitorExitAsync(init);
            container.CreateEnded.TrySetResult();
            return new CreateTaskResponse { Pid = pid };
        }
        catch
        {
            if (container.RootfsMounted)
                UnmountRootfs(container);
            lock (_gate)
            {
                _containers.Remove(request.Id);
            }
            container.CreateEnded.TrySetResult();
            throw;
        }
    }

    public async Task<StartResponse> StartAsync(StartRequest request, CancellationToken cancellationToken)
    {
        ProcessRecord process;
        lock (_gate)
        {
            var container = FindContainer(request.Id);
            process = FindProcess(container, request.ExecId);
            switch (process.Phase)
            {
                case ProcessPhase.Created:
                    break;
                case ProcessPhase.Stopped:
                    throw Fail(TtrpcStatusCode.FailedPrecondition, $"start {process.Describe()}: it has already exited");
                case ProcessPhase.Creating or ProcessPhase.Deleting:
                    throw Fail(TtrpcStatusCode.FailedPrecondition, $"start {process.Describe()}: it is being {(process.Phase == ProcessPhase.Creating ? "created" : "deleted")}");
                default:
                    throw Fail(TtrpcStatusCode.FailedPrecondition, $"start {process.Describe()}: it is already started");
            }
            if (!process.IsInit && container.Init.Phase is not (ProcessPhase.Running or ProcessPhase.Paused))
                throw Fail(TtrpcStatusCode.FailedPrecondition, $"start {process.Describe()}: the container is not running");
            process.Phase = ProcessPhase.Starting;
        }

        uint pid;
        try
        {
            pid = process.IsInit
                ? await CallBackendAsync($"start {process.Describe()}", () => _backend.StartContainerAsync(request.Id, cancellationToken)).ConfigureAwait(false)
                : await CallBackendAsync($"start {process.Describe()}",
                    () => _backend.StartExecAsync(new ExecStartRequest(request.Id, request.ExecId, process.SpecJson!, process.Stdio), cancellationToken)).ConfigureAwait(false);
        }
        catch
        {
            lock (_gate)
            {
                if (process.Phase == ProcessPhase.Starting)
                    process.Phase = ProcessPhase.Created;
                else if (process.ExitAwaitsStartEvent)
                    PublishExit(process); // it died while starting: no start event, but its exit is real
            }
            throw;
        }

        lock (_gate)
        {
            process.Pid = pid;
            if (process.IsInit)
                _events.Publish(ContainerdEvent.Of(new TaskStart { ContainerId = request.Id, Pid = pid }));
            else
                _events.Publish(ContainerdEvent.Of(new TaskExecStarted { ContainerId = request.Id, ExecId = request.ExecId, Pid = pid }));

            if (process.ExitAwaitsStartEvent)
                PublishExit(process);
            else
                process.Phase = ProcessPhase.Running;
        }
        if (!process.IsInit)
            _ = MonitorExitAsync(process);
        return new StartResponse { Pid = pid };
    }

    public Task<Empty> ExecAsync(ExecProcessRequest request)
    {
        if (request.ExecId.Length == 0)
            throw Fail(TtrpcStatusCode.InvalidArgument, $"exec in container {request.Id}: the exec id is empty");
        if (request.Spec is null || request.Spec.Value.IsEmpty)
            throw Fail(TtrpcStatusCode.InvalidArgument, $"exec {request.ExecId} in container {request.Id}: the process spec is missing");
        string specJson = request.Spec.Value.ToStringUtf8();
        try
        {
            using var document = JsonDocument.Parse(specJson);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new JsonException("not a JSON object");
        }
        catch (JsonException e)
        {
            throw Fail(TtrpcStatusCode.InvalidArgument,
                $"exec {request.ExecId} in container {request.Id}: the process spec ({request.Spec.TypeUrl}) is not an OCI process JSON object: {e.Message}");
        }

        lock (_gate)
        {
            var container = FindContainer(request.Id);
            if (container.Init.Phase is not (ProcessPhase.Running or ProcessPhase.Paused))
                throw Fail(TtrpcStatusCode.FailedPrecondition, $"exec {request.ExecId} in container {request.Id}: the container is not running");
            if (container.Execs.ContainsKey(request.ExecId))
                throw Fail(TtrpcStatusCode.AlreadyExists, $"exec {request.ExecId} in container {request.Id}: id already in use");
            var stdio = new ProcessStdio(request.Stdin, request.Stdout, request.Stderr, request.Terminal);
            container.Execs.Add(request.ExecId, new ProcessRecord(request.Id, request.ExecId, stdio, specJson) { Phase = ProcessPhase.Created });
            _events.Publish(ContainerdEvent.Of(new TaskExecAdded { ContainerId = request.Id, ExecId = request.ExecId }));
        }
        return Task.FromResult(new Empty());
    }

    // ---------------------------------------------------------------------------------------------------------
    // Wait / State / Kill / Delete

    public async Task<WaitResponse> WaitAsync(WaitRequest request, CancellationToken cancellationToken)
    {
        ProcessRecord process;
        lock (_gate)
        {
            process = FindProcess(FindContainer(request.Id), request.ExecId);
        }
        await process.Exited.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        lock (_gate)
        {
            var exit = process.Exit!.Value;
            return new WaitResponse { ExitStatus = exit.ExitStatus, ExitedAt = Timestamp.FromDateTime(exit.ExitedAt) };
        }
    }

    public Task<StateResponse> StateAsync(StateRequest request, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var container = FindContainer(request.Id);
            var process = FindProcess(container, request.ExecId);
            var response = new StateResponse
            {
                Id = request.Id,
                ExecId = request.ExecId,
                Bundle = container.Bundle,
                Pid = process.Pid,
                Status = StatusOf(process),
                Stdin = process.Stdio.Stdin,
                Stdout = process.Stdio.Stdout,
                Stderr = process.Stdio.Stderr,
                Terminal = process.Stdio.Terminal,
                ExitStatus = process.Exit?.ExitStatus ?? 0,
                ExitedAt = process.Exit is { } exit ? Timestamp.FromDateTime(exit.ExitedAt) : GoZeroTime.Clone(),
            };
            return Task.FromResult(response);
        }
    }

    public async Task<Empty> KillAsync(KillRequest request, CancellationToken cancellationToken)
    {
        ProcessRecord process;
        lock (_gate)
        {
            process = FindProcess(FindContainer(request.Id), request.ExecId);
            CheckKillable(process);
        }
        try
        {
            await CallBackendAsync($"kill {process.Describe()} with signal {request.Signal}", async () =>
            {
                await _backend.KillAsync(request.Id, request.ExecId, request.Signal, request.All, cancellationToken).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);
        }
        catch (TtrpcException)
        {
            lock (_gate)
            {
                CheckKillable(process); // it may have exited meanwhile: say so rather than the backend's error
            }
            throw;
        }
        return new Empty();
    }

    public async Task<DeleteResponse> DeleteAsync(DeleteRequest request, CancellationToken cancellationToken)
    {
        if (request.ExecId.Length > 0)
            return await DeleteExecAsync(request, cancellationToken).ConfigureAwait(false);

        ContainerRecord container;
        bool killFirst;
        lock (_gate)
        {
            container = FindContainer(request.Id);
            var init = container.Init;
            switch (init.Phase)
            {
                case ProcessPhase.Stopped:
                    killFirst = false;
                    break;
                case ProcessPhase.Created:
                    killFirst = true; // never started: containerd may delete it (failed ctr run); the init process exists
                    break;
                case ProcessPhase.Deleting:
                    throw Fail(TtrpcStatusCode.FailedPrecondition, $"delete container {request.Id}: already being deleted");
                case ProcessPhase.Creating:
                    throw Fail(TtrpcStatusCode.FailedPrecondition, $"delete container {request.Id}: it is still being created");
                default:
                    throw Fail(TtrpcStatusCode.FailedPrecondition,
                        $"delete container {request.Id}: its task is {init.Phase.ToString().ToLowerInvariant()}; kill it and wait for its exit first");
            }
            init.Phase = ProcessPhase.Deleting;
        }

        try
        {
            if (killFirst)
            {
                try
                {
                    await _backend.KillAsync(request.Id, "", SigKill, false, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // it may already be gone; deleting it below is what matters
                    _log($"container {request.Id}: killing its never-started init before deleting it failed: {e.Message}");
                }
                try
                {
                    await container.Init.Exited.Task.WaitAsync(CreatedKillWait, cancellationToken).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    _log($"container {request.Id}: its never-started init did not report an exit within {CreatedKillWait.TotalSeconds} s after SIGKILL; deleting anyway");
                }
            }
            await CallBackendAsync($"delete container {request.Id}", async () =>
            {
                await _backend.DeleteContainerAsync(request.Id, cancellationToken).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);
        }
        catch
        {
            lock (_gate)
            {
                if (container.Init.Phase == ProcessPhase.Deleting)
                    container.Init.Phase = container.Init.Exit is null ? ProcessPhase.Created : ProcessPhase.Stopped;
            }
            throw;
        }

        if (container.RootfsMounted)
            UnmountRootfs(container);

        lock (_gate)
        {
            _containers.Remove(request.Id);
            var exit = container.Init.Exit ?? new ProcessExit(128 + SigKill, DateTime.UtcNow);
            var exitedAt = Timestamp.FromDateTime(exit.ExitedAt);
            _events.Publish(ContainerdEvent.Of(new TaskDelete
            {
                ContainerId = request.Id,
                Pid = container.Init.Pid,
                ExitStatus = exit.ExitStatus,
                ExitedAt = exitedAt,
            }));
            return new DeleteResponse { Pid = container.Init.Pid, ExitStatus = exit.ExitStatus, ExitedAt = exitedAt.Clone() };
        }
    }

    private async Task<DeleteResponse> DeleteExecAsync(DeleteRequest request, CancellationToken cancellationToken)
    {
        ProcessRecord process;
        ContainerRecord container;
        lock (_gate)
        {
            container = FindContainer(request.Id);
            process = FindProcess(container, request.ExecId);
            if (process.Phase is not (ProcessPhase.Stopped or ProcessPhase.Created))
                throw Fail(TtrpcStatusCode.FailedPrecondition, $"delete {process.Describe()}: it is {process.Phase.ToString().ToLowerInvariant()}; kill it and wait for its exit first");
            process.Phase = ProcessPhase.Deleting;
        }
        try
        {
            await CallBackendAsync($"delete {process.Describe()}", async () =>
            {
                await _backend.DeleteExecAsync(request.Id, request.ExecId, cancellationToken).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);
        }
        catch
        {
            lock (_gate)
            {
                process.Phase = process.Exit is null ? ProcessPhase.Created : ProcessPhase.Stopped;
            }
            throw;
        }
        lock (_gate)
        {
            container.Execs.Remove(request.ExecId);
            return new DeleteResponse
            {
                Pid = process.Pid,
                ExitStatus = process.Exit?.ExitStatus ?? 0,
                ExitedAt = process.Exit is { } exit ? Timestamp.FromDateTime(exit.ExitedAt) : GoZeroTime.Clone(),
            };
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Pids / Pause / Resume / ResizePty / CloseIO / Connect / Shutdown / unsupported

    /// <summary>
    /// The container's processes. During its Create, Pids waits for the create to end, as the runc shim's does (its
    /// calls are serialized): containerd 2.x, restarted while a shim creates a container, loads the shim and calls Pids;
    /// an empty or NotFound answer makes it "clean a leaked shim" with a Delete that a creating container refuses, and
    /// then forget the shim with its VM running (issue 15's soak, containerd 2.1, restart 3.4 s into `ctr run`).
    /// </summary>
    public async Task<PidsResponse> PidsAsync(PidsRequest request, CancellationToken cancellationToken)
    {
        ContainerRecord? creating;
        lock (_gate)
        {
            var container = FindContainer(request.Id);
            creating = container.Init.Phase == ProcessPhase.Creating ? container : null;
        }
        if (creating is not null)
        {
            await creating.CreateEnded.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            lock (_gate)
            {
                FindContainer(request.Id);
            }
        }
        var pids = await CallBackendAsync($"list the processes of container {request.Id}",
            () => _backend.ListPidsAsync(request.Id, cancellationToken)).ConfigureAwait(false);
        var response = new PidsResponse();
        lock (_gate)
        {
            _containers.TryGetValue(request.Id, out var container);
            foreach (uint pid in pids)
            {
                var info = new ProcessInfo { Pid = pid };
                var exec = container?.Execs.Values.FirstOrDefault(e => e.Pid == pid && e.Phase == ProcessPhase.Running);
                if (exec is not null)
                    info.Info = new Any { TypeUrl = "containerd.runc.v1.ProcessDetails", Value = new ProcessDetails { ExecId = exec.ExecId }.ToByteString() };
                response.Processes.Add(info);
            }
        }
        return response;
    }

    public async Task<Empty> PauseAsync(PauseRequest request, CancellationToken cancellationToken)
    {
        ProcessRecord init;
        lock (_gate)
        {
            init = FindContainer(request.Id).Init;
            if (init.Phase != ProcessPhase.Running)
                throw Fail(TtrpcStatusCode.FailedPrecondition, $"pause container {request.Id}: it is {init.Phase.ToString().ToLowerInvariant()}, not running");
        }
        await CallBackendAsync($"pause container {request.Id}", async () =>
        {
            await _backend.PauseAsync(request.Id, cancellationToken).ConfigureAwait(false);
            return true;
        }).ConfigureAwait(false);
        lock (_gate)
        {
            if (init.Phase == ProcessPhase.Running)
                init.Phase = ProcessPhase.Paused;
            _events.Publish(ContainerdEvent.Of(new TaskPaused { ContainerId = request.Id }));
        }
        return new Empty();
    }

    public async Task<Empty> ResumeAsync(ResumeRequest request, CancellationToken cancellationToken)
    {
        ProcessRecord init;
        lock (_gate)
        {
            init = FindContainer(request.Id).Init;
            if (init.Phase != ProcessPhase.Paused)
                throw Fail(TtrpcStatusCode.FailedPrecondition, $"resume container {request.Id}: it is {init.Phase.ToString().ToLowerInvariant()}, not paused");
        }
        await CallBackendAsync($"resume container {request.Id}", async () =>
        {
            await _backend.ResumeAsync(request.Id, cancellationToken).ConfigureAwait(false);
            return true;
        }).ConfigureAwait(false);
        lock (_gate)
        {
            if (init.Phase == ProcessPhase.Paused)
                init.Phase = ProcessPhase.Running;
            _events.Publish(ContainerdEvent.Of(new TaskResumed { ContainerId = request.Id }));
        }
        return new Empty();
    }

    public async Task<Empty> ResizePtyAsync(ResizePtyRequest request, CancellationToken cancellationToken)
    {
        ProcessRecord process;
        lock (_gate)
        {
            process = FindProcess(FindContainer(request.Id), request.ExecId);
        }
        await CallBackendAsync($"resize the terminal of {process.Describe()}", async () =>
        {
            await _backend.ResizePtyAsync(request.Id, request.ExecId, request.Width, request.Height, cancellationToken).ConfigureAwait(false);
            return true;
        }).ConfigureAwait(false);
        return new Empty();
    }

    public async Task<Empty> CloseIOAsync(CloseIORequest request, CancellationToken cancellationToken)
    {
        ProcessRecord process;
        lock (_gate)
        {
            process = FindProcess(FindContainer(request.Id), request.ExecId);
        }
        if (request.Stdin)
        {
            await CallBackendAsync($"close the stdin of {process.Describe()}", async () =>
            {
                await _backend.CloseStdinAsync(request.Id, request.ExecId, cancellationToken).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);
        }
        return new Empty();
    }

    public Task<ConnectResponse> ConnectAsync(ConnectRequest request)
    {
        lock (_gate)
        {
            uint taskPid = _containers.TryGetValue(request.Id, out var container) ? container.Init.Pid : 0;
            return Task.FromResult(new ConnectResponse { ShimPid = (uint)Environment.ProcessId, TaskPid = taskPid });
        }
    }

    public Task<Empty> ShutdownAsync(ShutdownRequest request)
    {
        lock (_gate)
        {
            if (_containers.Count > 0)
                return Task.FromResult(new Empty()); // other containers of the group still live here
        }
        if (HoldsSandbox())
            return Task.FromResult(new Empty()); // the sandbox outlives its containers until ShutdownSandbox
        _shutdownRequested.TrySetResult();
        return Task.FromResult(new Empty());
    }

    public Task<Empty> CheckpointAsync(CheckpointTaskRequest request) =>
        throw Fail(TtrpcStatusCode.Unimplemented, $"checkpoint container {request.Id}: checkpointing is not supported by the sandbox shim");

    /// <summary>New limits for a created, running or paused container (CRI UpdateContainerResources, `ctr task update`).
    /// Bad values are refused before the backend sees them, naming the field; an exited container cannot be updated.</summary>
    public async Task<Empty> UpdateAsync(UpdateTaskRequest request, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var init = FindContainer(request.Id).Init;
            if (init.Phase is ProcessPhase.Creating or ProcessPhase.Stopped or ProcessPhase.Deleting)
                throw Fail(TtrpcStatusCode.FailedPrecondition,
                    $"update container {request.Id}: it is {init.Phase.ToString().ToLowerInvariant()}; only a created, running or paused container's limits can change");
        }
        ContainerResources resources;
        try
        {
            resources = ContainerResources.FromAny(request.Resources, request.Id);
        }
        catch (FormatException e)
        {
            throw Fail(TtrpcStatusCode.InvalidArgument, e.Message);
        }
        await CallBackendAsync($"update container {request.Id}", async () =>
        {
            await _backend.UpdateAsync(request.Id, resources, cancellationToken).ConfigureAwait(false);
            return true;
        }).ConfigureAwait(false);
        return new Empty();
    }

    /// <summary>The container's resource figures (for the VM backend: its cgroup in the guest, as cgroups v2 metrics).</summary>
    public async Task<StatsResponse> StatsAsync(StatsRequest request)
    {
        lock (_gate)
        {
            FindContainer(request.Id);
        }
        var stats = await CallBackendAsync($"read the stats of container {request.Id}",
            () => _backend.StatsAsync(request.Id, CancellationToken.None)).ConfigureAwait(false);
        return new StatsResponse { Stats = stats };
    }

    /// <summary>
    /// The daemon is going away (SIGTERM, or Shutdown): kill and remove what is left, release the backend,
    /// unmount every rootfs. Best effort; every failure is logged.
    /// </summary>
    public async Task StopAllAsync(CancellationToken cancellationToken)
    {
        _lifetime.Cancel();
        ContainerRecord[] left;
        lock (_gate)
        {
            left = _containers.Values.ToArray();
        }
        try
        {
            await _backend.ShutdownAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _log($"shutting down the backend failed: {e.Message}");
        }
        foreach (var container in left)
        {
            if (container.RootfsMounted)
                UnmountRootfs(container);
        }
        lock (_gate)
        {
            _containers.Clear();
        }
    }

    // ---------------------------------------------------------------------------------------------------------

    private async Task MonitorExitAsync(ProcessRecord process)
    {
        ProcessExit exit;
        try
        {
            exit = await _backend.WaitAsync(process.ContainerId, process.ExecId, _lifetime.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
        {
            return;
        }
        catch (Exception e)
        {
            // the backend lost the process (agent or VM gone): report it dead rather than leave Wait hanging
            _log($"{process.Describe()}: waiting for its exit failed, reporting exit status 255: {e.Message}");
            exit = new ProcessExit(255, DateTime.UtcNow);
        }

        lock (_gate)
        {
            if (process.Exit is not null)
                return;
            process.Exit = exit;
            if (process.Phase == ProcessPhase.Starting)
            {
                process.ExitAwaitsStartEvent = true; // Start publishes the start event, then this exit
                process.Phase = ProcessPhase.Stopped;
                return;
            }
            if (process.Phase != ProcessPhase.Deleting)
                process.Phase = ProcessPhase.Stopped;
            PublishExit(process);
        }
    }

    /// <summary>Publishes the exit event and releases Wait callers. Call under the lock with Exit set.</summary>
    private void PublishExit(ProcessRecord process)
    {
        process.ExitAwaitsStartEvent = false;
        if (process.Phase is not ProcessPhase.Deleting)
            process.Phase = ProcessPhase.Stopped;
        var exit = process.Exit!.Value;
        if (process.IsInit && exit.OomKilled)
            _events.Publish(ContainerdEvent.Of(new TaskOOM { ContainerId = process.ContainerId })); // before the exit, as runc's shim does
        _events.Publish(ContainerdEvent.Of(new TaskExit
        {
            ContainerId = process.ContainerId,
            Id = process.IsInit ? process.ContainerId : process.ExecId,
            Pid = process.Pid,
            ExitStatus = exit.ExitStatus,
            ExitedAt = Timestamp.FromDateTime(exit.ExitedAt),
        }));
        process.Exited.TrySetResult();
    }

    private static void CheckKillable(ProcessRecord process)
    {
        if (process.Exit is not null)
            throw Fail(TtrpcStatusCode.NotFound, "process already finished");
        if (process.Phase == ProcessPhase.Creating)
            throw Fail(TtrpcStatusCode.FailedPrecondition, $"kill {process.Describe()}: it is still being created");
        if (process.Phase == ProcessPhase.Created && !process.IsInit)
            throw Fail(TtrpcStatusCode.FailedPrecondition, $"kill {process.Describe()}: it has not been started");
    }

    private void UnmountRootfs(ContainerRecord container)
    {
        try
        {
            _rootfs.Unmount(container.RootfsPath);
            container.RootfsMounted = false;
        }
        catch (Exception e)
        {
            _log($"container {container.Id}: unmounting its rootfs {container.RootfsPath} failed: {e.Message}");
        }
    }

    private ContainerRecord FindContainer(string id)
    {
        if (!_containers.TryGetValue(id, out var container))
            throw Fail(TtrpcStatusCode.NotFound, $"container {id}: container not created");
        return container;
    }

    private static ProcessRecord FindProcess(ContainerRecord container, string execId)
    {
        if (execId.Length == 0)
            return container.Init;
        if (!container.Execs.TryGetValue(execId, out var process))
            throw Fail(TtrpcStatusCode.NotFound, $"exec {execId} of container {container.Id}: process does not exist");
        return process;
    }

    private static TaskStatus StatusOf(ProcessRecord process) => process.Phase switch
    {
        ProcessPhase.Creating or ProcessPhase.Created or ProcessPhase.Starting => TaskStatus.Created,
        ProcessPhase.Running => TaskStatus.Running,
        ProcessPhase.Paused => TaskStatus.Paused,
        ProcessPhase.Stopped => TaskStatus.Stopped,
        ProcessPhase.Deleting => process.Exit is null ? TaskStatus.Created : TaskStatus.Stopped,
        _ => TaskStatus.Unknown,
    };

    private static async Task<T> CallBackendAsync<T>(string what, Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (SandboxBackendException e)
        {
            throw new TtrpcException(e.Code, e.Message.StartsWith(what, StringComparison.Ordinal) ? e.Message : $"{what}: {e.Message}", e);
        }
        catch (Exception e) when (e is not (TtrpcException or OperationCanceledException))
        {
            throw new TtrpcException(TtrpcStatusCode.Unknown, $"{what}: {e.Message}", e);
        }
    }

    private static TtrpcException Fail(TtrpcStatusCode code, string message) => new(code, message);
}
