using System.Text.RegularExpressions;
using Sandbox.Hypervisors.HostDetection;

namespace Sandbox.Hypervisors.Qemu;

/// <summary>What the host offers, gathered once by <see cref="QemuAdapter.PrepareAsync"/>.</summary>
public sealed record QemuHostFacts(string? QemuPath, string QemuReason, KvmProbeResult Kvm, VsockProbeResult Vsock, TscFrequencyResult Tsc)
{
    /// <summary>Path of nsenter; looked up only when the VM runs in a network namespace.</summary>
    public string? NsenterPath { get; init; }
    /// <summary>The host's library layout, detected when the VM is jailed; null otherwise.</summary>
    public Jail.JailHostLayout? JailLayout { get; init; }
}

/// <summary>The outcome of planning: the spec for the command line plus what is needed to run it.</summary>
public sealed record QemuLaunchPlan(
    QemuLaunchSpec Spec,
    string QemuPath,
    string? VsockDaemonPath,
    bool GuestCidIsAutomatic,
    HypervisorCapabilities Capabilities)
{
    /// <summary>nsenter, which starts QEMU in <see cref="QemuLaunchSpec.NetworkNamespacePath"/>; null without a namespace
    /// or with a jailer (which enters the namespace itself).</summary>
    public string? NsenterPath { get; init; }
    /// <summary>sandbox-jailer, which starts QEMU and the vsock daemon confined; null = unconfined.</summary>
    public string? JailerPath { get; init; }
    /// <summary>The host's library layout the jails are made from; set with <see cref="JailerPath"/>.</summary>
    public Jail.JailHostLayout? JailLayout { get; init; }
}

/// <summary>
/// Validates a <see cref="VmConfig"/> and resolves its "auto" choices against the host facts: KVM only when the KVM
/// probe says usable, else TCG; kernel vsock when /dev/vhost-vsock opens, else hybrid. Every refusal is a
/// <see cref="HypervisorException"/> that says what to check.
/// </summary>
public static partial class QemuLaunchPlanner
{
    public const int MinimumMemoryMiB = 64;
    /// <summary>Linux interface names are at most 15 bytes (IFNAMSIZ - 1).</summary>
    public const int MaxInterfaceNameLength = 15;

