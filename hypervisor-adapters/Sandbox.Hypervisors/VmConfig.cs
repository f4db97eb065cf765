namespace Sandbox.Hypervisors;

/// <summary>Everything a VMM needs to boot one sandbox VM.</summary>
public sealed record VmConfig
{
    /// <summary>Sandbox id, used in names and error messages.</summary>
    public required string SandboxId { get; init; }
    /// <summary>Per-sandbox state directory (sockets, console log, pid files). Must exist or be creatable.</summary>
    public required string StateDirectory { get; init; }
    /// <summary>Uncompressed PVH vmlinux.</summary>
    public required string KernelPath { get; init; }
    public required string InitrdPath { get; init; }
    /// <summary>Extra kernel command line parameters appended after the adapter's own.</summary>
    public string ExtraKernelParameters { get; init; } = "";
    public int Vcpus { get; init; } = 1;
    public int MemoryMiB { get; init; } = 256;
    public Acceleration Acceleration { get; init; } = Acceleration.Auto;
    public VsockMode VsockMode { get; init; } = VsockMode.Auto;
    public MachineType MachineType { get; init; } = MachineType.Microvm;
    /// <summary>Host directory exported to the guest over 9p with tag <see cref="ShareMountTag"/>; null = none.</summary>
    public string? SharedDirectory { get; init; }
    public string ShareMountTag { get; init; } = "share";
    /// <summary>Path of qemu-system-x86_64 (or another VMM binary); null = look it up on PATH.</summary>
    public string? VmmPath { get; init; }
    /// <summary>Path of vhost-device-vsock, used in hybrid vsock mode; null = look it up on PATH.</summary>
    public string? VhostDeviceVsockPath { get; init; }
    /// <summary>Guest CID for kernel vhost-vsock; 0 = pick a free one.</summary>
    public uint GuestCid { get; init; }
    /// <summary>Verbose guest console (no `quiet`).</summary>
    public bool Debug { get; init; }
    /// <summary>Network namespace the VMM runs in (a path such as /var/run/netns/cni-1234), entered with
    /// `nsenter --net=PATH`, which execs the VMM so that its pid is the VMM's. For a pod this is the namespace CNI
    /// configured: its tap devices live there, and containerd joins containers to it through the VMM's pid.
    /// Helper daemons (vhost-device-vsock) stay in the caller's namespace. null = the caller's namespace.</summary>
    public string? NetworkNamespacePath { get; init; }
    /// <summary>Guest network cards, each backed by an existing tap device (in <see cref="NetworkNamespacePath"/>
    /// when that is set). Empty = no network card.</summary>
    public IReadOnlyList<VmNetworkInterface> NetworkInterfaces { get; init; } = [];
    /// <summary>The cgroup.procs files of the sandbox's host cgroup (one per hierarchy; the caller creates the cgroup):
    /// the VMM and each helper process is written into every one of them right after it starts. Empty = stay in the
    /// caller's cgroup.</summary>
    public IReadOnlyList<string> CgroupProcsFiles { get; init; } = [];
    /// <summary>Path of nsenter (util-linux), used with <see cref="NetworkNamespacePath"/>; null = look it up on PATH.</summary>
    public string? NsenterPath { get; init; }
    /// <summary>sandbox-jailer, which confines QEMU and its helpers (see <see cref="Jail.QemuJail"/>); it also enters
    /// <see cref="NetworkNamespacePath"/>, so nsenter is not used. null = they run unconfined (only no_new_privs and
    /// QEMU's own seccomp filter). With a jail, binds made in <see cref="SharedDirectory"/> after the start reach QEMU
    /// only when the directory is a shared mount point (the runtime makes it one).</summary>
    public string? JailerPath { get; init; }
    /// <summary>With a jail: the guest may set the setuid and setgid bits on files in <see cref="SharedDirectory"/>
    /// (they then exist on the host too). false (the default) = the jail's seccomp filter refuses those bits in
    /// chmod and file creation (EPERM in the guest), so the guest cannot plant a setuid-root file on the host.</summary>
    public bool ShareAllowsSetId { get; init; }
    /// <summary>null = an ordinary cold boot; otherwise this VM becomes a template or is cloned from one (see
    /// <see cref="VmTemplateRole"/>). Its agent is then reached on a <see cref="VirtioSerialEndpoint"/>.</summary>
    public VmTemplateRole? Template { get; init; }
}

/// <summary>One guest network card: a virtio-net device on the tap device <paramref name="TapName"/>, seen by the guest
/// with the hardware address <paramref name="MacAddress"/> ("aa:bb:cc:dd:ee:ff").</summary>
public sealed record VmNetworkInterface(string TapName, string MacAddress);

public enum Acceleration { Auto, Kvm, Tcg }

/// <summary>Kernel = /dev/vhost-vsock with AF_VSOCK on the host; Hybrid = vhost-device-vsock and a Unix socket
/// speaking CONNECT/OK (Firecracker and Cloud Hypervisor's "hybrid vsock").</summary>
public enum VsockMode { Auto, Kernel, Hybrid }

public enum MachineType { Microvm, Q35 }

/// <summary>How the VMM process ended.</summary>
public sealed record VmExit(int ExitCode, DateTimeOffset ExitedAt)
{
    /// <summary>True when StopAsync ended the VM; false when it ended by itself (guest poweroff, reboot or panic, a VMM
    /// crash, a kill from outside, a failed start).</summary>
    public bool StoppedByHost { get; init; }

    /// <summary>For an exit the host did not ask for: what the VMM printed and the last console lines. Empty otherwise.</summary>
    public string Diagnostics { get; init; } = "";
}

/// <summary>What a VMM adapter resolved and supports on this host.</summary>
public sealed record HypervisorCapabilities(
    string Name,
    Acceleration Acceleration,
    VsockMode VsockMode,
    bool SharedFilesystem,
    string? Reason);

/// <summary>Where to dial the in-guest agent.</summary>
public abstract record AgentEndpoint(uint Port);

/// <summary>AF_VSOCK (cid, port) through the kernel's vhost-vsock.</summary>
public sealed record KernelVsockEndpoint(uint Cid, uint Port) : AgentEndpoint(Port);

/// <summary>A host Unix socket; write "CONNECT port\n", read "OK n\n", then the stream.</summary>
public sealed record HybridVsockEndpoint(string SocketPath, uint Port) : AgentEndpoint(Port);

/// <summary>A virtio-serial port (a template source or clone, see <see cref="VmTemplateRole"/>): QEMU's chardev
/// socket; connecting is the stream, one client at a time. <paramref name="ToolsSocketPath"/> is a second port for the
/// operator's tools, while the runtime holds the first. <see cref="AgentEndpoint.Port"/> is unused (0).</summary>
public sealed record VirtioSerialEndpoint(string SocketPath, string ToolsSocketPath) : AgentEndpoint(0);
