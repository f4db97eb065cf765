using System.Collections.Concurrent;
using Containerd.Types;
using Sandbox.Shim.Backend;
using Sandbox.Shim.Events;
using Sandbox.Shim.Rootfs;
using Sandbox.Ttrpc;

namespace Sandbox.Shim.Tests;

/// <summary>A backend whose processes exit when the test says so.</summary>
internal sealed class FakeBackend : ISandboxBackend
{
    private readonly ConcurrentDictionary<(string, string), TaskCompletionSource<ProcessExit>> _exits = new();
    private int _nextPid = 1000;

    public List<string> Calls { get; } = new();

    /// <summary>Runs inside StartContainerAsync, before it returns.</summary>
    public Func<Task>? DuringStart { get; set; }

    public Exception? CreateFailure { get; set; }

    /// <summary>Runs inside CreateContainerAsync, before it returns (a VM that is still booting).</summary>
    public Func<Task>? DuringCreate { get; set; }

    /// <summary>SIGKILL/SIGTERM make the process exit 128+signal, as a real one would.</summary>
    public bool SignalsTerminate { get; set; } = true;

    public bool ShutdownCalled { get; private set; }

    public void Exit(string containerId, string execId, uint status, bool oomKilled = false) =>
        ExitOf(containerId, execId).TrySetResult(new ProcessExit(status, DateTime.UtcNow, oomKilled));

    public void FailWait(string containerId, string execId) =>
        ExitOf(containerId, execId).TrySetException(new IOException("agent connection lost"));

    public async Task<uint> CreateContainerAsync(ContainerCreateRequest request, CancellationToken cancellationToken)
    {
        Record($"create {request.ContainerId}");
        if (DuringCreate is not null)
            await DuringCreate();
        if (CreateFailure is not null)
            throw CreateFailure;
        ExitOf(request.ContainerId, "");
        return (uint)Interlocked.Increment(ref _nextPid);
    }

    public async Task<uint> StartContainerAsync(string containerId, CancellationToken cancellationToken)
    {
        Record($"start {containerId}");
        if (DuringStart is not null)
            await DuringStart();
        return 4242;
    }

    public Task<uint> StartExecAsync(ExecStartRequest request, CancellationToken cancellationToken)
    {
        Record($"exec {request.ContainerId}/{request.ExecId}");
        ExitOf(request.ContainerId, request.ExecId);
        return Task.FromResult((uint)Interlocked.Increment(ref _nextPid));
    }

    public Task<ProcessExit> WaitAsync(string containerId, string execId, CancellationToken cancellationToken) =>
        ExitOf(containerId, execId).Task.WaitAsync(cancellationToken);

    public Task KillAsync(string containerId, string execId, uint signal, bool all, CancellationToken cancellationToken)
    {
        Record($"kill {containerId}/{execId} {signal}{(all ? " all" : "")}");
        if (SignalsTerminate && signal is 9 or 15)
            Exit(containerId, execId, 128 + signal);
        return Task.CompletedTask;
    }

    public Task PauseAsync(string containerId, CancellationToken cancellationToken)
    {
        Record($"pause {containerId}");
        return Task.CompletedTask;
    }

    public Task ResumeAsync(string containerId, CancellationToken cancellationToken)
    {
        Record($"resume {containerId}");
        return Task.CompletedTask;
    }

    public Task UpdateAsync(string containerId, ContainerResources resources, CancellationToken cancellationToken)
    {
        Record($"update {containerId} {resources.Json}");
        return Task.CompletedTask;
    }

    public Task<Google.Protobuf.WellKnownTypes.Any> StatsAsync(string containerId, CancellationToken cancellationToken) =>
        Task.FromResult(new Google.Protobuf.WellKnownTypes.Any { TypeUrl = "fake.Metrics" });

    public Task<IReadOnlyList<uint>> ListPidsAsync(string containerId, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<uint>>(new uint[] { 4242 });

    public Task ResizePtyAsync(string containerId, string execId, uint width, uint height, CancellationToken cancellationToken)
    {
        Record($"resize {containerId}/{execId} {width}x{height}");
        return Task.CompletedTask;
    }

    public Task CloseStdinAsync(string containerId, string execId, CancellationToken cancellationToken)
    {
        Record($"closestdin {containerId}/{execId}");
        return Task.CompletedTask;
    }

    public Task DeleteExecAsync(string containerId, string execId, CancellationToken cancellationToken)
    {
        Record($"delete {containerId}/{execId}");
        return Task.CompletedTask;
    }

    public Task DeleteContainerAsync(string containerId, CancellationToken cancellationToken)
    {
        Record($"delete {containerId}");
        return Task.CompletedTask;
    }

    public Task ShutdownAsync(CancellationToken cancellationToken)
    {
        ShutdownCalled = true;
        return Task.CompletedTask;
    }

    private TaskCompletionSource<ProcessExit> ExitOf(string containerId, string execId) =>
        _exits.GetOrAdd((containerId, execId), _ => new TaskCompletionSource<ProcessExit>(TaskCreationOptions.RunContinuationsAsynchronously));

    private void Record(string call)
    {
        lock (Calls)
            Calls.Add(call);
    }
}

internal sealed class RecordingPublisher : IEventPublisher
{
    private readonly List<ContainerdEvent> _events = new();

    public IReadOnlyList<ContainerdEvent> Events
    {
        get { lock (_events) return _events.ToArray(); }
    }

    public IReadOnlyList<string> Topics => Events.Select(e => e.Topic).ToArray();

    public void Publish(ContainerdEvent containerdEvent)
    {
        lock (_events)
            _events.Add(containerdEvent);
    }

    public Task FlushAsync(TimeSpan timeout) => Task.CompletedTask;
}

internal sealed class FakeRootfsMounter : IRootfsMounter
{
    public List<string> Mounted { get; } = new();

    public void Mount(IReadOnlyList<Mount> mounts, string target)
    {
        if (mounts.Any(m => m.Type == "zfs"))
            throw new RootfsMountException("unsupported rootfs mount type 'zfs'");
        Mounted.Add(target);
    }

    public void Unmount(string target) => Mounted.Remove(target);
}
