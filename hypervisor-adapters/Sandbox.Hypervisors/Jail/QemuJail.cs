using Sandbox.Hypervisors.Qemu;

namespace Sandbox.Hypervisors.Jail;

/// <summary>
/// What QEMU and vhost-device-vsock are confined to (the arguments of sandbox-jailer for each). Each sees only:
/// its program and the shared libraries (read-only), the sandbox's state directory (read-write, no exec), the device
/// nodes it opens, and for QEMU the guest kernel and initrd, QEMU's firmware (/usr/share, read-only), the pod's
/// share and its own /proc/self (no other process). Both keep uid 0: QEMU keeps only the capabilities its 9p server
/// needs to serve files of any owner as runc's containers see them (<see cref="ShareCapabilities"/>; none without a
/// share), the daemon none. Pure.
/// </summary>
public static class QemuJail
{
    /// <summary>What to do when sandbox-jailer is missing: said by the planner and by `sandboxctl check`.</summary>
    public const string MissingJailerAdvice = "install it next to the shim (make install) or set [hypervisor.qemu] jailer_path";

    /// <summary>QEMU finds tap number i at descriptor FirstTapDescriptor + i (opened by the jailer).</summary>
    public const int FirstTapDescriptor = 100;

    /// <summary>What the 9p server (security_model=none) needs to do what the guest's root may do to a container's
    /// files: read and write files and directories of any owner (dac_override, dac_read_search), chown them (chown: a
    /// container's `chown` works as under runc), and chmod, utime and set extended attributes on files it does not own
    /// (fowner). Not kept: mknod (a guest cannot make device nodes on the host), fsetid (a write or chown clears the
    /// setuid bit), setfcap (no file capabilities), sys_admin (no trusted.* attributes, no mounts).</summary>
    public static readonly IReadOnlyList<string> ShareCapabilities = ["chown", "dac_override", "dac_read_search", "fowner"];

    /// <summary>Descriptors QEMU may hold: guest files opened through 9p, vhost, tap and memory descriptors.</summary>
    public const ulong QemuOpenFiles = 65536;
    public const ulong VsockDaemonOpenFiles = 4096;

    private static readonly string[] CommonDevices = ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"];

    public static JailOptions ForQemu(QemuLaunchPlan plan, string jailerRootDirectory, JailHostLayout host, IReadOnlyList<string> qemuArguments)
    {
        var spec = plan.Spec;
        var mounts = new List<JailMount> { new(JailMountKind.ReadWrite, spec.Files.Directory) };
        if (spec.SharedDirectory is not null)
            mounts.Add(new(JailMountKind.Share, spec.SharedDirectory));
        mounts.Add(new(JailMountKind.ReadOnlyData, spec.KernelPath));
        mounts.Add(new(JailMountKind.ReadOnlyData, spec.InitrdPath));
        mounts.Add(new(JailMountKind.ReadOnlyData, "/usr/share"));
        mounts.AddRange(Libraries(host, plan.QemuPath));
        mounts.AddRange(CommonDevices.Select(d => new JailMount(JailMountKind.Device, d)));
        if (spec.Acceleration == Acceleration.Kvm)
            mounts.Add(new(JailMountKind.Device, "/dev/kvm"));
        if (spec.VsockMode == VsockMode.Kernel)
            mounts.Add(new(JailMountKind.Device, "/dev/vhost-vsock"));
        return new JailOptions
        {
            RootDirectory = jailerRootDirectory,
            Program = plan.QemuPath,
            Arguments = qemuArguments,
            NetworkNamespacePath = spec.NetworkNamespacePath,
            Mounts = mounts,
            Symlinks = Symlinks(host),
            Taps = spec.NetworkInterfaces.Select((nic, i) => new JailTap(nic.TapName, FirstTapDescriptor + i)).ToArray(),
            KeptCapabilities = spec.SharedDirectory is null ? [] : ShareCapabilities,
            Limits = new Dictionary<string, ulong> { ["core"] = 0, ["nofile"] = QemuOpenFiles, ["msgqueue"] = 0 },
            ProcSelf = true,
            RefuseSetIdModes = spec.SharedDirectory is not null && !spec.ShareAllowsSetId,
        };
    }

    public static JailOptions ForVsockDaemon(QemuLaunchPlan plan, string jailerRootDirectory, JailHostLayout host, IReadOnlyList<string> daemonArguments)
    {
        string daemon = plan.VsockDaemonPath ?? throw new ArgumentException("the plan has no vsock daemon", nameof(plan));
        var mounts = new List<JailMount> { new(JailMountKind.ReadWrite, plan.Spec.Files.Directory) };
        mounts.AddRange(Libraries(host, daemon));
        mounts.AddRange(CommonDevices.Select(d => new JailMount(JailMountKind.Device, d)));
        return new JailOptions
        {
            RootDirectory = jailerRootDirectory,
            Program = daemon,
            Arguments = daemonArguments,
            Mounts = mounts,
            Symlinks = Symlinks(host),
            Limits = new Dictionary<string, ulong> { ["core"] = 0, ["nofile"] = VsockDaemonOpenFiles, ["msgqueue"] = 0 },
            UnixSocketsOnly = true,
        };
    }

    private static IEnumerable<JailMount> Libraries(JailHostLayout host, string program)
    {
        yield return new(JailMountKind.ReadOnlyExecutable, program);
        foreach (var directory in host.LibraryDirectories)
            yield return new(JailMountKind.ReadOnlyExecutable, directory);
        if (host.LoaderCache is { } cache)
            yield return new(JailMountKind.ReadOnlyData, cache);
    }

    private static IReadOnlyList<JailSymlink> Symlinks(JailHostLayout host) =>
        host.LibrarySymlinks.Select(l => new JailSymlink(l.Key, l.Value)).ToArray();
}
