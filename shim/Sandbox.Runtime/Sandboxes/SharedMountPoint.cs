using Sandbox.Native;
using static Tmds.Linux.LibC;

namespace Sandbox.Runtime.Sandboxes;

/// <summary>
/// Makes a directory a mount point of its own (a bind onto itself) with shared propagation, so that what is mounted
/// below it later also appears in the mount namespaces that hold a slave copy of it (a jailed QEMU's). A directory
/// that already is a mount point is only made shared.
/// </summary>
public static class SharedMountPoint
{
    public static void Make(string directory)
    {
        string path = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(directory));
        if (!MountTable.MountPointsBelow(path).Contains(path) && LibCStrings.mount(path, path, null, MS_BIND | MS_REC, null) != 0)
            throw new IOException($"cannot bind {path} onto itself (the sandbox share must be a mount point): {Errno.DescribeLast()}");
        if (LibCStrings.mount(null, path, null, MS_SHARED, null) != 0)
            throw new IOException($"cannot make {path} a shared mount: {Errno.DescribeLast()}");
    }
}
