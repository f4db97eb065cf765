using Sandbox.Hypervisors.HostDetection;
using Sandbox.Hypervisors.Qemu;

namespace Sandbox.Hypervisors.Tests;

public sealed class QemuLaunchPlannerTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly string _kernel;
    private readonly string _initrd;

    public QemuLaunchPlannerTests()
    {
        _kernel = _dir.File("vmlinux", "elf");
        _initrd = _dir.File("initramfs.cpio", "cpio");
    }

    public void Dispose() => _dir.Dispose();

    private VmConfig Config() => new()
    {
        SandboxId = "pod1",
        StateDirectory = Path.Combine(_dir.Path, "state"),
        KernelPath = _kernel,
        InitrdPath = _initrd,
    };

    private static readonly KvmProbeResult NoKvm = new(false, null, null, "no vmx/svm flag in /proc/cpuinfo: nested virtualisation is not exposed");
    private static readonly KvmProbeResult Kvm = new(true, null, "vmx", "/dev/kvm opens read-write and the CPU advertises vmx");
    private static readonly VsockProbeResult Hybrid = new(VsockMode.Hybrid, "/dev/vhost-vsock does not exist", "/usr/bin/vhost-device-vsock", "hybrid");
    private static readonly VsockProbeResult KernelVsock = new(VsockMode.Kernel, null, null, "kernel");
    private static readonly TscFrequencyResult Tsc = new(2596140, TscSource.KernelLog, "kernel log");
    private static readonly TscFrequencyResult NoTsc = new(null, TscSource.None, "TSC frequency unknown: everything failed");

    private static QemuHostFacts Host(KvmProbeResult? kvm = null, VsockProbeResult? vsock = null, TscFrequencyResult? tsc = null) =>
        new("/usr/bin/qemu-system-x86_64", "found", kvm ?? NoKvm, vsock ?? Hybrid, tsc ?? Tsc);

    [Fact]
    public void Auto_uses_tcg_with_the_kvm_reason_when_kvm_is_unusable()
    {
        var plan = QemuLaunchPlanner.Plan(Config(), Host());
        Assert.Equal(Acceleration.Tcg, plan.Spec.Acceleration);
        Assert.Equal(Acceleration.Tcg, plan.Capabilities.Acceleration);
        Assert.Contains("nested virtualisation is not exposed", plan.Capabilities.Reason);
        Assert.Contains("tsc_early_khz=2596140", plan.Spec.KernelParameters);
    }

    [Fact]
    public void Auto_uses_kvm_when_usable()
    {
        var plan = QemuLaunchPlanner.Plan(Config(), Host(kvm: Kvm));
        Assert.Equal(Acceleration.Kvm, plan.Spec.Acceleration);
        Assert.DoesNotContain("tsc_early_khz", plan.Spec.KernelParameters);
    }

    [Fact]
    public void Kvm_requested_but_unusable_fails_with_the_reason()
    {
        var error = Assert.Throws<HypervisorException>(() => QemuLaunchPlanner.Plan(Config() with { Acceleration = Acceleration.Kvm }, Host()));
        Assert.StartsWith("sandbox pod1: KVM was requested", error.Message);
        Assert.Contains("nested virtualisation is not exposed", error.Message);
    }

    [Fact]
    public void Microvm_under_tcg_needs_the_tsc_but_q35_does_not()
    {
        var error = Assert.Throws<HypervisorException>(() => QemuLaunchPlanner.Plan(Config(), Host(tsc: NoTsc)));
        Assert.Contains("tsc_early_khz", error.Message);
        Assert.Contains("everything failed", error.Message);

        var q35 = QemuLaunchPlanner.Plan(Config() with { MachineType = MachineType.Q35 }, Host(tsc: NoTsc));
        Assert.DoesNotContain("tsc_early_khz", q35.Spec.KernelParameters);
    }

    [Fact]
    public void Hybrid_vsock_uses_cid_3_and_the_daemon()
    {
        var plan = QemuLaunchPlanner.Plan(Config(), Host());
        Assert.Equal(VsockMode.Hybrid, plan.Spec.VsockMode);
        Assert.Equal(3u, plan.Spec.GuestCid);
        Assert.Equal("/usr/bin/vhost-device-vsock", plan.VsockDaemonPath);
        Assert.False(plan.GuestCidIsAutomatic);
    }

    [Fact]
    public void Kernel_vsock_picks_an_automatic_cid_or_uses_the_configured_one()
    {
        var automatic = QemuLaunchPlanner.Plan(Config(), Host(vsock: KernelVsock));
        Assert.True(automatic.GuestCidIsAutomatic);
        Assert.InRange(automatic.Spec.GuestCid, 1024u, (uint)int.MaxValue);
        Assert.Null(automatic.VsockDaemonPath);

        var configured = QemuLaunchPlanner.Plan(Config() with { GuestCid = 42 }, Host(vsock: KernelVsock));
        Assert.False(configured.GuestCidIsAutomatic);
        Assert.Equal(42u, configured.Spec.GuestCid);

        var reserved = Assert.Throws<HypervisorException>(() => QemuLaunchPlanner.Plan(Config() with { GuestCid = 2 }, Host(vsock: KernelVsock)));
        Assert.Contains("reserved", reserved.Message);
    }

    [Fact]
    public void Unusable_vsock_fails_with_the_probe_reason()
    {
        var none = new VsockProbeResult(null, "/dev/vhost-vsock does not exist", null, "no vsock: /dev/vhost-vsock does not exist, and vhost-device-vsock is not on PATH");
        var error = Assert.Throws<HypervisorException>(() => QemuLaunchPlanner.Plan(Config(), Host(vsock: none)));
        Assert.Contains("vhost-device-vsock is not on PATH", error.Message);
    }

    [Fact]
    public void Missing_files_are_named()
    {
        var missingKernel = Path.Combine(_dir.Path, "nope", "vmlinux");
        var kernelError = Assert.Throws<HypervisorException>(() => QemuLaunchPlanner.Plan(Config() with { KernelPath = missingKernel }, Host()));
        Assert.Contains(missingKernel, kernelError.Message);
        Assert.Equal("pod1", kernelError.SandboxId);

        var missingInitrd = Path.Combine(_dir.Path, "nope.cpio");
        Assert.Contains(missingInitrd, Assert.Throws<HypervisorException>(() => QemuLaunchPlanner.Plan(Config() with { InitrdPath = missingInitrd }, Host())).Message);

        var missingShare = Path.Combine(_dir.Path, "noshare");
        Assert.Contains(missingShare, Assert.Throws<HypervisorException>(() => QemuLaunchPlanner.Plan(Config() with { SharedDirectory = missingShare }, Host())).Message);
    }

    [Fact]
    public void Qemu_not_found_is_reported()
    {
        var error = Assert.Throws<HypervisorException>(() => QemuLaunchPlanner.Plan(Config(), Host() with { QemuPath = null, QemuReason = "qemu-system-x86_64 is not on PATH" }));
        Assert.Contains("qemu-system-x86_64 is not on PATH", error.Message);
    }

    [Fact]
    public void Too_long_socket_paths_are_refused_before_anything_runs()
    {
        var longState = Path.Combine(_dir.Path, new string('x', 100));
        var error = Assert.Throws<HypervisorException>(() => QemuLaunchPlanner.Plan(Config() with { StateDirectory = longState }, Host()));
        Assert.Contains("longer than 107 bytes", error.Message);
    }

    [Theory]
    [InlineData(0, 256)]
    [InlineData(1, 32)]
    public void Bad_sizes_are_refused(int vcpus, int memoryMiB)
    {
        Assert.Throws<HypervisorException>(() => QemuLaunchPlanner.Plan(Config() with { Vcpus = vcpus, MemoryMiB = memoryMiB }, Host()));
    }

    [Fact]
    public void Extra_kernel_parameters_and_debug_reach_the_kernel_command_line()
    {
        var plan = QemuLaunchPlanner.Plan(Config() with { ExtraKernelParameters = "rdinit=/sbin/floor-init", Debug = true }, Host());
        Assert.EndsWith("rdinit=/sbin/floor-init", plan.Spec.KernelParameters);
        Assert.DoesNotContain("quiet", plan.Spec.KernelParameters);
    }
}
