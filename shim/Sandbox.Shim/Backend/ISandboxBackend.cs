using Containerd.Types;
using Google.Protobuf.WellKnownTypes;

namespace Sandbox.Shim.Backend;

/// <summary>
/// What actually runs containers for the shim's task service. The task service (<see cref="Tasks.TaskService"/>)
/// owns everything containerd-facing: ids, the state machine per container and exec, Wait, exit info, events,
/// rootfs mounting. A backend only runs processes. Implementations: HostRuncBackend (tests/Sandbox.RuncYardstick: runc on the
/// host, the development yardstick) and the VM backend (Sandbox.Runtime), which is the product.
///
/// Contract:
/// - Calls for one process arrive in lifecycle order: CreateContainer, [Start], Wait..., Kill..., DeleteContainer;
///   for an exec: StartExec, Wait..., Kill..., DeleteExec. The task service never calls Start twice or Delete while
///   the process runs.
/// - <see cref="WaitAsync"/> is called once per process: for init right after CreateContainer returns (the init
///   process exists from then on, e.g. killed before start), for an exec right after StartExec returns. It must
///   return the exit even when the process exited before the call, and only once every byte of the process's output
///   has been delivered to its stdout/stderr paths.
/// - Throw <see cref="SandboxBackendException"/> to choose the status containerd sees (NotFound, InvalidArgument,
///   FailedPrecondition, Unimplemented...); any other exception is reported as Unknown with its message, so make
///   messages say what failed for which container and what to check.
/// - Methods may be called concurrently for different containers and processes.
/// </summary>
public interface ISandboxBackend
{
    /// <summary>Creates the container and its init process, not started. Returns the init pid (0 if none on the host).</summary>
    Task<uint> CreateContainerAsync(ContainerCreateRequest request, CancellationToken cancellationToken);

    /// <summary>Starts the init process created by <see cref="CreateContainerAsync"/>. Returns its pid.</summary>
    Task<uint> StartContainerAsync(string containerId, CancellationToken cancellationToken);

    /// <summary>Starts an additional process in a running container. Returns its pid.</summary>
    Task<uint> StartExecAsync(ExecStartRequest request, CancellationToken cancellationToken);

    /// <summary>Waits until the process exits and its output is delivered. <paramref name="execId"/> "" = init.</summary>
    Task<ProcessExit> WaitAsync(string containerId, string execId, CancellationToken cancellationToken);

    /// <summary>Sends <paramref name="signal"/> to the process; with <paramref name="all"/>, to every process of the container.</summary>
    Task KillAsync(string containerId, string execId, uint signal, bool all, CancellationToken cancellationToken);

    Task PauseAsync(string containerId, CancellationToken cancellationToken);

    Task ResumeAsync(string containerId, CancellationToken cancellationToken);

    /// <summary>Applies new limits to a created or running container's cgroup (Task Update). Only the fields
    /// <paramref name="resources"/> sets change. Refuse what the backend cannot give (for a VM: more than its size).</summary>
    Task UpdateAsync(string containerId, ContainerResources resources, CancellationToken cancellationToken);

    /// <summary>The container's resource figures for Task Stats: a containerd metrics message (its type URL says
    /// which: cgroups v1 or v2) packed as Any.</summary>
    Task<Google.Protobuf.WellKnownTypes.Any> StatsAsync(string containerId, CancellationToken cancellationToken);

    /// <summary>Pids of every process in the container (as seen on the host, or guest pids for a VM).</summary>
    Task<IReadOnlyList<uint>> ListPidsAsync(string containerId, CancellationToken cancellationToken);

    Task ResizePtyAsync(string containerId, string execId, uint width, uint height, CancellationToken cancellationToken);

    /// <summary>containerd's CloseIO: the process's stdin reaches end of file after what was written so far.</summary>
    Task CloseStdinAsync(string containerId, string execId, CancellationToken cancellationToken);

    /// <summary>Releases an exited (or never started) exec.</summary>
    Task DeleteExecAsync(string containerId, string execId, CancellationToken cancellationToken);

    /// <summary>Removes a container whose init exited (or was never started; kill it then).</summary>
    Task DeleteContainerAsync(string containerId, CancellationToken cancellationToken);

    /// <summary>
    /// The shim is exiting: containerd's Shutdown with no container left, or SIGTERM (containers may remain: kill and
    /// remove them). Release everything (stop the VM).
    /// </summary>
    Task ShutdownAsync(CancellationToken cancellationToken);
}

/// <summary>containerd's stdio for a process: FIFO paths (or file:// URIs), "" = no stream.</summary>
public sealed record ProcessStdio(string Stdin, string Stdout, string Stderr, bool Terminal);

/// <summary>
/// A container to create. Its rootfs is the bundle's config.json root.path, as runc reads it: the task service has
/// already mounted containerd's rootfs mounts at <c>&lt;bundle&gt;/rootfs</c>; with none (`ctr run --rootfs DIR`)
/// root.path names a directory of its own.
/// </summary>
public sealed record ContainerCreateRequest(
    string ContainerId,
    string Bundle,
    ProcessStdio Stdio,
    Any? Options);

/// <summary>An exec to start. <see cref="ProcessSpecJson"/> is the OCI <c>process</c> object, as JSON text.</summary>
public sealed record ExecStartRequest(string ContainerId, string ExecId, string ProcessSpecJson, ProcessStdio Stdio);

/// <summary>How a process ended: the exit code, or 128 + signal.</summary>
/// <summary>How a process ended. <paramref name="OomKilled"/>: the kernel killed a process of the container for its memory
/// limit (init processes only), which containerd hears as /tasks/oom before /tasks/exit.</summary>
public readonly record struct ProcessExit(uint ExitStatus, DateTime ExitedAt, bool OomKilled = false);
