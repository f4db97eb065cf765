namespace Sandbox.Shim.Backend;

/// <summary>
/// Makes the backend of a shim daemon, and cleans up after a container whose daemon is gone (the `delete`
/// subcommand). Registered by name in <see cref="SandboxBackendCatalog"/>.
/// </summary>
public interface ISandboxBackendFactory
{
    /// <summary>The name SANDBOX_SHIM_BACKEND selects it by, e.g. "runc" or "vm".</summary>
    string Name { get; }

    /// <summary>
    /// True when the daemon must be a child subreaper that reaps every child itself (waitpid(-1), see
    /// Native/ChildProcessReaper): the runc backend, whose container processes runc leaves to the shim. False when the
    /// backend's children are System.Diagnostics.Process instances (the VM backend's QEMU): a waitpid(-1) reaper would
    /// steal their exit statuses.
    /// </summary>
    bool NeedsChildSubreaper { get; }

    /// <summary>
    /// Called by `start` before it launches a daemon: throw (with what to fix) when this backend cannot work here,
    /// so that containerd reports the reason instead of a shim that dies later.
    /// </summary>
    void EnsureUsable(ShimContext context);

    /// <summary>How long the daemon may hold no container and no sandbox before it exits (zero = never); see
    /// <see cref="Daemon.IdleShimWatch"/>.</summary>
    TimeSpan IdleExit(ShimContext context);

    /// <summary>Called once in the daemon, before it serves containerd.</summary>
    ISandboxBackend Create(ShimContext context);

    /// <summary>
    /// `delete` subcommand for <paramref name="containerId"/> when no live daemon serves it any more: stop whatever
    /// is left of it (processes, VM, state directory). Must be idempotent and fast (containerd waits for it), and
    /// act only on that container (and on its sandbox only when nothing else uses it).
    /// </summary>
    Task CleanupAfterDeadShimAsync(ShimContext context, string containerId, CancellationToken cancellationToken);
}

/// <summary>What every shim invocation knows: containerd's flags, the bundle, and the runtime options.</summary>
public sealed record ShimContext(
    string Namespace,
    string ContainerdAddress,
    string ContainerdTtrpcAddress,
    string Bundle,
    string? ConfigPath,
    bool Debug,
    Action<string> Log);