    public static QemuLaunchPlan Plan(VmConfig config, QemuHostFacts host)
    {
        var id = config.SandboxId;
        if (string.IsNullOrWhiteSpace(id))
            throw new ArgumentException("VmConfig.SandboxId is empty", nameof(config));
        HypervisorException Fail(string message) => new(id, message);

        if (config.Vcpus < 1)
            throw Fail($"Vcpus must be at least 1, not {config.Vcpus}");
        if (config.MemoryMiB < MinimumMemoryMiB)
            throw Fail($"MemoryMiB must be at least {MinimumMemoryMiB}, not {config.MemoryMiB}");
        if (string.IsNullOrWhiteSpace(config.StateDirectory))
            throw Fail("StateDirectory is empty");
        if (!File.Exists(config.KernelPath))
            throw Fail($"guest kernel {config.KernelPath} does not exist (build the guest image, or check the kernel path in the configuration)");
        if (!File.Exists(config.InitrdPath))
            throw Fail($"guest initrd {config.InitrdPath} does not exist (build the guest image, or check the initrd path in the configuration)");
        if (config.SharedDirectory is not null && !Directory.Exists(config.SharedDirectory))
            throw Fail($"shared directory {config.SharedDirectory} does not exist");
        if (config.SharedDirectory is not null && string.IsNullOrWhiteSpace(config.ShareMountTag))
            throw Fail("ShareMountTag is empty");
        if (host.QemuPath is null)
            throw Fail($"QEMU not found: {host.QemuReason}");
        if (config.JailerPath is { } jailer && !File.Exists(jailer))
            throw Fail($"sandbox-jailer {jailer} does not exist; it confines QEMU and its helpers: {Jail.QemuJail.MissingJailerAdvice}, " +
                       "or run unconfined with [hypervisor.qemu] confine = false");
        if (config.NetworkNamespacePath is { } netns)
        {
            if (!Path.IsPathRooted(netns))
                throw Fail($"network namespace path {netns} is not absolute");
            if (!File.Exists(netns))
                throw Fail($"network namespace {netns} does not exist (was the pod's network namespace removed? `ip netns list` shows the named ones)");
            if (config.JailerPath is null && host.NsenterPath is null)
                throw Fail($"nsenter (util-linux) not found ({config.NsenterPath ?? "PATH, " + QemuHostFactsProbe.SystemDirectories}); it starts QEMU in the network namespace {netns}");
        }
        var nics = ValidateNetworkInterfaces(config.NetworkInterfaces, Fail);
        if (config.Template is VmTemplateRole.CloneOf clone && !File.Exists(clone.StateFile))
            throw Fail($"the template's device state {clone.StateFile} does not exist");
        if (config.Template is not null && config.MachineType != MachineType.Microvm)
            throw Fail("templates are made for microvm only (a q35 template is not measured yet)");

        var (acceleration, accelerationReason) = config.Acceleration switch
        {
            Acceleration.Kvm when host.Kvm.Usable => (Acceleration.Kvm, "kvm (requested): " + host.Kvm.Reason),
            Acceleration.Kvm => throw Fail($"KVM was requested but cannot be used: {host.Kvm.Reason}. Use acceleration auto or tcg."),
            Acceleration.Tcg => (Acceleration.Tcg, "tcg (requested)"),
            _ when host.Kvm.Usable => (Acceleration.Kvm, "kvm: " + host.Kvm.Reason),
            _ => (Acceleration.Tcg, "tcg, because " + host.Kvm.Reason),
        };
        if (acceleration == Acceleration.Tcg && config.MachineType == MachineType.Microvm && host.Tsc.KHz is null)
            throw Fail($"a microvm guest under TCG needs the host TSC frequency (tsc_early_khz), but {host.Tsc.Detail}. " +
                       "Use machine type q35, or make the kernel log readable.");

        if (!host.Vsock.Usable)
            throw Fail($"no host<->guest vsock: {host.Vsock.Reason}");
        var vsockMode = host.Vsock.Mode!.Value;

        var files = new QemuStateFiles(config.StateDirectory);
        var tooLong = files.TooLongSocketPaths(vsockMode == VsockMode.Hybrid).ToList();
        if (tooLong.Count > 0)
            throw Fail($"socket paths longer than {QemuStateFiles.MaxSocketPathBytes} bytes: {string.Join(", ", tooLong)}. Use a shorter state directory.");

        uint cid;
        bool cidIsAutomatic = false;
        if (vsockMode == VsockMode.Hybrid)
            cid = QemuLaunchSpec.HybridGuestCid;
        else if (config.GuestCid == 0)
        {
            cid = PickGuestCid();
            cidIsAutomatic = true;
        }
        else if (config.GuestCid is < 3 or uint.MaxValue)
            throw Fail($"guest CID {config.GuestCid} is reserved (0, 1, 2 and 0xFFFFFFFF); use 3 or more, or 0 for automatic");
        else
            cid = config.GuestCid;

        var spec = new QemuLaunchSpec
        {
            SandboxId = id,
            Files = files,
            KernelPath = Path.GetFullPath(config.KernelPath),
            InitrdPath = Path.GetFullPath(config.InitrdPath),
            KernelParameters = KernelCommandLine.Build(acceleration, host.Tsc.KHz, config.Debug, config.ExtraKernelParameters),
            Machine = config.MachineType,
            Acceleration = acceleration,
            Vcpus = config.Vcpus,
            MemoryMiB = config.MemoryMiB,
            VsockMode = vsockMode,
            GuestCid = cid,
            SharedDirectory = config.SharedDirectory is null ? null : Path.GetFullPath(config.SharedDirectory),
            ShareAllowsSetId = config.ShareAllowsSetId,
            FirstTapDescriptor = config.JailerPath is null ? null : Jail.QemuJail.FirstTapDescriptor,
            ShareMountTag = config.ShareMountTag,
            NetworkNamespacePath = config.NetworkNamespacePath,
            CgroupProcsFiles = config.CgroupProcsFiles,
            NetworkInterfaces = nics,
            Template = config.Template,
        };
        var capabilities = new HypervisorCapabilities("qemu", acceleration, vsockMode, SharedFilesystem: true,
            Reason: $"{accelerationReason}; vsock: {host.Vsock.Reason}");
        bool jailed = config.JailerPath is not null;
        string? vsockDaemon = vsockMode == VsockMode.Hybrid && spec.HasVsock ? host.Vsock.VhostDeviceVsockPath : null;
        // A jail holds the programs themselves at their real paths, not the symlinks that lead to them.
        return new QemuLaunchPlan(spec, jailed ? RealPath(host.QemuPath) : host.QemuPath,
            jailed && vsockDaemon is not null ? RealPath(vsockDaemon) : vsockDaemon, cidIsAutomatic, capabilities)
        {
            NsenterPath = config.NetworkNamespacePath is null || jailed ? null : host.NsenterPath,
            JailerPath = config.JailerPath is null ? null : Path.GetFullPath(config.JailerPath),
            JailLayout = jailed ? host.JailLayout ?? throw Fail("the host facts lack the library layout a jail is made from") : null,
        };
    }

