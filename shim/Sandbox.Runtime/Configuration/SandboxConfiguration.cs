using Sandbox.Hypervisors;
using Sandbox.Hypervisors.Qemu;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Runtime.Configuration;

/// <summary>
/// The runtime's configuration (configuration.toml, Kata-style sections): how to boot sandbox VMs, how long to wait
/// for the agent, where state lives. Read by <see cref="SandboxConfigurationParser"/>, found by
/// <see cref="SandboxConfigurationLoader"/>. Every property has a built-in default; empty paths mean "find it".
/// </summary>
public sealed record SandboxConfiguration
{
    /// <summary>Where the values came from: a file path, or <see cref="BuiltInSource"/>.</summary>
    public string Source { get; init; } = BuiltInSource;

    public const string BuiltInSource = "built-in defaults";

    public QemuSettings Qemu { get; init; } = new();
    public AgentSettings Agent { get; init; } = new();
    public RuntimeSettings Runtime { get; init; } = new();

    /// <summary>The built-in defaults (what `make install` lays out).</summary>
    public static SandboxConfiguration Default { get; } = new();

    /// <summary>Guest kernel and initramfs: the configured files, else those <see cref="GuestAssets.Locate"/> finds.</summary>
    public GuestAssets ResolveGuestAssets()
    {
        if (Qemu.Kernel is not null && Qemu.Initrd is not null)
            return new GuestAssets(Qemu.Kernel, Qemu.Initrd);
        var located = GuestAssets.Locate(Qemu.GuestKernel);
        return new GuestAssets(Qemu.Kernel ?? located.KernelPath, Qemu.Initrd ?? located.InitrdPath);
    }

    /// <summary>The parent of sandbox state directories: runtime.state_root, else $SANDBOX_STATE_ROOT, else the default.</summary>
    public string ResolveStateRoot() => SandboxStateDirectory.ResolveRoot(Runtime.StateRoot);

    /// <summary>How to boot the VM of sandbox <paramref name="sandboxId"/> with this configuration.</summary>
    public SandboxVmOptions ToVmOptions(string sandboxId, string? hostname) => new()
    {
        SandboxId = sandboxId,
        Assets = ResolveGuestAssets(),
        StateRoot = ResolveStateRoot(),
        Hostname = hostname,
        Vcpus = Qemu.DefaultVcpus,
        MemoryMiB = Qemu.DefaultMemoryMiB,
        Acceleration = Qemu.Accel,
        VsockMode = Qemu.Vsock,
        MachineType = Qemu.MachineType,
        VmmPath = Qemu.Path,
        VhostDeviceVsockPath = Qemu.VhostDeviceVsockPath,
        AgentReadyTimeout = Agent.ReadyTimeout,
        Debug = Runtime.Debug,
        BootSlots = Runtime.BootConcurrency > 0 ? new BootSlots(BootSlots.DefaultDirectory, Runtime.BootConcurrency) : null,
        DebugConsole = Agent.DebugConsole,
        ExtraKernelParameters = Qemu.KernelParams,
        JailerPath = Qemu.Confine ? JailerLocation.Resolve(Qemu.JailerPath) : null,
        ShareAllowsSetId = Qemu.ShareAllowSetId,
    };
}

