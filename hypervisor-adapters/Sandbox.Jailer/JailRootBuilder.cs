using Sandbox.Hypervisors.Jail;
using Sandbox.Native;
using static Sandbox.Native.LibCSupplement;
using static Tmds.Linux.LibC;

namespace Sandbox.Jailer;

/// <summary>
/// Gives this thread (and so the program it execs) its own mount namespace whose root is a new, read-only tmpfs that
/// holds only the jail's mounts and symlinks, each at its host path; the host's root is unmounted from it. Mounts stay
/// slaves of the host's, so nothing done here reaches the host, while binds the shim makes later in the pod's share do
/// reach the jail.
/// </summary>
internal static unsafe class JailRootBuilder
{
    public static void Enter(JailOptions options)
    {
        string root = options.RootDirectory;
        if (unshare(CLONE_NEWNS) != 0)
            throw new JailException($"cannot make a mount namespace: {Errno.DescribeLast()} (the jailer needs CAP_SYS_ADMIN)");
        Mount(null, "/", null, MS_REC | MS_SLAVE, null, "make the host's mounts slaves");
        if (!Directory.Exists(root))
            throw new JailException($"the jail root {root} does not exist");
        Mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=1m", "mount the jail's tmpfs root");

        foreach (var mount in options.Mounts.OrderBy(m => m.Path.Length))
            Bind(root, mount);
        if (options.ProcSelf)
        {
            // exec keeps the pid, so this process's /proc entry is the program's
            string self = $"/proc/{Environment.ProcessId}";
            string target = root + "/proc/self";
            Directory.CreateDirectory(target);
            Mount(self, target, null, MS_BIND, null, $"bind {self}");
            Mount(null, target, null, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, null, $"restrict the bind of {self}");
        }
        foreach (var link in options.Symlinks)
        {
            string path = root + link.Path;
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.CreateSymbolicLink(path, link.Target);
        }

        if (LibCSupplement.chdir(root) != 0)
            throw new JailException($"cannot enter {root}: {Errno.DescribeLast()}");
        // pivot_root(".", ".") stacks the old root on the new one; unmounting "." then removes the old root.
        byte* dot = stackalloc byte[] { (byte)'.', 0 };
        if ((long)syscall(SYS_pivot_root, dot, dot) != 0)
            throw new JailException($"cannot pivot_root into {root}: {Errno.DescribeLast()}");
        if (LibCStrings.umount2(".", MNT_DETACH) != 0)
            throw new JailException($"cannot unmount the host's root from the jail: {Errno.DescribeLast()}");
        LibCSupplement.chdir("/");
        Mount(null, "/", null, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, null, "make the jail's root read-only");
    }

    private static void Bind(string root, JailMount mount)
    {
        string source = mount.Path;
        string target = root + source;
        bool directory = Directory.Exists(source);
        if (!directory && !File.Exists(source))
            throw new JailException($"{source} does not exist, so it cannot be put into the jail");
        if (directory)
            Directory.CreateDirectory(target);
        else if (!File.Exists(target) && !Directory.Exists(target))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.WriteAllBytes(target, []);
        }
        ulong recursive = mount.Kind == JailMountKind.Share ? MS_REC : 0;
        Mount(source, target, null, MS_BIND | recursive, null, $"bind {source}");
        ulong flags = mount.Kind switch
        {
            JailMountKind.ReadWrite or JailMountKind.Share => MS_NOSUID | MS_NODEV | MS_NOEXEC,
            JailMountKind.ReadOnlyData => MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            JailMountKind.ReadOnlyExecutable => MS_RDONLY | MS_NOSUID | MS_NODEV,
            JailMountKind.Device => MS_NOSUID | MS_NOEXEC,
            _ => throw new JailException($"unknown mount kind {mount.Kind}"),
        };
        Mount(null, target, null, MS_BIND | MS_REMOUNT | flags, null, $"restrict the bind of {source}");
        if (mount.Kind == JailMountKind.Share)
            Mount(null, target, null, MS_REC | MS_SLAVE, null, $"make the share {source} a slave of the host's");
    }

    private static void Mount(string? source, string target, string? type, ulong flags, string? data, string what)
    {
        if (LibCStrings.mount(source, target, type, flags, data) != 0)
            throw new JailException($"cannot {what} ({target}): {Errno.DescribeLast()}");
    }
}