    private static string RealPath(string path) =>
        File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? Path.GetFullPath(path);

    /// <summary>Tap names a shell and QEMU take literally, MACs as six hex pairs of a unicast address; returned with
    /// the MACs in lower case.</summary>
    private static List<VmNetworkInterface> ValidateNetworkInterfaces(IReadOnlyList<VmNetworkInterface>? nics, Func<string, HypervisorException> fail)
    {
        var result = new List<VmNetworkInterface>();
        foreach (var nic in nics ?? [])
        {
            if (nic.TapName is null || nic.TapName.Length > MaxInterfaceNameLength || !InterfaceName().IsMatch(nic.TapName))
                throw fail($"tap device name '{nic.TapName}' is invalid: use 1 to {MaxInterfaceNameLength} letters, digits, '_', '.' or '-'");
            if (nic.MacAddress is null || !MacAddress().IsMatch(nic.MacAddress))
                throw fail($"MAC address '{nic.MacAddress}' of tap {nic.TapName} is invalid: use six hex pairs such as 02:42:0a:58:00:05");
            if ((Convert.ToByte(nic.MacAddress[..2], 16) & 1) != 0)
                throw fail($"MAC address {nic.MacAddress} of tap {nic.TapName} is a multicast address; a network card needs a unicast one");
            if (result.Any(n => n.TapName == nic.TapName))
                throw fail($"tap device {nic.TapName} is given to more than one network card");
            result.Add(nic with { MacAddress = nic.MacAddress.ToLowerInvariant() });
        }
        return result;
    }

    [GeneratedRegex("^[A-Za-z0-9_.-]+$")]
    private static partial Regex InterfaceName();

    [GeneratedRegex("^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")]
    private static partial Regex MacAddress();

    /// <summary>A random CID well away from the reserved and the small, commonly hand-picked ones. The kernel refuses
    /// a CID already in use; the adapter then retries with another.</summary>
    public static uint PickGuestCid() => (uint)Random.Shared.NextInt64(1024, int.MaxValue);
}

/// <summary>Gathers <see cref="QemuHostFacts"/> with the real probes.</summary>
public static class QemuHostFactsProbe
{
    /// <summary>Searched after PATH for system tools: a shim started by containerd may have a short PATH.</summary>
    public const string SystemDirectories = "/usr/sbin:/usr/bin:/sbin:/bin";

    /// <summary>Locates QEMU and probes KVM, vsock and the TSC as <paramref name="config"/> needs them.
    /// Reads files and device nodes only; runs no process.</summary>
    public static QemuHostFacts Detect(VmConfig config)
    {
        var qemuPath = QemuProbe.Locate(config.VmmPath, out var qemuReason);
        var kvm = config.Acceleration == Acceleration.Tcg
            ? new KvmProbeResult(false, null, null, "not probed (tcg requested)")
            : new KvmProbe().Probe();
        var vsock = new VsockProbe(daemonPath: config.VhostDeviceVsockPath).Probe(config.VsockMode);
        var tsc = new TscFrequency().Detect();
        var nsenter = config.NetworkNamespacePath is null || config.JailerPath is not null ? null
            : config.NsenterPath is { } configured ? ExecutableSearch.Find(configured)
            : ExecutableSearch.Find("nsenter") ?? ExecutableSearch.Find("nsenter", SystemDirectories);
        return new QemuHostFacts(qemuPath, qemuReason, kvm, vsock, tsc)
        {
            NsenterPath = nsenter,
            JailLayout = config.JailerPath is null ? null : Jail.JailHostLayout.Detect(),
        };
    }
}