/// <summary>[hypervisor.qemu]</summary>
public sealed record QemuSettings
{
    /// <summary>qemu-system-x86_64; null = search PATH.</summary>
    public string? Path { get; init; }
    /// <summary>Guest kernel (PVH vmlinux); null = <see cref="GuestKernel"/>'s file of the guest image
    /// (<see cref="GuestAssets.Locate"/>).</summary>
    public string? Kernel { get; init; }
    /// <summary>Which kernel of the guest image, when <see cref="Kernel"/> names none: <c>kernel = "sandbox"</c> (ours,
    /// the default, also <c>""</c>) or <c>"generic"</c> (Debian's, with its own initramfs).</summary>
    public GuestKernel GuestKernel { get; init; } = GuestKernel.Sandbox;
    /// <summary>Guest initramfs; null = <see cref="GuestAssets.Locate"/>.</summary>
    public string? Initrd { get; init; }
    public int DefaultVcpus { get; init; } = 1;
    public int DefaultMemoryMiB { get; init; } = 256;
    public Acceleration Accel { get; init; } = Acceleration.Auto;
    public VsockMode Vsock { get; init; } = VsockMode.Auto;
    public MachineType MachineType { get; init; } = MachineType.Microvm;
    /// <summary>QEMU's translation cache under TCG (tb-size), MiB: host memory per VM against re-translation time.</summary>
    public int TcgTranslationCacheMiB { get; init; } = QemuLaunchSpec.DefaultTcgTranslationCacheMiB;
    /// <summary>The same for a VM cloned from a template, which has no boot to pay for but must not flush while its
    /// first container starts.</summary>
    public int CloneTcgTranslationCacheMiB { get; init; } = QemuLaunchSpec.DefaultCloneTcgTranslationCacheMiB;
    /// <summary>vhost-device-vsock for hybrid vsock; null = search PATH.</summary>
    public string? VhostDeviceVsockPath { get; init; }
    /// <summary>What QEMU and its helpers use on the host beyond the guest's memory (TCG's translation cache, device
    /// emulation, the vsock daemon), MiB. A pod with a memory limit gets a host cgroup limit of the VM's memory plus this.</summary>
    public int HostMemoryOverheadMiB { get; init; } = 160;
    /// <summary>Appended to the guest kernel's command line (Kata's kernel_params): for debugging a guest.</summary>
    public string KernelParams { get; init; } = "";
    /// <summary>QEMU and vhost-device-vsock run confined by sandbox-jailer (own mount namespace, capabilities, rlimits,
    /// seccomp; see README "The host side of the boundary"). false = unconfined, for hosts that cannot make mount
    /// namespaces; only no_new_privs and QEMU's own seccomp filter remain.</summary>
    public bool Confine { get; init; } = true;
    /// <summary>sandbox-jailer; null = next to the shim, else PATH.</summary>
    public string? JailerPath { get; init; }
    /// <summary>The guest may make setuid/setgid files in the pod's share (see <see cref="VmConfig.ShareAllowsSetId"/>).
    /// false = refused, so that no setuid-root file made by a guest ever exists on the host.</summary>
    public bool ShareAllowSetId { get; init; }
    /// <summary>Start a sandbox's VM as a clone of a template (a booted, idle guest saved once per recipe:
    /// <see cref="Templates.VmTemplateStore"/>) instead of booting it. Any failure boots cold, and the shim logs why.
    /// Off by default: clones share pages between pods (a side-channel trade-off the operator chooses); see
    /// configuration.toml.</summary>
    public bool Template { get; init; }
}

/// <summary>[agent]</summary>
public sealed record AgentSettings
{
    /// <summary>How long a booting VM may take until its agent answers (TCG boots take seconds).</summary>
    public TimeSpan ReadyTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Deadline of every agent request that is not meant to block (create, start, signal, ...).</summary>
    public TimeSpan RpcTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>A running VM whose agent has answered no Health call for this long is taken for hung (a frozen vCPU, a
    /// wedged guest kernel) and stopped; its processes exit 137. Zero = never.</summary>
    public TimeSpan LivenessTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>The agent serves `sandboxctl exec` (a shell or command in the guest itself, as root, outside every
    /// container): Kata's debug_console_enabled. Off by default: it is a way into every pod's VM for whoever can reach
    /// the sandbox's vsock socket on the host.</summary>
    public bool DebugConsole { get; init; }
}

/// <summary>[runtime]</summary>
public sealed record RuntimeSettings
{
    /// <summary>Parent of the sandbox state directories; null = $SANDBOX_STATE_ROOT, else /run/sandbox/sandboxes.</summary>
    public string? StateRoot { get; init; }
    /// <summary>Verbose guest console and shim log.</summary>
    public bool Debug { get; init; }
    /// <summary>QEMU and its helpers run in the sandbox's host cgroup (its cgroupsPath), as Kata's sandbox_cgroup_only:
    /// the kubelet sees and limits what the VM costs. false = they stay in the shim's cgroup.</summary>
    public bool SandboxCgroup { get; init; } = true;
    /// <summary>A shim daemon with no container and no sandbox for this long exits: containerd has lost it (it restarted
    /// while the shim was starting, or stopped between a delete and the shutdown). Zero = never.</summary>
    public TimeSpan IdleExit { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>How many sandbox VMs may boot at once on this host, across every shim (<see cref="BootSlots"/>); the
    /// others wait their turn before QEMU starts. Default: the host's CPU count. Zero = no limit.</summary>
    public int BootConcurrency { get; init; } = Environment.ProcessorCount;
    /// <summary>How many post-mortem records (one per ended sandbox, for `sandboxctl doctor`) the state root keeps; the
    /// oldest go first. Zero = none are written.</summary>
    public int PostMortemRecords { get; init; } = PostMortem.PostMortemStore.DefaultMaxRecords;
}
