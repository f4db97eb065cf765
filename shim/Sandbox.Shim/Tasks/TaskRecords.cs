using Containerd.Types;
using Sandbox.Shim.Backend;

namespace Sandbox.Shim.Tasks;

/// <summary>Where a process is in its life, as the task service tracks it.</summary>
internal enum ProcessPhase
{
    /// <summary>Container being created (backend call in progress).</summary>
    Creating,

    /// <summary>Init created, or exec registered, not started.</summary>
    Created,

    /// <summary>Start in progress.</summary>
    Starting,

    Running,
    Paused,
    Stopped,

    /// <summary>Delete in progress.</summary>
    Deleting,
}

/// <summary>One process (a container's init or an exec) and its exit, kept until Delete.</summary>
internal sealed class ProcessRecord
{
    public ProcessRecord(string containerId, string execId, ProcessStdio stdio, string? specJson)
    {
        ContainerId = containerId;
        ExecId = execId;
        Stdio = stdio;
        SpecJson = specJson;
    }

    public string ContainerId { get; }

    /// <summary>"" for the init process.</summary>
    public string ExecId { get; }

    public bool IsInit => ExecId.Length == 0;

    public ProcessStdio Stdio { get; }

    /// <summary>The OCI process JSON of an exec.</summary>
    public string? SpecJson { get; }

    public ProcessPhase Phase { get; set; }

    public uint Pid { get; set; }

    /// <summary>Set when the process has exited.</summary>
    public ProcessExit? Exit { get; set; }

    /// <summary>The exit arrived while Start was still in progress: Start publishes it after its own event.</summary>
    public bool ExitAwaitsStartEvent { get; set; }

    /// <summary>Completes when the exit is recorded and published; Wait callers await it.</summary>
    public TaskCompletionSource Exited { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string Describe() => IsInit ? $"container {ContainerId}" : $"exec {ExecId} of container {ContainerId}";
}

/// <summary>One container: its bundle, rootfs, init process and execs.</summary>
internal sealed class ContainerRecord
{
    public ContainerRecord(string id, string bundle, IReadOnlyList<Mount> rootfs, ProcessRecord init)
    {
        Id = id;
        Bundle = bundle;
        Rootfs = rootfs;
        Init = init;
    }

    public string Id { get; }

    public string Bundle { get; }

    public IReadOnlyList<Mount> Rootfs { get; }

    public string RootfsPath => Path.Combine(Bundle, "rootfs");

    public bool RootfsMounted { get; set; }

    public ProcessRecord Init { get; }

    public Dictionary<string, ProcessRecord> Execs { get; } = new(StringComparer.Ordinal);

    /// <summary>Completes when the Create that made this record has ended, created or failed.</summary>
    public TaskCompletionSource CreateEnded { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
