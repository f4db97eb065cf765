using Containerd.Types;
using Sandbox.Native;
using Sandbox.Runtime.Sandboxes;
using static Tmds.Linux.LibC;

namespace Sandbox.Shim.Rootfs;

/// <summary>
/// mount(2) for the rootfs shapes containerd's snapshotters produce: <c>overlay</c> (options become mount data,
/// except flags such as ro/nosuid) and <c>bind</c> (MS_BIND, with rbind → MS_REC, and a read-only remount for ro).
/// </summary>
public sealed class LinuxRootfsMounter : IRootfsMounter
{
    private static readonly Dictionary<string, ulong> FlagOptions = new(StringComparer.Ordinal)
    {
        ["ro"] = MS_RDONLY,
        ["rw"] = 0,
        ["nosuid"] = MS_NOSUID,
        ["nodev"] = MS_NODEV,
        ["noexec"] = MS_NOEXEC,
        ["sync"] = MS_SYNCHRONOUS,
        ["dirsync"] = MS_DIRSYNC,
        ["noatime"] = MS_NOATIME,
        ["nodiratime"] = MS_NODIRATIME,
        ["relatime"] = MS_RELATIME,
        ["strictatime"] = MS_STRICTATIME,
        ["bind"] = MS_BIND,
        ["rbind"] = MS_BIND | MS_REC,
    };

    public void Mount(IReadOnlyList<Mount> mounts, string target)
    {
        int done = 0;
        try
        {
            foreach (var mount in mounts)
            {
                MountOne(mount, target);
                done++;
            }
        }
        catch
        {
            for (int i = 0; i < done; i++)
                LibCStrings.umount2(target, MNT_DETACH);
            throw;
        }
    }

    public void Unmount(string target) => MountTable.DetachAll(target);

    /// <summary>Splits mount options into mount(2) flags and the data string.</summary>
    public static (ulong Flags, string Data) ParseOptions(IEnumerable<string> options)
    {
        ulong flags = 0;
        var data = new List<string>();
        foreach (var option in options)
        {
            if (FlagOptions.TryGetValue(option, out ulong flag))
                flags |= flag;
            else
                data.Add(option);
        }
        return (flags, string.Join(',', data));
    }

    private static void MountOne(Mount mount, string target)
    {
        var (flags, data) = ParseOptions(mount.Options);
        bool isBind = mount.Type == "bind" || (flags & MS_BIND) != 0;
        if (isBind)
        {
            ulong bindFlags = MS_BIND | (flags & MS_REC);
            Call(mount.Source, target, null, bindFlags, null, mount);
            ulong remaining = flags & ~(MS_BIND | MS_REC);
            if (remaining != 0)
                Call("", target, null, MS_REMOUNT | MS_BIND | remaining, null, mount);
            return;
        }
        if (mount.Type != "overlay")
        {
            throw new RootfsMountException(
                $"unsupported rootfs mount type '{mount.Type}' (source '{mount.Source}'): the sandbox shim mounts overlay and bind " +
                "rootfs only; check the containerd snapshotter (overlayfs or native)");
        }
        Call(mount.Source.Length > 0 ? mount.Source : "overlay", target, "overlay", flags, data.Length > 0 ? data : null, mount);
    }

    private static void Call(string source, string target, string? type, ulong flags, string? data, Mount mount)
    {
        if (LibCStrings.mount(source, target, type, flags, data) != 0)
        {
            int errno = Errno.Last;
            throw new RootfsMountException(
                $"mounting the rootfs ({mount.Type} from '{mount.Source}', options '{string.Join(',', mount.Options)}') at {target} failed: " +
                Errno.Describe(errno));
        }
    }
}
