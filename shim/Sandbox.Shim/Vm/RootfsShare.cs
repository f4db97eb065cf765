using Sandbox.Native;
using Sandbox.Runtime.Sandboxes;
using Sandbox.Shim.Backend;
using Sandbox.Shim.Rootfs;
using Sandbox.Ttrpc;
using static Tmds.Linux.LibC;

namespace Sandbox.Shim.Vm;

/// <summary>
/// Exposes a container's root filesystem to its sandbox VM: <c>&lt;bundle&gt;/rootfs</c> (mounted by the task service)
/// is bind-mounted (MS_BIND | MS_REC) at <c>&lt;state&gt;/shared/&lt;container id&gt;/rootfs</c>. QEMU's 9p export of the
/// shared directory resolves paths in the host's mount namespace, so the guest sees the bind at once, although it
/// mounted the share before the bind existed.
/// </summary>
internal static class RootfsShare
{
    /// <summary>The container's directory in the share (what <see cref="Remove"/> deletes).</summary>
    public static string ContainerDirectory(string sharedDirectory, string containerId) => Path.Combine(sharedDirectory, containerId);

    /// <summary>The bind's mount point: <c>&lt;container directory&gt;/rootfs</c>.</summary>
    public static string RootfsPath(string containerDirectory) => Path.Combine(containerDirectory, "rootfs");

    public static void Bind(string rootfs, string containerDirectory, string owner)
    {
        string target = RootfsPath(containerDirectory);
        Directory.CreateDirectory(target);
        if (LibCStrings.mount(rootfs, target, null, MS_BIND | MS_REC, null) != 0)
        {
            int errno = Errno.Last;
            TryDeleteDirectory(containerDirectory);
            throw new SandboxBackendException(TtrpcStatusCode.Unknown,
                $"{owner}: cannot bind-mount its rootfs {rootfs} into the sandbox share at {target}: {Errno.Describe(errno)}");
        }
    }

    /// <summary>
    /// Detaches the container's binds (its volumes' <see cref="ContainerMountShare"/> binds, then the rootfs bind;
    /// MNT_DETACH, every mount stacked there) and removes the container's directory from the share.
    /// Idempotent. Refuses to delete while anything is still mounted below the directory, so that a rootfs or a volume
    /// is never deleted through a mount.
    /// </summary>
    public static void Remove(string containerDirectory)
    {
        ContainerMountShare.Unshare(containerDirectory);
        MountTable.DetachAll(RootfsPath(containerDirectory));
        if (!Directory.Exists(containerDirectory))
            return;
        var stillMounted = MountTable.MountPointsBelow(containerDirectory);
        if (stillMounted.Count > 0)
            throw new IOException($"cannot remove {containerDirectory} from the sandbox share: still mounted below it: {string.Join(", ", stillMounted)}");
        Directory.Delete(containerDirectory, recursive: true);
    }

    private static void TryDeleteDirectory(string path)
    {
        try
        {
            if (MountTable.MountPointsBelow(path).Count == 0)
                Directory.Delete(path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
