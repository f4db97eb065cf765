namespace Sandbox.Agent.Containers;

public enum ContainerState { Created, Running, Paused, Stopped }

/// <summary>A container in the guest: its bundle, init process, exec processes and its role in a pod.</summary>
public sealed class Container(string id, string bundleDirectory, ContainerProcess init, PodMembership pod)
{
    private readonly Dictionary<string, ContainerProcess> _execs = new(StringComparer.Ordinal);
    private ContainerState _state = ContainerState.Created;

    public string Id => id;
    public string BundleDirectory => bundleDirectory;
    public ContainerProcess Init => init;
    public PodMembership Pod => pod;

    /// <summary>Where crun put the container (read when it was created), for stats and OOM kills; null if unknown.</summary>
    public ContainerCgroup? Cgroup { get; init; }

    /// <summary>Serializes the lifecycle operations of this container (start, exec, pause, remove, ...).</summary>
    public SemaphoreSlim Lifecycle { get; } = new(1, 1);

    public ContainerState State
    {
        get
        {
            lock (_execs) return _state != ContainerState.Created && init.HasExited ? ContainerState.Stopped : _state;
        }
        set
        {
            lock (_execs) _state = value;
        }
    }

    public bool TryGetProcess(string execId, out ContainerProcess process)
    {
        if (execId.Length == 0)
        {
            process = init;
            return true;
        }
        lock (_execs) return _execs.TryGetValue(execId, out process!);
    }

    public bool TryReserveExec(string execId, ContainerProcess process)
    {
        lock (_execs) return _execs.TryAdd(execId, process);
    }

    public void RemoveExec(string execId)
    {
        lock (_execs) _execs.Remove(execId);
    }

    public List<ContainerProcess> AllProcesses()
    {
        lock (_execs) return [init, .. _execs.Values];
    }
}
