using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Sandbox.Agent.Protocol;
using Sandbox.Hypervisors;
using Sandbox.Runtime.Agent;
using Sandbox.Runtime.Configuration;
using Sandbox.Runtime.Network;
using Sandbox.Runtime.PostMortem;
using Sandbox.Runtime.Sandboxes;
using Sandbox.Runtime.Templates;
using Sandbox.Shim.Backend;
using Sandbox.Shim.Start;
using Sandbox.Ttrpc;
using AgentClient = Sandbox.Agent.Protocol.Agent.AgentClient;

namespace Sandbox.Shim.Vm;

/// <summary>
/// THE PRODUCT BACKEND: the containers of one shim daemon (one sandbox group: a CRI pod, or a single `ctr run`
/// container) run in one QEMU VM, driven through its in-guest agent (agent.proto), as Kata does.
/// - The VM boots at the first CreateContainer (for CRI, the pause container); its sandbox id is the group id
///   (annotation io.kubernetes.cri.sandbox-id, else the container id). A copy of the configuration in effect and the
///   owning daemon (<see cref="SandboxOwnerFile"/>, written by SandboxVm) go into its state directory.
/// - The VM's size comes from the pod's resources (<see cref="PodVmSize"/>), its network from the first container's
///   network namespace (CRI's pod namespace: <see cref="PodNetwork"/>; QEMU runs in it, the guest gets its addresses).
/// - A container's rootfs is bind-mounted into the VM's shared directory (<see cref="RootfsShare"/>), so are its bind
///   mounts (volumes, CRI's /etc/hosts etc.; CRI's host /dev/shm becomes a guest tmpfs: <see cref="ContainerMountShare"/>),
///   and the agent creates it from the bundle's config.json with those sources rewritten to guest paths. The pid
///   containerd sees for every process is QEMU's.
/// - stdio: <see cref="GuestStdioBridge"/>; exits: the agent's WaitProcess, reported once all output is delivered.
/// - When QEMU dies unexpectedly, every pending and future wait reports exit status 137 (so containerd learns the
///   processes are gone), and the VM's helper processes and sockets are cleaned up; the state directory goes with the
///   last container (or at Shutdown).
/// - containerd 2.x's Sandbox API (<see cref="IPodSandboxBackend"/>): StartPodSandbox boots the VM from CRI's pod
///   config and starts the guest process that holds the pod's namespaces (<see cref="GuestPodNamespaces"/>), in place
///   of a pause container; StopPodSandbox stops it all as Shutdown does.
/// Every agent call that should not block carries the deadline agent.rpc_timeout.
/// </summary>
internal sealed class VmSandboxBackend : ISandboxBackend, IPodSandboxBackend
{
    private const uint KilledBySigkill = 128 + 9;
    /// <summary>runc gives a container /dev/core only when the kernel has /proc/kcore: the agent keeps crun's link only then.</summary>
    private static readonly bool HostHasKcore = File.Exists("/proc/kcore");
    private static readonly TimeSpan OutputDrainLimit = TimeSpan.FromSeconds(10);

    /// <summary>How long an agent call that found the agent unreachable waits to learn whether the VM is going.</summary>
    private static readonly TimeSpan VmLossSettleTime = TimeSpan.FromSeconds(3);
    /// <summary>WaitProcess blocks until the exit: it is re-issued after this long, so no call waits forever on a dead connection.</summary>
    private static readonly TimeSpan WaitCallSlice = TimeSpan.FromMinutes(10);
    private const int WaitReconnectAttempts = 5;

    private readonly SandboxConfiguration _configuration;
    private readonly Func<IHypervisor> _newHypervisor;
    private readonly Action<string> _log;
    private readonly string _containerdNamespace;
    private readonly SemaphoreSlim _bootGate = new(1, 1);
    private readonly ConcurrentDictionary<string, VmContainer> _containers = new(StringComparer.Ordinal);
    /// <summary>Cancelled when the VM is lost or shut down: ends waits and stdio copies.</summary>
    private readonly CancellationTokenSource _vmGone = new();
    private readonly TaskCompletionSource<VmExit> _vmLost = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<uint> _podSandboxStopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private SandboxVm? _vm;
    /// <summary>The VM's vCPUs and memory, fixed at boot.</summary>
    private (int Vcpus, int MemoryMiB) _vmSize;
    private volatile bool _shuttingDown;
    /// <summary>The VM was started through the Sandbox API: it lives until StopSandbox, not as long as its containers.</summary>
    private volatile bool _vmOwnedBySandboxApi;
    /// <summary>Set before <see cref="_vmLost"/> completes: QEMU was killed by the host's OOM killer.</summary>
    private volatile bool _vmLostToHostOom;

    /// <summary>The lines of <see cref="_log"/>, kept for the sandbox's shim.log and post-mortem record.</summary>
    private readonly SandboxJournal _journal = new();
    private readonly PostMortemStore _postMortems;

    public VmSandboxBackend(SandboxConfiguration configuration, Func<IHypervisor> newHypervisor, string containerdNamespace, Action<string> log)
    {
        _containerdNamespace = containerdNamespace;
        _configuration = configuration;
        _newHypervisor = newHypervisor;
        _log = line =>
        {
            log(line);
            _journal.Append(line);
        };
        _postMortems = new PostMortemStore(configuration.ResolveStateRoot(), configuration.Runtime.PostMortemRecords);
    }

    private DateTime Deadline => DateTime.UtcNow + _configuration.Agent.RpcTimeout;

    // ---------------------------------------------------------------------------------------------------------
    // Containers and processes

