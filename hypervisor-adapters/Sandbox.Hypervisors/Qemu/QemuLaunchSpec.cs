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
    /// A pod's boot and agent translate ~54 MB of guest code and its first container ~26 MB more; when the cache is
    /// full QEMU discards all of it and re-translates. Measured (TCG, microvm, `make bench` pod, 3 rounds, twice):
    /// RunPodSandbox to first container over the boot floor 2.06/2.03 at 48 MiB, 1.80/1.88 at 64, 1.93 at 96;
    /// idle pod PSS 222.5, 240.1 and 257.5 MiB. 32 MiB: the container start retranslates (3.95 s against 3.40 s).</summary>
    public int TcgTranslationCacheMiB { get; init; } = DefaultTcgTranslationCacheMiB;
    public int Vcpus { get; init; } = 1;
    public int MemoryMiB { get; init; } = 256;
    /// <summary>Kernel or Hybrid.</summary>
    public VsockMode VsockMode { get; init; } = VsockMode.Hybrid;
    /// <summary>Guest CID (kernel vsock; in hybrid mode the daemon's CID, always <see cref="HybridGuestCid"/>).</summary>
    public uint GuestCid { get; init; } = HybridGuestCid;
    public string? SharedDirectory { get; init; }
    /// <summary>See <see cref="VmConfig.ShareAllowsSetId"/>.</summary>
    public bool ShareAllowsSetId { get; init; }
    /// <summary>Set when the taps are opened by the jailer: QEMU gets tap i as descriptor FirstTapDescriptor + i
    /// (<c>-netdev tap,fd=N</c>) instead of opening it by name, which would need CAP_NET_ADMIN.</summary>
    public int? FirstTapDescriptor { get; init; }
    public string ShareMountTag { get; init; } = "share";
    /// <summary>Network namespace QEMU runs in (see <see cref="QemuLaunchCommand"/>); null = the caller's.</summary>
    public string? NetworkNamespacePath { get; init; }
    /// <summary>See <see cref="VmConfig.CgroupProcsFiles"/>.</summary>
    public IReadOnlyList<string> CgroupProcsFiles { get; init; } = [];
    /// <summary>Guest network cards (tap devices that exist where QEMU runs).</summary>
    public IReadOnlyList<VmNetworkInterface> NetworkInterfaces { get; init; } = [];

    /// <summary>See <see cref="VmConfig.Template"/>: a template source or clone has no vsock device (and no vsock
    /// daemon) but a virtio-serial port for the agent, and its guest RAM in a file.</summary>
    public VmTemplateRole? Template { get; init; }

    /// <summary>Whether the VM has a vsock device (every VM but a template source or clone).</summary>
    public bool HasVsock => Template is null;

    /// <summary>Every hybrid VM has its own daemon, so the guest CID does not need to be unique.</summary>
    public const uint HybridGuestCid = 3;

    /// <summary>Default <see cref="TcgTranslationCacheMiB"/>. QEMU fills whatever size it is given before it flushes;
    /// with our kernel 32 MiB takes ~50 MiB off an idle pod's host PSS against 64, at no start-time cost measurable on
    /// a noisy 2-core host (README, "The guest kernel").</summary>
    public const int DefaultTcgTranslationCacheMiB = 32;

    /// <summary>Default <see cref="TcgTranslationCacheMiB"/> of a VM cloned from a template. A clone does not boot, but
    /// its CreateSandbox, first container create and start translate ~37 MB: at 32 MiB QEMU flushes in the middle and
    /// translates again. Measured (TCG, `ctr run --rm ... true` from one template, interleaved): 32 -> 1.30 s, 64 ->
    /// 1.09 s, 128 -> 1.10 s (medians of 6-8; container start 140 -> 46 ms); an idle clone's QEMU PSS 78.5 -> 83.7 MiB
    /// (64 and 128 alike: a clone fills only what it translates).</summary>
    public const int DefaultCloneTcgTranslationCacheMiB = 64;
}
