using Containerd.Types;

namespace Sandbox.Shim.Rootfs;

/// <summary>Mounts a task's rootfs (CreateTaskRequest.rootfs) at &lt;bundle&gt;/rootfs and unmounts it.</summary>
public interface IRootfsMounter
{
    /// <summary>Mounts <paramref name="mounts"/> in order at <paramref name="target"/>; all or nothing.</summary>
    void Mount(IReadOnlyList<Mount> mounts, string target);

    /// <summary>Unmounts everything at <paramref name="target"/>; nothing mounted there is fine.</summary>
    void Unmount(string target);
}

/// <summary>A rootfs that cannot be mounted: unsupported type or a failed mount(2).</summary>
public sealed class RootfsMountException : Exception
{
    public RootfsMountException(string message)
        : base(message)
    {
    }
}