    public async Task<uint> CreateContainerAsync(ContainerCreateRequest request, CancellationToken cancellationToken)
    {
        string id = request.ContainerId;
        string owner = $"create container {id}";
        long start = Stopwatch.GetTimestamp();
        string specJson = await ReadBundleSpecAsync(request.Bundle, owner, cancellationToken).ConfigureAwait(false);
        var (sandboxId, hostname) = SandboxOf(specJson, id, owner);
        var vm = await EnsureVmAsync(sandboxId, hostname, specJson, owner, cancellationToken).ConfigureAwait(false);
        long vmReady = Stopwatch.GetTimestamp();
        long shared = vmReady;

        string containerDirectory = RootfsShare.ContainerDirectory(vm.State.SharedDirectory, id);
        StateDirectoryPointer.Write(request.Bundle, vm.State.Path);
        var stdio = GuestStdioBridge.Open(request.Stdio, id, _containerdNamespace, $"container {id}", _log);
        bool bound = false;
        try
        {
            RootfsShare.Bind(RootfsOf(specJson, request.Bundle, owner), containerDirectory, $"container {id}");
            bound = true;
            string guestSpecJson = ContainerMountShare.Share(specJson, containerDirectory, vm.GuestPathOf, $"container {id}");
            shared = Stopwatch.GetTimestamp();
            await vm.Agent.Client.CreateContainerAsync(new CreateContainerRequest
            {
                ContainerId = id,
                OciSpecJson = ByteString.CopyFromUtf8(guestSpecJson),
                RootfsPath = vm.GuestPathOf(RootfsShare.RootfsPath(containerDirectory)),
                Terminal = request.Stdio.Terminal,
                Stdin = stdio.HasStdin,
                DevCore = HostHasKcore,
            }, deadline: Deadline, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            stdio.Dispose();
            if (bound)
                TryRemoveFromShare(containerDirectory, id);
            var failure = e is RpcException rpc ? AgentCallFailure.Describe(rpc, owner, vm, _configuration) : e;
            RecordContainerFailure(vm, id, failure);
            if (failure != e)
                throw failure;
            throw;
        }

        var init = new VmProcess(id, "", stdio);
        stdio.Start(new GuestProcessStdio(vm.Agent.Client, id), _vmGone.Token);
        init.Exit = CollectExitAsync(vm, init);
        var container = _containers[id] = new VmContainer(id, containerDirectory, init) { Limits = ContainerLimits.OfSpec(specJson) };
        _ = RecordExitAsync(vm, container);
        _log($"container {id}: created in {Milliseconds(start)} (VM {Milliseconds(start, vmReady)}, rootfs and mounts shared in " +
             $"{Milliseconds(vmReady, shared)}, agent CreateContainer {Milliseconds(shared)})");
        return QemuPid(vm);
    }

    public async Task<uint> StartContainerAsync(string containerId, CancellationToken cancellationToken)
    {
        Find(containerId);
        var vm = RequireLiveVm($"start container {containerId}");
        long start = Stopwatch.GetTimestamp();
        try
        {
            await CallAsync(vm, $"start container {containerId}", client =>
                client.StartContainerAsync(new StartContainerRequest { ContainerId = containerId }, deadline: Deadline, cancellationToken: cancellationToken).ResponseAsync)
                .ConfigureAwait(false);
        }
        catch (SandboxBackendException e)
        {
            RecordContainerFailure(vm, containerId, e);
            throw;
        }
        _log($"container {containerId}: started in {Milliseconds(start)}");
        return QemuPid(vm);
    }

    public async Task<uint> StartExecAsync(ExecStartRequest request, CancellationToken cancellationToken)
    {
        var container = Find(request.ContainerId);
        string owner = $"exec {request.ExecId} of container {request.ContainerId}";
        var vm = RequireLiveVm($"start {owner}");
        var stdio = GuestStdioBridge.Open(request.Stdio, request.ContainerId, _containerdNamespace, owner, _log);
        try
        {
            await CallAsync(vm, $"start {owner}", client => client.ExecProcessAsync(new Sandbox.Agent.Protocol.ExecProcessRequest
            {
                ContainerId = request.ContainerId,
                ExecId = request.ExecId,
                ProcessJson = ByteString.CopyFromUtf8(request.ProcessSpecJson),
                Terminal = request.Stdio.Terminal,
                Stdin = stdio.HasStdin,
            }, deadline: Deadline, cancellationToken: cancellationToken).ResponseAsync).ConfigureAwait(false);
        }
        catch
        {
            stdio.Dispose();
            throw;
        }

        var process = new VmProcess(request.ContainerId, request.ExecId, stdio);
        stdio.Start(new GuestProcessStdio(vm.Agent.Client, request.ContainerId, request.ExecId), _vmGone.Token);
        process.Exit = CollectExitAsync(vm, process);
        container.Execs[request.ExecId] = process;
        return QemuPid(vm);
    }

    public Task<ProcessExit> WaitAsync(string containerId, string execId, CancellationToken cancellationToken) =>
        FindProcess(containerId, execId).Exit.WaitAsync(cancellationToken);

    public async Task KillAsync(string containerId, string execId, uint signal, bool all, CancellationToken cancellationToken)
    {
        var process = FindProcess(containerId, execId);
        if (_vmLost.Task.IsCompleted || process.Exit.IsCompleted)
            throw new SandboxBackendException(TtrpcStatusCode.NotFound, "process already finished");
        var vm = RequireLiveVm($"kill {process.Describe()}");
        try
        {
            await vm.Agent.Client.SignalProcessAsync(new SignalProcessRequest
            {
                ContainerId = containerId,
                ExecId = execId,
                Signal = signal,
                All = all,
            }, deadline: Deadline, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
            throw new SandboxBackendException(TtrpcStatusCode.NotFound, "process already finished", e);
        }
        catch (RpcException e)
        {
            if (await VmLostMeanwhileAsync(e).ConfigureAwait(false))
                throw new SandboxBackendException(TtrpcStatusCode.NotFound, "process already finished: its VM has exited", e);
            throw AgentCallFailure.Describe(e, $"kill {process.Describe()} with signal {signal}", vm, _configuration);
        }
    }

    /// <summary>For `sandboxctl doctor`: a container that could not be created or started, with the error containerd got.</summary>
    private static void RecordContainerFailure(SandboxVm vm, string containerId, Exception failure) =>
        SandboxEventLog.Append(vm.State.Path, new SandboxEvent
        {
            Time = DateTimeOffset.UtcNow,
            Kind = SandboxEvent.ContainerFailed,
            ContainerId = containerId,
            Message = failure.Message,
        });

    /// <summary>For `sandboxctl doctor`: how a container's init process ended, with its memory limit (for an OOM kill).</summary>
    private static async Task RecordExitAsync(SandboxVm vm, VmContainer container)
    {
        ProcessExit exit;
        try
        {
            exit = await container.Init.Exit.ConfigureAwait(false);
        }
        catch (Exception e) when (e is SandboxBackendException or RpcException or OperationCanceledException)
        {
            return; // no exit to record: the wait failed or the shim shut down first; containerd's own Wait got that
        }
        SandboxEventLog.Append(vm.State.Path, new SandboxEvent
        {
            Time = new DateTimeOffset(DateTime.SpecifyKind(exit.ExitedAt, DateTimeKind.Utc)),
            Kind = SandboxEvent.ContainerExit,
            ContainerId = container.Id,
            ExitStatus = (int)exit.ExitStatus,
            OomKilled = exit.OomKilled,
            MemoryLimitBytes = container.Limits.MemoryBytes > 0 ? container.Limits.MemoryBytes : null,
        });
    }

    /// <summary>
    /// A call that found the agent unreachable because the VM is going away (its vsock daemon or QEMU has just died)
    /// races <see cref="WatchVmAsync"/>, which declares the VM lost up to <see cref="VmLossSettleTime"/> later (the vsock
    /// daemon's grace for QEMU, then QEMU's kill). Answering with the call's own error then fails a `ctr task rm` that
    /// would have succeeded a moment later, and containerd does not retry it: the sandbox stayed behind (issue 15's soak).
    /// True when the VM turned out lost.
    /// </summary>
    private async Task<bool> VmLostMeanwhileAsync(RpcException e)
    {
        if (_vmLost.Task.IsCompleted)
            return true;
        if (e.StatusCode != StatusCode.Unavailable)
            return false;
        return await Task.WhenAny(_vmLost.Task, Task.Delay(VmLossSettleTime)).ConfigureAwait(false) == _vmLost.Task;
    }

    public Task PauseAsync(string containerId, CancellationToken cancellationToken)
    {
        Find(containerId);
        var vm = RequireLiveVm($"pause container {containerId}");
        return CallAsync(vm, $"pause container {containerId}", client =>
            client.PauseContainerAsync(new PauseContainerRequest { ContainerId = containerId }, deadline: Deadline, cancellationToken: cancellationToken).ResponseAsync);
    }

    public Task ResumeAsync(string containerId, CancellationToken cancellationToken)
    {
        Find(containerId);
        var vm = RequireLiveVm($"resume container {containerId}");
        return CallAsync(vm, $"resume container {containerId}", client =>
            client.ResumeContainerAsync(new ResumeContainerRequest { ContainerId = containerId }, deadline: Deadline, cancellationToken: cancellationToken).ResponseAsync);
    }

    public async Task<IReadOnlyList<uint>> ListPidsAsync(string containerId, CancellationToken cancellationToken)
    {
        Find(containerId);
        var vm = RequireLiveVm($"list the processes of container {containerId}");
        var response = await CallAsync(vm, $"list the processes of container {containerId}", client =>
            client.ListProcessesAsync(new ListProcessesRequest { ContainerId = containerId }, deadline: Deadline, cancellationToken: cancellationToken).ResponseAsync)
            .ConfigureAwait(false);
        return response.Pids.ToArray();
    }

    public async Task<Google.Protobuf.WellKnownTypes.Any> StatsAsync(string containerId, CancellationToken cancellationToken)
    {
        Find(containerId);
        var vm = RequireLiveVm($"read the stats of container {containerId}");
        var stats = await CallAsync(vm, $"read the stats of container {containerId}", client =>
            client.GetContainerStatsAsync(new GetContainerStatsRequest { ContainerId = containerId }, deadline: Deadline, cancellationToken: cancellationToken).ResponseAsync)
            .ConfigureAwait(false);
        return new Google.Protobuf.WellKnownTypes.Any { TypeUrl = GuestCgroupMetrics.TypeUrl, Value = GuestCgroupMetrics.From(stats).ToByteString() };
    }

    /// <summary>The new limits go to the container's cgroup in the guest (the agent runs `crun update`), once
    /// <see cref="PodResourceBudget"/> says the VM can give them.</summary>
    public async Task UpdateAsync(string containerId, ContainerResources resources, CancellationToken cancellationToken)
    {
        var container = Find(containerId);
        string what = $"update container {containerId}";
        var vm = RequireLiveVm(what);
        var updated = container.Limits.With(resources);
        var others = _containers.Values.Where(c => c.Id != containerId).Select(c => c.Limits);
        if (PodResourceBudget.RefusalFor(containerId, _vmSize.Vcpus, _vmSize.MemoryMiB, others, container.Limits, updated) is { } refusal)
            throw new SandboxBackendException(TtrpcStatusCode.FailedPrecondition, refusal);
        await CallAsync(vm, what, client => client.UpdateContainerAsync(new UpdateContainerRequest
        {
            ContainerId = containerId,
            ResourcesJson = ByteString.CopyFromUtf8(resources.Json),
        }, deadline: Deadline, cancellationToken: cancellationToken).ResponseAsync).ConfigureAwait(false);
        container.Limits = updated;
        _log($"container {containerId}: resources updated to {resources.Json}");
    }

    public async Task ResizePtyAsync(string containerId, string execId, uint width, uint height, CancellationToken cancellationToken)
    {
        var process = FindProcess(containerId, execId);
        if (!process.Stdio.Terminal || process.Exit.IsCompleted)
            return; // no terminal (or nothing left to resize): nothing to do, as in runc's shim
        var vm = RequireLiveVm($"resize the terminal of {process.Describe()}");
        await CallAsync(vm, $"resize the terminal of {process.Describe()}", client => client.TtyWinResizeAsync(new TtyWinResizeRequest
        {
            ContainerId = containerId,
            ExecId = execId,
            Rows = height,
            Columns = width,
        }, deadline: Deadline, cancellationToken: cancellationToken).ResponseAsync).ConfigureAwait(false);
    }

    public Task CloseStdinAsync(string containerId, string execId, CancellationToken cancellationToken)
    {
        FindProcess(containerId, execId).Stdio.CloseStdin();
        return Task.CompletedTask;
    }

    public Task DeleteExecAsync(string containerId, string execId, CancellationToken cancellationToken)
    {
        // the agent keeps an exited exec until its container is removed; only the host side goes here
        if (Find(containerId).Execs.TryRemove(execId, out var process))
            process.Stdio.Dispose();
        return Task.CompletedTask;
    }

    public async Task DeleteContainerAsync(string containerId, CancellationToken cancellationToken)
    {
        var container = Find(containerId);
        var vm = _vm;
        if (vm is not null && !_vmLost.Task.IsCompleted)
        {
            if (!_vmOwnedBySandboxApi && _containers.Count == 1 && _containers.ContainsKey(containerId))
            {
                await DeleteLastContainerAsync(vm, container, cancellationToken).ConfigureAwait(false);
                return;
            }
            try
            {
                await vm.Agent.Client.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = containerId, Force = true },
                    deadline: Deadline, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
                // already gone in the guest
            }
            catch (RpcException e)
            {
                if (!await VmLostMeanwhileAsync(e).ConfigureAwait(false))
                    throw AgentCallFailure.Describe(e, $"delete container {containerId}", vm, _configuration);
            }
        }
        foreach (var process in container.AllProcesses())
            process.Stdio.Dispose();
        RootfsShare.Remove(container.ShareDirectory);
        _containers.TryRemove(containerId, out _);
    }

    /// <summary>
    /// The last container of a VM that lives as long as its containers (ctr's; a CRI pod's, whose pause container goes
    /// last; not a Sandbox API sandbox's, which lives until StopSandbox). containerd's Shutdown comes next, and the
    /// shim would stop the VM then, while containerd's `delete` waited for it. The VM stops here instead: DestroySandbox
    /// removes the container in the guest (a RemoveContainer first would be one more call into a guest that is torn
    /// down anyway), and the shim exits at once at the Shutdown. Order as for any delete: the guest unmounts the
    /// container's rootfs (pages dirtied through shared mmaps are written back) before the host unbinds it.
    /// </summary>
    private async Task DeleteLastContainerAsync(SandboxVm vm, VmContainer container, CancellationToken cancellationToken)
    {
        _log($"container {container.Id}: the last container of sandbox {vm.SandboxId} is deleted: its VM stops now");
        await vm.DestroyGuestAsync(cancellationToken).ConfigureAwait(false);
        foreach (var process in container.AllProcesses())
            process.Stdio.Dispose();
        RootfsShare.Remove(container.ShareDirectory);
        _containers.TryRemove(container.Id, out _);
        await ShutdownAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task ShutdownAsync(CancellationToken cancellationToken)
    {
        _shuttingDown = true;
        bool gate = false;
        try
        {
            gate = await _bootGate.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        try
        {
            var vm = _vm;
            foreach (var container in _containers.Values)
            {
                _log($"container {container.Id}: still present at shutdown; its VM stops with it");
                foreach (var process in container.AllProcesses())
                    process.Stdio.Dispose();
                TryRemoveFromShare(container.ShareDirectory, container.Id);
            }
            _containers.Clear();
            _vmGone.Cancel();
            if (vm is null)
                return;
            _log($"sandbox {vm.SandboxId}: stopping its VM");
            _vm = null; // a second shutdown (StopSandbox, then the daemon's exit) finds nothing left to stop
            long stopping = Stopwatch.GetTimestamp();
            await vm.DisposeAsync().ConfigureAwait(false); // DestroySandbox, QEMU and its helpers stopped, state directory removed
            _log($"sandbox {vm.SandboxId}: VM stopped in {Milliseconds(stopping)} ({vm.StopPhases})");
            if (Directory.Exists(vm.State.Path))
                await SandboxStateRemoval.RemoveAsync(vm.State, _log, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (gate)
                _bootGate.Release();
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // The Sandbox API (containerd 2.x, sandboxer = "shim"): the VM and the pod's namespaces without a pause container

    public async Task<StartedPodSandbox> StartPodSandboxAsync(PodSandboxSpec spec, CancellationToken cancellationToken)
    {
        string owner = $"start sandbox {spec.SandboxId}";
        long start = Stopwatch.GetTimestamp();
        SandboxVm vm;
        await _bootGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_shuttingDown)
                throw new SandboxBackendException(TtrpcStatusCode.FailedPrecondition, $"{owner}: the shim is shutting down");
            if (_vm is not null)
                throw new SandboxBackendException(TtrpcStatusCode.AlreadyExists, $"{owner}: this shim already runs the VM of sandbox {_vm.SandboxId}");
            vm = _vm = await BootAsync(spec, owner, cancellationToken).ConfigureAwait(false);
            _vmOwnedBySandboxApi = true;
        }
        finally
        {
            _bootGate.Release();
        }
        long booted = Stopwatch.GetTimestamp();

        // The pod's shared namespaces (ipc, uts, pid) live in a guest process, as a pause container's would: the
        // sandbox's containers join them (the agent's pod membership), and it sets the pod's hostname.
        await CallAsync(vm, $"{owner}: create the guest process that holds the pod's namespaces", client => client.CreateContainerAsync(new CreateContainerRequest
        {
            ContainerId = spec.SandboxId,
            OciSpecJson = ByteString.CopyFromUtf8(GuestPodNamespaces.SpecJson(spec.SandboxId, spec.Hostname)),
            RootfsPath = GuestPodNamespaces.RootfsPath,
            DevCore = HostHasKcore,
        }, deadline: Deadline, cancellationToken: cancellationToken).ResponseAsync).ConfigureAwait(false);
        await CallAsync(vm, $"{owner}: start the guest process that holds the pod's namespaces", client =>
            client.StartContainerAsync(new StartContainerRequest { ContainerId = spec.SandboxId }, deadline: Deadline, cancellationToken: cancellationToken).ResponseAsync)
            .ConfigureAwait(false);
        _log($"sandbox {spec.SandboxId}: started through the Sandbox API in {Milliseconds(start)} (VM {Milliseconds(start, booted)}, pod namespaces {Milliseconds(booted)})");
        return new StartedPodSandbox(QemuPid(vm), PodSandboxExitAsync());
    }

    public async Task StopPodSandboxAsync(string sandboxId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (_vm is { } vm && vm.SandboxId != sandboxId)
            throw new SandboxBackendException(TtrpcStatusCode.NotFound, $"stop sandbox {sandboxId}: this shim runs sandbox {vm.SandboxId}");
        _log($"sandbox {sandboxId}: stopping (Sandbox API StopSandbox)");
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout > TimeSpan.Zero ? timeout + TimeSpan.FromSeconds(10) : TimeSpan.FromSeconds(30));
        await ShutdownAsync(limit.Token).ConfigureAwait(false);
        _podSandboxStopped.TrySetResult(0);
    }

    /// <summary>0 once StopSandbox stopped the sandbox; 137 when its VM died first.</summary>
    private async Task<uint> PodSandboxExitAsync()
    {
        var first = await Task.WhenAny(_podSandboxStopped.Task, _vmLost.Task).ConfigureAwait(false);
        return first == _podSandboxStopped.Task ? _podSandboxStopped.Task.Result : KilledBySigkill;
    }

    // ---------------------------------------------------------------------------------------------------------
    // The VM

    private async Task<SandboxVm> EnsureVmAsync(string sandboxId, string hostname, string specJson, string owner, CancellationToken cancellationToken)
    {
        await _bootGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_shuttingDown)
                throw new SandboxBackendException(TtrpcStatusCode.FailedPrecondition, $"{owner}: the shim is shutting down");
            if (_vm is { } running)
            {
                if (running.SandboxId != sandboxId)
                {
                    throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument,
                        $"{owner}: it belongs to sandbox {sandboxId}, but this shim runs sandbox {running.SandboxId} " +
                        $"(annotation {BundleConfig.SandboxIdAnnotation})");
                }
                RequireLiveVm(owner);
                return running;
            }
            string? refusal;
            try
            {
                refusal = HostNamespaceRefusal.MessageFor(sandboxId, HostNamespaceRefusal.RequestedBy(specJson));
            }
            catch (FormatException e)
            {
                throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument, $"{owner}: sandbox {sandboxId}: {e.Message}", e);
            }
            if (refusal is not null)
                throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument, $"{owner}: {refusal}");
            _vm = await BootAsync(new PodSandboxSpec(sandboxId, hostname, OciNetworkNamespace.PathOf(specJson) ?? "",
                PodVmSize.AnnotationsOf(specJson), PodHostCgroupPlan.CgroupsPathOf(specJson)), owner, cancellationToken).ConfigureAwait(false);
            return _vm;
        }
        finally
        {
            _bootGate.Release();
        }
    }

    /// <summary>
    /// Boots the VM of a sandbox: for the task API from the first container's spec (for CRI: the sandbox container's),
    /// for the Sandbox API from CRI's pod config. Its size comes from the pod's resources (<see cref="PodVmSize"/>),
    /// its network from the pod's network namespace (which CNI has configured: <see cref="PodNetwork"/> wires it to
    /// the VM and QEMU runs in it).
    /// </summary>
    private async Task<SandboxVm> BootAsync(PodSandboxSpec pod, string owner, CancellationToken cancellationToken)
    {
        string sandboxId = pod.SandboxId;
        SandboxVmOptions options;
        try
        {
            options = _configuration.ToVmOptions(sandboxId, pod.Hostname);
            var size = PodVmSize.From(pod.Annotations, options.Vcpus, options.MemoryMiB, Environment.ProcessorCount, PodVmSize.HostMemoryMiB());
            string netns = pod.NetworkNamespacePath;
            var cgroup = PodHostCgroupPlan.For(pod, size, _configuration);
            options = options with
            {
                Vcpus = size.Vcpus,
                MemoryMiB = size.MemoryMiB,
                Network = netns.Length == 0 ? null : new PodNetwork(sandboxId, netns),
                HostCgroupPath = cgroup.Path,
                HostCgroupMemoryLimit = cgroup.MemoryLimit,
                Log = _log,
                Journal = _journal,
                PostMortems = _postMortems,
            };
            _log($"sandbox {sandboxId}: {size.Vcpus} vCPU(s), {size.MemoryMiB} MiB: {size.Reason}; network: {(netns.Length > 0 ? netns : "none (loopback only)")}; " +
                 $"host cgroup: {cgroup.Reason}");
        }
        catch (FileNotFoundException e)
        {
            throw RecordBootRefusal(sandboxId, new SandboxBackendException(TtrpcStatusCode.FailedPrecondition, $"{owner}: sandbox {sandboxId}: {e.Message}", e));
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            throw RecordBootRefusal(sandboxId, new SandboxBackendException(TtrpcStatusCode.InvalidArgument, $"{owner}: sandbox {sandboxId}: {e.Message}", e));
        }

        _log($"sandbox {sandboxId}: booting its VM (configuration: {_configuration.Source}; state: {Path.Combine(options.StateRoot!, sandboxId)})");
        var clock = Stopwatch.StartNew();
        var hypervisor = _newHypervisor();
        SandboxVm vm;
        try
        {
            vm = await StartFromTemplateOrBootAsync(options, hypervisor, cancellationToken).ConfigureAwait(false);
            hypervisor = vm.Hypervisor;
            _vmSize = (options.Vcpus, options.MemoryMiB);
        }
        catch (Exception e)
        {
            await hypervisor.DisposeAsync().ConfigureAwait(false);
            if (e is OperationCanceledException)
                throw;
            throw new SandboxBackendException(TtrpcStatusCode.Unknown,
                $"{owner}: booting the VM of sandbox {sandboxId} failed: {e.Message}\n" +
                $"Check the host with `sandboxctl check`; configuration: {_configuration.Source}", e);
        }

        try
        {
            File.WriteAllText(Path.Combine(vm.State.Path, SandboxConfigurationWriter.FileName), SandboxConfigurationWriter.ToToml(_configuration,
                $"configuration in effect for sandbox {sandboxId} (containerd-shim-sandbox-v2 pid {Environment.ProcessId})"));
        }
        catch (IOException e)
        {
            _log($"sandbox {sandboxId}: writing its state files failed: {e.Message}");
        }
        _ = WatchVmAsync(vm);
        _ = WatchAgentLivenessAsync(vm);
        _log($"sandbox {sandboxId}: VM running (QEMU pid {vm.Hypervisor.Pid}, {vm.Hypervisor.Capabilities.Acceleration}, " +
             $"{vm.Hypervisor.Capabilities.VsockMode} vsock), agent ready after {clock.Elapsed.TotalSeconds:0.00} s ({vm.BootPhases}); console: {vm.Hypervisor.ConsoleLogPath}");
        _ = LogBootImagesReleasedAsync(vm);
        return vm;
    }

    /// <summary>
    /// With [hypervisor.qemu] template = true: the VM as a clone of its template (<see cref="VmTemplateCloner"/>), and
    /// when that fails, booted cold all the same (a pod never fails because of a template; the log says why).
    /// Otherwise, or for a sandbox templates do not cover, a cold boot.
    /// </summary>
    private async Task<SandboxVm> StartFromTemplateOrBootAsync(SandboxVmOptions options, IHypervisor hypervisor, CancellationToken cancellationToken)
    {
        if (!_configuration.Qemu.Template)
            return await SandboxVm.BootAsync(options, hypervisor, cancellationToken).ConfigureAwait(false);
        var cloner = new VmTemplateCloner(new VmTemplateStore(VmTemplateCloner.RootBeside(options.StateRoot!)), _newHypervisor, _log);
        TemplateClone? attempted = null;
        try
        {
            var vm = await SandboxVm.BootAsync(options with
            {
                // once the pod's network cards are known: their number is part of the template's recipe
                CloneSource = async (networkCards, token) => attempted = await cloner.TryPrepareAsync(options, networkCards, token).ConfigureAwait(false),
            }, hypervisor, cancellationToken).ConfigureAwait(false);
            if (attempted is not null)
                _log($"sandbox {options.SandboxId}: {attempted.Describe()}");
            return vm;
        }
        catch (Exception e) when (attempted is not null && (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested))
        {
            _log($"sandbox {options.SandboxId}: starting from template {attempted.Template.Key[..16]} failed, booting cold instead: {e.Message}");
            await hypervisor.DisposeAsync().ConfigureAwait(false);
            return await SandboxVm.BootAsync(options, _newHypervisor(), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A boot refused before the sandbox had a state directory (a missing guest kernel, a bad size): its
    /// post-mortem record is all that `sandboxctl doctor` will find.</summary>
    private SandboxBackendException RecordBootRefusal(string sandboxId, SandboxBackendException refusal)
    {
        if (_postMortems.Write(PostMortemRecord.BootRefused(sandboxId, refusal.Message, _journal.Recent())) is { } problem)
            _log(problem);
        return refusal;
    }

    private async Task LogBootImagesReleasedAsync(SandboxVm vm) =>
        _log($"sandbox {vm.SandboxId}: {await vm.BootImagesReleased.ConfigureAwait(false)}");

    /// <summary>QEMU ended without being asked to: report every process as killed and release the VM's helpers.</summary>
    private async Task WatchVmAsync(SandboxVm vm)
    {
        VmExit exit;
        try
        {
            exit = await vm.Hypervisor.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _log($"sandbox {vm.SandboxId}: watching its VM failed: {e.Message}");
            return;
        }
        if (exit.StoppedByHost || _shuttingDown)
            return;
        // The host's OOM killer ended QEMU for the sandbox cgroup's limit: each container is reported OOM-killed
        // (/tasks/oom, CRI reason OOMKilled), not just killed, so the kubelet says why.
        ulong hostOomKills = vm.HostCgroup?.OomKills() ?? 0;
        _vmLostToHostOom = hostOomKills > 0;
        string cause = _vmLostToHostOom
            ? $"the host's OOM killer ended it: {hostOomKills} kill(s) in its host cgroup {vm.HostCgroup!.Path}, whose memory limit the VM reached; " +
              "every container of the sandbox is reported OOM-killed (exit status 137)"
            : $"every process of the sandbox is reported as killed (exit status {KilledBySigkill})";
        _log($"sandbox {vm.SandboxId}: its VM exited unexpectedly (QEMU exit code {exit.ExitCode}); {cause}. " +
             $"Guest console: {vm.Hypervisor.ConsoleLogPath}\n{exit.Diagnostics}");
        string what = _vmLostToHostOom ? $"the host's OOM killer ended QEMU ({hostOomKills} kill(s) in {vm.HostCgroup!.Path})" : exit.Diagnostics;
        SandboxEventLog.Append(vm.State.Path, new SandboxEvent
        {
            Time = exit.ExitedAt,
            Kind = SandboxEvent.VmExit,
            ExitStatus = exit.ExitCode,
            Message = what,
        });
        vm.RecordEnd($"its VM exited unexpectedly (QEMU exit code {exit.ExitCode}): {what.Split('\n', 2)[0]}", failed: true);
        _vmLost.TrySetResult(exit);
        _vmGone.Cancel();
        try
        {
            await vm.Hypervisor.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await LeftoverVmProcessesOf(vm).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _log($"sandbox {vm.SandboxId}: cleaning up after its VM failed: {e.Message}");
        }
    }

    /// <summary>
    /// A guest that stops answering (a frozen vCPU, a wedged kernel, an agent stuck) left every call on the pod to time
    /// out and `ctr task rm -f` waiting forever for an exit that never came (issue 15's soak, QMP `stop`). As Kata's
    /// agent check does, the shim calls Health every quarter of agent.liveness_timeout; once no call has succeeded for
    /// that long, it gives the VM up: QEMU is killed and the sandbox ends like a VM that died (every process exits 137,
    /// the cause in the log and the VM's exit).
    /// </summary>
    private async Task WatchAgentLivenessAsync(SandboxVm vm)
    {
        var timeout = _configuration.Agent.LivenessTimeout;
        if (timeout <= TimeSpan.Zero)
            return;
        var interval = timeout / 4;
        long lastAnswer = Stopwatch.GetTimestamp();
        string lastError = "";
        while (!_shuttingDown)
        {
            try
            {
                await Task.Delay(interval, _vmGone.Token).ConfigureAwait(false);
                await vm.Agent.Client.HealthAsync(new HealthRequest(), deadline: DateTime.UtcNow + interval, cancellationToken: _vmGone.Token)
                    .ConfigureAwait(false);
                lastAnswer = Stopwatch.GetTimestamp();
            }
            catch (OperationCanceledException)
            {
                return; // the VM is gone or going
            }
            catch (RpcException e) when (!_vmGone.IsCancellationRequested)
            {
                lastError = e.Status.Detail.Length > 0 ? e.Status.Detail : e.StatusCode.ToString();
            }
            catch (RpcException)
            {
                return;
            }
            var silent = Stopwatch.GetElapsedTime(lastAnswer);
            if (silent >= timeout && !_shuttingDown)
            {
                vm.Hypervisor.Abandon($"the agent of sandbox {vm.SandboxId} answered no Health check for {silent.TotalSeconds:0} s " +
                    $"(agent.liveness_timeout = {timeout.TotalSeconds:0.###} s in {_configuration.Source}; last error: {lastError}): " +
                    "the guest is taken for hung (a frozen or overloaded vCPU, a wedged kernel)");
                return;
            }
        }
    }

    private static async Task LeftoverVmProcessesOf(SandboxVm vm)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await Sandbox.Hypervisors.Processes.LeftoverVmProcesses.KillAsync(vm.State.Path, timeout.Token).ConfigureAwait(false);
    }

    private SandboxVm RequireLiveVm(string what)
    {
        var vm = _vm ?? throw new SandboxBackendException(TtrpcStatusCode.FailedPrecondition, $"{what}: the sandbox VM is not running");
        if (_vmLost.Task.IsCompleted)
        {
            throw new SandboxBackendException(TtrpcStatusCode.FailedPrecondition,
                $"{what}: the VM of sandbox {vm.SandboxId} has exited (QEMU exit code {_vmLost.Task.Result.ExitCode}); " +
                $"see its console log {vm.Hypervisor.ConsoleLogPath}");
        }
        return vm;
    }

    // ---------------------------------------------------------------------------------------------------------
    // Exits

    /// <summary>
    /// The exit of one process: the agent's WaitProcess, then every byte of its output delivered (bounded by
    /// <see cref="OutputDrainLimit"/>). Exit status 137 when the VM is lost.
    /// </summary>
    private async Task<ProcessExit> CollectExitAsync(SandboxVm vm, VmProcess process)
    {
        ProcessExit exit;
        try
        {
            exit = await WaitInGuestAsync(vm, process).ConfigureAwait(false);
        }
        catch (Exception) when (_vmLost.Task.IsCompleted)
        {
            process.Stdio.Dispose(); // closes containerd's FIFOs: the client sees end of file
            return new ProcessExit(KilledBySigkill, _vmLost.Task.Result.ExitedAt.UtcDateTime, OomKilled: _vmLostToHostOom && process.ExecId.Length == 0);
        }
        try
        {
            await process.Stdio.OutputCompleted.WaitAsync(OutputDrainLimit).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _log($"{process.Describe()}: output still open {OutputDrainLimit.TotalSeconds} s after the process exited " +
                 "(a background process keeps it); reporting the exit anyway");
        }
        return exit;
    }

    private async Task<ProcessExit> WaitInGuestAsync(SandboxVm vm, VmProcess process)
    {
        var request = new WaitProcessRequest { ContainerId = process.ContainerId, ExecId = process.ExecId };
        int reconnects = 0;
        while (true)
        {
            try
            {
                var response = await vm.Agent.Client.WaitProcessAsync(request, deadline: DateTime.UtcNow + WaitCallSlice,
                    cancellationToken: _vmGone.Token).ConfigureAwait(false);
                var exitedAt = response.ExitedAtUnixNanos > 0 ? DateTime.UnixEpoch.AddTicks(response.ExitedAtUnixNanos / 100) : DateTime.UtcNow;
                return new ProcessExit((uint)response.ExitStatus, exitedAt, response.OomKilled);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.DeadlineExceeded && !_vmGone.IsCancellationRequested)
            {
                // still running: ask again
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Unknown
                                         && !_vmGone.IsCancellationRequested && ++reconnects <= WaitReconnectAttempts)
            {
                // the connection to the agent broke: if the VM died, the watcher cancels _vmGone meanwhile
                _log($"{process.Describe()}: waiting for its exit: the agent connection failed ({e.Status.Detail}); retrying");
                await Task.Delay(TimeSpan.FromSeconds(1), _vmGone.Token).ConfigureAwait(false);
            }
            catch (RpcException e) when (!_vmGone.IsCancellationRequested)
            {
                throw AgentCallFailure.Describe(e, $"wait for {process.Describe()}", vm, _configuration);
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------

    private async Task<T> CallAsync<T>(SandboxVm vm, string what, Func<AgentClient, Task<T>> call)
    {
        try
        {
            return await call(vm.Agent.Client).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            throw AgentCallFailure.Describe(e, what, vm, _configuration);
        }
    }

    private static string Milliseconds(long startTimestamp, long? endTimestamp = null) =>
        $"{Stopwatch.GetElapsedTime(startTimestamp, endTimestamp ?? Stopwatch.GetTimestamp()).TotalMilliseconds:0} ms";

    private static uint QemuPid(SandboxVm vm) => (uint)(vm.Hypervisor.Pid ?? 0);

    private void TryRemoveFromShare(string containerDirectory, string containerId)
    {
        try
        {
            RootfsShare.Remove(containerDirectory);
        }
        catch (IOException e)
        {
            _log($"container {containerId}: {e.Message}");
        }
    }

    private static async Task<string> ReadBundleSpecAsync(string bundle, string owner, CancellationToken cancellationToken)
    {
        string path = Path.Combine(bundle, "config.json");
        try
        {
            return await File.ReadAllTextAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument, $"{owner}: cannot read {path}: {e.Message}");
        }
    }

    /// <summary>
    /// The sandbox (group) id, and the VM's hostname: the OCI spec's (CRI gives the pod's to its pause container), else
    /// the sandbox id, as Docker names a container's host after its id (sethostname takes at most 64 bytes).
    /// </summary>
    private static (string SandboxId, string Hostname) SandboxOf(string specJson, string containerId, string owner)
    {
        try
        {
            string sandboxId = BundleConfig.GroupIdOf(specJson, containerId);
            using var document = JsonDocument.Parse(specJson);
            string? hostname = document.RootElement.ValueKind == JsonValueKind.Object
                               && document.RootElement.TryGetProperty("hostname", out var value)
                               && value.ValueKind == JsonValueKind.String
                ? value.GetString()
                : null;
            if (string.IsNullOrEmpty(hostname))
                hostname = sandboxId.Length <= 64 ? sandboxId : sandboxId[..64];
            return (sandboxId, hostname);
        }
        catch (JsonException e)
        {
            throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument, $"{owner}: config.json is not valid JSON: {e.Message}");
        }
        catch (FormatException e)
        {
            throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument, $"{owner}: config.json: {e.Message}");
        }
    }

    /// <summary>The container's rootfs on the host: the spec's root.path (<c>&lt;bundle&gt;/rootfs</c>, where the task
    /// service mounted the snapshot, or the directory of `ctr run --rootfs`).</summary>
    private static string RootfsOf(string specJson, string bundle, string owner)
    {
        try
        {
            string rootfs = BundleConfig.RootfsOf(specJson, bundle);
            return Directory.Exists(rootfs)
                ? rootfs
                : throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument, $"{owner}: its rootfs {rootfs} (root.path of config.json) is not a directory");
        }
        catch (FormatException e)
        {
            throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument, $"{owner}: config.json: {e.Message}");
        }
    }

    private VmContainer Find(string containerId) =>
        _containers.TryGetValue(containerId, out var container)
            ? container
            : throw new SandboxBackendException(TtrpcStatusCode.NotFound, $"container {containerId} is not known to the VM backend");

    private VmProcess FindProcess(string containerId, string execId)
    {
        var container = Find(containerId);
        if (execId.Length == 0)
            return container.Init;
        return container.Execs.TryGetValue(execId, out var process)
            ? process
            : throw new SandboxBackendException(TtrpcStatusCode.NotFound, $"exec {execId} of container {containerId} is not known to the VM backend");
    }

    private sealed class VmContainer(string id, string shareDirectory, VmProcess init)
    {
        public string Id { get; } = id;

        /// <summary>&lt;state&gt;/shared/&lt;id&gt;: holds the rootfs bind and the bind mounts' binds (mounts/&lt;n&gt;).</summary>
        public string ShareDirectory { get; } = shareDirectory;

        public VmProcess Init { get; } = init;

        public ConcurrentDictionary<string, VmProcess> Execs { get; } = new(StringComparer.Ordinal);

        public IEnumerable<VmProcess> AllProcesses() => Execs.Values.Prepend(Init);

        /// <summary>Its CPU and memory limits: from its config.json, then as Task Update changed them.</summary>
        public ContainerLimits Limits { get; set; } = ContainerLimits.None;
    }

    private sealed class VmProcess(string containerId, string execId, GuestStdioBridge stdio)
    {
        public string ContainerId { get; } = containerId;

        public string ExecId { get; } = execId;

        public GuestStdioBridge Stdio { get; } = stdio;

        /// <summary>Collected from the moment the process exists in the guest; set before the process is published.</summary>
        public Task<ProcessExit> Exit { get; set; } = null!;

        public string Describe() => ExecId.Length == 0 ? $"container {ContainerId}" : $"exec {ExecId} of container {ContainerId}";
    }
}
