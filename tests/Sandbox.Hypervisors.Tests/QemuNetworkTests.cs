using Sandbox.Hypervisors.HostDetection;
using Sandbox.Hypervisors.Qemu;

namespace Sandbox.Hypervisors.Tests;

/// <summary>Network cards and the network namespace: command line, launch command, planning.</summary>
public sealed class QemuNetworkTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly VmNetworkInterface Eth0 = new("tap0_sbx", "0a:58:0a:d5:00:02");
    private static readonly VmNetworkInterface Eth1 = new("tap1_sbx", "0a:58:0a:d5:01:02");

    private static QemuLaunchSpec Spec(MachineType machine, params VmNetworkInterface[] nics) => new()
    {
        SandboxId = "pod1",
        Files = new QemuStateFiles("/run/sb/pod1"),
        KernelPath = "/img/vmlinux",
        InitrdPath = "/img/initramfs.cpio",
        KernelParameters = "console=ttyS0",
        Machine = machine,
        Acceleration = Acceleration.Tcg,
        VsockMode = VsockMode.Hybrid,
        NetworkInterfaces = nics,
    };

    private static List<string> ValuesOf(IReadOnlyList<string> args, string option) =>
        args.Select((a, i) => (a, i)).Where(x => x.a == option).Select(x => args[x.i + 1]).ToList();

    private static QemuLaunchPlan Plan(QemuLaunchSpec spec, string? nsenter = null) =>
        new(spec, "/usr/bin/qemu-system-x86_64", "/usr/bin/vhost-device-vsock", false,
            new HypervisorCapabilities("qemu", Acceleration.Tcg, VsockMode.Hybrid, true, "test")) { NsenterPath = nsenter };

    [Fact]
    public void No_network_card_means_no_netdev()
    {
        var args = QemuCommandLine.Build(Spec(MachineType.Microvm));
        Assert.Empty(ValuesOf(args, "-netdev"));
        Assert.DoesNotContain(ValuesOf(args, "-device"), d => d.StartsWith("virtio-net", StringComparison.Ordinal));
    }

    [Fact]
    public void Microvm_cards_are_virtio_mmio_devices_on_the_taps_in_order()
    {
        var args = QemuCommandLine.Build(Spec(MachineType.Microvm, Eth0, Eth1));
        Assert.Equal(
            ["tap,id=net0,ifname=tap0_sbx,script=no,downscript=no", "tap,id=net1,ifname=tap1_sbx,script=no,downscript=no"],
            ValuesOf(args, "-netdev"));
        Assert.Equal(
            ["virtio-net-device,netdev=net0,mac=0a:58:0a:d5:00:02", "virtio-net-device,netdev=net1,mac=0a:58:0a:d5:01:02"],
            ValuesOf(args, "-device").Where(d => d.StartsWith("virtio-net", StringComparison.Ordinal)));
        // Each -device follows its -netdev, after the vsock device.
        var netdev = args.ToList().IndexOf("-netdev");
        Assert.True(netdev > args.ToList().IndexOf("vhost-user-vsock-device,chardev=vsock"));
    }

    [Fact]
    public void Q35_cards_are_pci_devices_without_an_option_rom()
    {
        var args = QemuCommandLine.Build(Spec(MachineType.Q35, Eth0));
        Assert.Contains("virtio-net-pci,netdev=net0,mac=0a:58:0a:d5:00:02,romfile=", ValuesOf(args, "-device"));
    }

    [Fact]
    public void Commas_in_a_tap_name_are_doubled()
    {
        var args = QemuCommandLine.Build(Spec(MachineType.Microvm, new VmNetworkInterface("a,b", "02:00:00:00:00:01")));
        Assert.Equal(["tap,id=net0,ifname=a,,b,script=no,downscript=no"], ValuesOf(args, "-netdev"));
    }

    [Fact]
    public void Without_a_namespace_qemu_is_executed_directly()
    {
        var spec = Spec(MachineType.Microvm, Eth0);
        var launch = QemuLaunchCommand.Build(Plan(spec));
        Assert.Equal("/usr/bin/qemu-system-x86_64", launch.Program);
        Assert.Equal(QemuCommandLine.Build(spec), launch.Arguments);
    }

    [Fact]
    public void With_a_namespace_nsenter_execs_qemu_inside_it()
    {
        var spec = Spec(MachineType.Microvm, Eth0) with { NetworkNamespacePath = "/var/run/netns/cni-1234" };
        var launch = QemuLaunchCommand.Build(Plan(spec, nsenter: "/usr/bin/nsenter"));
        Assert.Equal("/usr/bin/nsenter", launch.Program);
        Assert.Equal(["--net=/var/run/netns/cni-1234", "--", "/usr/bin/qemu-system-x86_64", .. QemuCommandLine.Build(spec)],
            launch.Arguments);
        var text = CommandLineText.Format(launch.Program, launch.Arguments);
        Assert.StartsWith("/usr/bin/nsenter \\\n  --net=/var/run/netns/cni-1234 \\\n  -- /usr/bin/qemu-system-x86_64 \\\n  -name sandbox-pod1", text);
    }

    [Fact]
    public void A_namespace_without_nsenter_in_the_plan_is_refused()
    {
        var spec = Spec(MachineType.Microvm) with { NetworkNamespacePath = "/var/run/netns/x" };
        Assert.Throws<ArgumentException>(() => QemuLaunchCommand.Build(Plan(spec)));
    }

    // Planning.

    private VmConfig Config() => new()
    {
        SandboxId = "pod1",
        StateDirectory = Path.Combine(_dir.Path, "state"),
        KernelPath = _dir.File("vmlinux", "elf"),
        InitrdPath = _dir.File("initramfs.cpio", "cpio"),
    };

    private static QemuHostFacts Host(string? nsenter = "/usr/bin/nsenter") => new(
        "/usr/bin/qemu-system-x86_64", "found",
        new KvmProbeResult(false, null, null, "no vmx/svm"),
        new VsockProbeResult(VsockMode.Hybrid, "no /dev/vhost-vsock", "/usr/bin/vhost-device-vsock", "hybrid"),
        new TscFrequencyResult(2596140, TscSource.KernelLog, "kernel log")) { NsenterPath = nsenter };

    [Fact]
    public void A_jailed_plan_needs_no_nsenter_and_gives_qemu_its_taps_as_descriptors()
    {
        var netns = _dir.File("netns", "");
        var jailer = _dir.Executable("sandbox-jailer", "#!/bin/sh\n");
        var host = Host(nsenter: null) with { JailLayout = new(new Dictionary<string, string>(), ["/usr/lib"], null) };
        var plan = QemuLaunchPlanner.Plan(Config() with { NetworkNamespacePath = netns, NetworkInterfaces = [Eth0], JailerPath = jailer }, host);
        Assert.Null(plan.NsenterPath);
        Assert.Equal(jailer, plan.JailerPath);
        Assert.Equal(100, plan.Spec.FirstTapDescriptor);
        Assert.Equal(["tap,id=net0,fd=100"], ValuesOf(QemuCommandLine.Build(plan.Spec), "-netdev"));
    }

    [Fact]
    public void A_missing_jailer_stops_the_start_with_what_to_do()
    {
        var e = Assert.Throws<HypervisorException>(() => QemuLaunchPlanner.Plan(Config() with { JailerPath = "/nonexistent/sandbox-jailer" }, Host()));
        Assert.Contains("sandbox-jailer /nonexistent/sandbox-jailer does not exist", e.Message);
        Assert.Contains("confine = false", e.Message);
    }

    [Fact]
    public void Plan_carries_the_namespace_the_cards_and_nsenter()
    {
        var netns = _dir.File("netns", ""); // any existing file stands for the namespace here
        var plan = QemuLaunchPlanner.Plan(Config() with
        {
            NetworkNamespacePath = netns,
            NetworkInterfaces = [Eth0 with { MacAddress = "0A:58:0A:D5:00:02" }],
        }, Host());
        Assert.Equal(netns, plan.Spec.NetworkNamespacePath);
        Assert.Equal("/usr/bin/nsenter", plan.NsenterPath);
        Assert.Equal([Eth0], plan.Spec.NetworkInterfaces); // MAC in lower case
    }

    [Fact]
    public void Plan_without_a_namespace_needs_no_nsenter()
    {
        var plan = QemuLaunchPlanner.Plan(Config() with { NetworkInterfaces = [Eth0] }, Host(nsenter: null));
        Assert.Null(plan.NsenterPath);
        Assert.Null(plan.Spec.NetworkNamespacePath);
        Assert.Equal("/usr/bin/qemu-system-x86_64", QemuLaunchCommand.Build(plan).Program);
    }

    [Fact]
    public void A_missing_namespace_is_named()
    {
        var error = Assert.Throws<HypervisorException>(() =>
            QemuLaunchPlanner.Plan(Config() with { NetworkNamespacePath = "/var/run/netns/gone-4711" }, Host()));
        Assert.StartsWith("sandbox pod1: network namespace /var/run/netns/gone-4711 does not exist", error.Message);
    }

    [Fact]
    public void A_relative_namespace_path_is_refused()
    {
        var error = Assert.Throws<HypervisorException>(() =>
            QemuLaunchPlanner.Plan(Config() with { NetworkNamespacePath = "netns/x" }, Host()));
        Assert.Contains("netns/x is not absolute", error.Message);
    }

    [Fact]
    public void A_namespace_without_nsenter_on_the_host_is_refused()
    {
        var netns = _dir.File("netns", "");
        var error = Assert.Throws<HypervisorException>(() =>
            QemuLaunchPlanner.Plan(Config() with { NetworkNamespacePath = netns }, Host(nsenter: null)));
        Assert.Contains("nsenter (util-linux) not found", error.Message);
        Assert.Contains(netns, error.Message);
    }

    [Theory]
    [InlineData("", "02:00:00:00:00:01", "tap device name '' is invalid")]
    [InlineData("tap0_sbx_much_too_long", "02:00:00:00:00:01", "tap device name 'tap0_sbx_much_too_long' is invalid")]
    [InlineData("tap 0", "02:00:00:00:00:01", "tap device name 'tap 0' is invalid")]
    [InlineData("../tap", "02:00:00:00:00:01", "tap device name '../tap' is invalid")]
    [InlineData("tap0", "02:00:00:00:00", "MAC address '02:00:00:00:00' of tap tap0 is invalid")]
    [InlineData("tap0", "02-00-00-00-00-01", "MAC address '02-00-00-00-00-01' of tap tap0 is invalid")]
    [InlineData("tap0", "zz:00:00:00:00:01", "MAC address 'zz:00:00:00:00:01' of tap tap0 is invalid")]
    [InlineData("tap0", "01:00:5e:00:00:01", "MAC address 01:00:5e:00:00:01 of tap tap0 is a multicast address")]
    public void Bad_network_cards_are_refused_with_the_reason(string tap, string mac, string expected)
    {
        var error = Assert.Throws<HypervisorException>(() =>
            QemuLaunchPlanner.Plan(Config() with { NetworkInterfaces = [new VmNetworkInterface(tap, mac)] }, Host()));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void A_tap_used_twice_is_refused()
    {
        var error = Assert.Throws<HypervisorException>(() =>
            QemuLaunchPlanner.Plan(Config() with { NetworkInterfaces = [Eth0, Eth1 with { TapName = Eth0.TapName }] }, Host()));
        Assert.Contains("tap device tap0_sbx is given to more than one network card", error.Message);
    }
}
