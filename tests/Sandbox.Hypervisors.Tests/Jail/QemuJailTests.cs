using Sandbox.Hypervisors.Jail;
using Sandbox.Hypervisors.Qemu;

namespace Sandbox.Hypervisors.Tests.Jail;

/// <summary>What QEMU and the vsock daemon are confined to, for each kind of sandbox. Pure.</summary>
public class QemuJailTests
{
    private static readonly JailHostLayout MergedUsr = new(
        new Dictionary<string, string> { ["/lib"] = "usr/lib", ["/lib64"] = "usr/lib64" }, ["/usr/lib", "/usr/lib64"], "/etc/ld.so.cache");

    private static QemuLaunchPlan Plan(bool share, Acceleration acceleration = Acceleration.Tcg, VsockMode vsock = VsockMode.Hybrid,
        bool allowSetId = false, params VmNetworkInterface[] nics) =>
        new(new QemuLaunchSpec
            {
                SandboxId = "pod1",
                Files = new QemuStateFiles("/run/sb/pod1"),
                KernelPath = "/img/vmlinux",
                InitrdPath = "/img/initramfs.cpio",
                KernelParameters = "console=ttyS0",
                Acceleration = acceleration,
                VsockMode = vsock,
                SharedDirectory = share ? "/run/sb/pod1/shared" : null,
                ShareAllowsSetId = allowSetId,
                NetworkInterfaces = nics,
                NetworkNamespacePath = nics.Length > 0 ? "/var/run/netns/cni-1" : null,
                FirstTapDescriptor = QemuJail.FirstTapDescriptor,
            }, "/usr/bin/qemu-system-x86_64", vsock == VsockMode.Hybrid ? "/usr/bin/vhost-device-vsock" : null, false,
            new HypervisorCapabilities("qemu", acceleration, vsock, true, "test"))
        { JailerPath = "/usr/local/bin/sandbox-jailer", JailLayout = MergedUsr };

    [Fact]
    public void Qemu_with_a_share_sees_its_files_keeps_the_9p_capabilities_and_no_setuid()
    {
        var jail = QemuJail.ForQemu(Plan(share: true), "/run/sb/pod1/jail", MergedUsr, ["-name", "x"]);
        Assert.Equal(
        [
            new(JailMountKind.ReadWrite, "/run/sb/pod1"), new(JailMountKind.Share, "/run/sb/pod1/shared"),
            new(JailMountKind.ReadOnlyData, "/img/vmlinux"), new(JailMountKind.ReadOnlyData, "/img/initramfs.cpio"),
            new(JailMountKind.ReadOnlyData, "/usr/share"), new(JailMountKind.ReadOnlyExecutable, "/usr/bin/qemu-system-x86_64"),
            new(JailMountKind.ReadOnlyExecutable, "/usr/lib"), new(JailMountKind.ReadOnlyExecutable, "/usr/lib64"),
            new(JailMountKind.ReadOnlyData, "/etc/ld.so.cache"),
            new(JailMountKind.Device, "/dev/null"), new(JailMountKind.Device, "/dev/zero"), new(JailMountKind.Device, "/dev/urandom"),
            new(JailMountKind.Device, "/dev/random"),
        ], jail.Mounts);
        Assert.Equal(["chown", "dac_override", "dac_read_search", "fowner"], jail.KeptCapabilities);
        Assert.True(jail.RefuseSetIdModes);
        Assert.True(jail.ProcSelf);
        Assert.False(jail.UnixSocketsOnly);
        Assert.Equal(0UL, jail.Limits["core"]);
        Assert.Equal([new JailSymlink("/lib", "usr/lib"), new JailSymlink("/lib64", "usr/lib64")], jail.Symlinks);
    }

    [Fact]
    public void Without_a_share_qemu_keeps_no_capability_and_with_kvm_and_kernel_vsock_gets_their_devices()
    {
        var jail = QemuJail.ForQemu(Plan(share: false, Acceleration.Kvm, VsockMode.Kernel), "/j", MergedUsr, []);
        Assert.Empty(jail.KeptCapabilities);
        Assert.False(jail.RefuseSetIdModes);
        Assert.Contains(new JailMount(JailMountKind.Device, "/dev/kvm"), jail.Mounts);
        Assert.Contains(new JailMount(JailMountKind.Device, "/dev/vhost-vsock"), jail.Mounts);
        Assert.DoesNotContain(jail.Mounts, m => m.Kind == JailMountKind.Share);
    }

    [Fact]
    public void Share_allow_setid_lifts_only_the_mode_rule()
    {
        var jail = QemuJail.ForQemu(Plan(share: true, allowSetId: true), "/j", MergedUsr, []);
        Assert.False(jail.RefuseSetIdModes);
        Assert.Equal(QemuJail.ShareCapabilities, jail.KeptCapabilities);
    }

    [Fact]
    public void A_pod_network_is_entered_by_the_jailer_and_its_taps_passed_as_descriptors()
    {
        var plan = Plan(share: true, nics: [new("tap0_sbx", "0a:58:0a:d5:00:02"), new("tap1_sbx", "0a:58:0a:d5:01:02")]);
        var command = QemuLaunchCommand.Build(plan);
        Assert.Equal("/usr/local/bin/sandbox-jailer", command.Program);
        var jail = JailOptions.Parse(command.Arguments);
        Assert.Equal("/var/run/netns/cni-1", jail.NetworkNamespacePath);
        Assert.Equal([new JailTap("tap0_sbx", 100), new JailTap("tap1_sbx", 101)], jail.Taps);
        Assert.Equal("/usr/bin/qemu-system-x86_64", jail.Program);
        Assert.Contains("tap,id=net0,fd=100", jail.Arguments);
        Assert.Contains("tap,id=net1,fd=101", jail.Arguments);
        Assert.DoesNotContain(jail.Arguments, a => a.Contains("ifname=", StringComparison.Ordinal));
    }

    [Fact]
    public void The_vsock_daemon_sees_its_state_directory_only_and_may_use_unix_sockets_only()
    {
        var command = QemuLaunchCommand.BuildVsockDaemon(Plan(share: true));
        var jail = JailOptions.Parse(command.Arguments);
        Assert.Equal("/usr/bin/vhost-device-vsock", jail.Program);
        Assert.Equal(["--guest-cid", "3", "--socket", "/run/sb/pod1/vhost-vsock.sock", "--uds-path", "/run/sb/pod1/vsock.sock"], jail.Arguments);
        Assert.True(jail.UnixSocketsOnly);
        Assert.Empty(jail.KeptCapabilities);
        Assert.Null(jail.NetworkNamespacePath);
        Assert.DoesNotContain(jail.Mounts, m => m.Kind is JailMountKind.Share || m.Path is "/img/vmlinux" or "/usr/share");
        Assert.Contains(new JailMount(JailMountKind.ReadWrite, "/run/sb/pod1"), jail.Mounts);
    }
}
