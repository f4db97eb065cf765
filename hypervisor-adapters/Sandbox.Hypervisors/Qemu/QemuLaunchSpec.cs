namespace Sandbox.Hypervisors.Qemu;

/// <summary>
/// Everything resolved that the QEMU command line is made from: no "auto" values left (acceleration is Kvm or Tcg,
/// vsock is Kernel or Hybrid), paths absolute. Built by <see cref="QemuLaunchPlanner"/>, turned into arguments by
/// <see cref="QemuCommandLine"/>.
/// </summary>
public sealed record QemuLaunchSpec
{
    public required string SandboxId { get; init; }
    public required QemuStateFiles Files { get; init; }
    public required string KernelPath { get; init; }
    public required string InitrdPath { get; init; }
    /// <summary>The complete guest kernel command line (see <see cref="KernelCommandLine"/>).</summary>
    public required string KernelParameters { get; init; }
    public MachineType Machine { get; init; } = MachineType.Microvm;
    /// <summary>Kvm or Tcg.</summary>
    public Acceleration Acceleration { get; init; } = Acceleration.Tcg;
    /// <summary>TCG translation cache size. QEMU's default grows with guest RAM (up to 1 GiB); bounding it keeps the
    /// host memory per pod small: a pod's start fills the whole cache, so every MiB here is a MiB of host memory.
    /// Measured (TCG, microvm, pod bench RunPodSandbox to first container): 64 MiB 3.40 s, 48 MiB 3.47 s, 32 MiB
    /// 3.95 s (the container start retranslates; the VM boot to the agent alone is as fast at 32, and 16 MiB slows
    /// even that by ~0.3 s).</summary>
    public int TcgTranslationCacheMiB { get; init; } = DefaultTcgTranslationCacheMiB;
    public int Vcpus { get; init; } = 1;
    public int MemoryMiB { get; init; } = 256;
    /// <summary>Kernel or Hybrid.</summary>
    public VsockMode VsockMode { get; init; } = VsockMode.Hybrid;
    /// <summary>Guest CID (kernel vsock; in hybrid mode the daemon's CID, always <see cref="HybridGuestCid"/>).</summary>
    public uint GuestCid { get; init; } = HybridGuestCid;
    public string? SharedDirectory { get; init; }
    public string ShareMountTag { get; init; } = "share";
    /// <summary>Network namespace QEMU runs in (see <see cref="QemuLaunchCommand"/>); null = the caller's.</summary>
    public string? NetworkNamespacePath { get; init; }
    /// <summary>Guest network cards (tap devices that exist where QEMU runs).</summary>
    public IReadOnlyList<VmNetworkInterface> NetworkInterfaces { get; init; } = [];

    /// <summary>Every hybrid VM has its own daemon, so the guest CID does not need to be unique.</summary>
    public const uint HybridGuestCid = 3;

    /// <summary>Default <see cref="TcgTranslationCacheMiB"/>.</summary>
    public const int DefaultTcgTranslationCacheMiB = 48;
}
