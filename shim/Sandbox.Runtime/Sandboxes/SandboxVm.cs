using Sandbox.Agent.Protocol;
using Sandbox.Hypervisors;
using Sandbox.Runtime.Agent;
using Sandbox.Runtime.Cgroups;
using Sandbox.Runtime.Network;
using Sandbox.Runtime.PostMortem;

namespace Sandbox.Runtime.Sandboxes;

/// <summary>How to boot one sandbox VM.</summary>
public sealed record SandboxVmOptions
{
    public required string SandboxId { get; init; }
    public required GuestAssets Assets { get; init; }
    /// <summary>Parent of the state directories; null = <see cref="SandboxStateDirectory.ResolveRoot"/>.</summary>
    public string? StateRoot { get; init; }
    public string? Hostname { get; init; }
    public int Vcpus { get; init; } = 1;
    public int MemoryMiB { get; init; } = 256;
    public Acceleration Acceleration { get; init; } = Acceleration.Auto;
    public VsockMode VsockMode { get; init; } = VsockMode.Auto;
    public MachineType MachineType { get; init; } = MachineType.Microvm;
    public string? VmmPath { get; init; }
    public string? VhostDeviceVsockPath { get; init; }
    public string ExtraKernelParameters { get; init; } = "";
    /// <summary>See <see cref="VmConfig.JailerPath"/>; null = QEMU and its helpers run unconfined.</summary>
    public string? JailerPath { get; init; }
    public bool ShareAllowsSetId { get; init; }
    /// <summary>How long the guest may take to boot until its agent answers (TCG boots take seconds).</summary>
    public TimeSpan AgentReadyTimeout { get; init; } = TimeSpan.FromSeconds(60);
    public bool Debug { get; init; }
    /// <summary>The pod's network (its namespace from the sandbox spec), or null for none. BootAsync sets it up before
    /// QEMU starts, runs QEMU in its namespace with one card per tap, and gives the guest the interfaces and routes
    /// after CreateSandbox; StopAsync (and a failed boot) tears it down.</summary>
    public PodNetwork? Network { get; init; }
    /// <summary>The sandbox's cgroup on the host, below each hierarchy root (<see cref="CgroupsPath.Resolve"/>), where
    /// QEMU and its helpers run; null = they stay in the shim's cgroup. BootAsync creates it, StopAsync removes it.</summary>
    public string? HostCgroupPath { get; init; }
    /// <summary>Memory limit of <see cref="HostCgroupPath"/> in bytes (the VM's memory plus the VMM's overhead), or
    /// null for none.</summary>
    public long? HostCgroupMemoryLimit { get; init; }
    /// <summary>The host-wide limit on VMs booting at once: a slot is held from QEMU's start until the agent answers.
    /// null = no limit.</summary>
    public BootSlots? BootSlots { get; init; }
    /// <summary>Where BootAsync says what it waits for (the shim's log); null = nowhere.</summary>
    public Action<string>? Log { get; init; }
    /// <summary>The agent serves `sandboxctl exec` ([agent] debug_console).</summary>
    public bool DebugConsole { get; init; }
    /// <summary>The shim's lines about this sandbox: BootAsync points it at the state directory's shim.log as soon as the
    /// directory exists. null = none.</summary>
    public SandboxJournal? Journal { get; init; }
    /// <summary>Where the record of a failed boot or a stop goes before the state directory is removed. null = none.</summary>
    public PostMortemStore? PostMortems { get; init; }
    /// <summary>Asked, once the sandbox's network cards are known (their number is part of a template's recipe), what to
    /// start the VM from: a template clone (<see cref="Templates.VmTemplateCloner"/>), whose memory the sandbox releases
    /// when it ends or fails to start, or null for a cold boot. null = always a cold boot.</summary>
    public Func<int, CancellationToken, Task<Templates.TemplateClone?>>? CloneSource { get; init; }
}

/// <summary>
/// One running sandbox: its VM (through <see cref="IHypervisor"/>), its agent connection and its state directory.
/// BootAsync returns once the agent answered and the sandbox (hostname, shared directory) is set up in the guest.
/// </summary>
public sealed class SandboxVm : IAsyncDisposable
{
    public const uint AgentPort = 1024;
    public const string GuestSharedMountPoint = "/run/sandbox/shared";

    private int _stopped;
    private int _guestDestroyed;

    private SandboxVm(SandboxStateDirectory state, IHypervisor hypervisor, AgentConnection agent, PodNetwork? network,
        PodPortForwarder? portForwarder, Task<string> bootImagesReleased, PodHostCgroup? hostCgroup, SandboxVmOptions options,
        Templates.TemplateClone? clone)
    {
        _journal = options.Journal;
        _clone = clone;
        _postMortems = options.PostMortems;
        HostCgroup = hostCgroup;
        State = state;
        Hypervisor = hypervisor;
        Agent = agent;
        Network = network;
        _portForwarder = portForwarder;
        BootImagesReleased = bootImagesReleased;
    }

    /// <summary>Host randomness sent to the guest at CreateSandbox (the agent takes at most 512 bytes).</summary>
    public const int GuestEntropyBytes = 64;

    /// <summary>
    /// <paramref name="count"/> bytes from the host kernel's random generator (/dev/urandom: never blocks once the
    /// host has booted). Not RandomNumberGenerator: on Linux it loads OpenSSL, which nothing else in the shim daemon
    /// needs, and libcrypto then stays mapped for the pod's life (~2.5 MiB of each idle pod's host memory).
    /// </summary>
    private static byte[] HostRandomBytes(int count)
    {
        var bytes = new byte[count];
        using var urandom = new FileStream("/dev/urandom", FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);
        urandom.ReadExactly(bytes);
        return bytes;
    }

    private readonly Templates.TemplateClone? _clone;
    private readonly PodPortForwarder? _portForwarder;
    private readonly SandboxJournal? _journal;
    private readonly PostMortemStore? _postMortems;
    private readonly object _endGate = new();
    private (string Reason, bool Failed) _end = ("stopped by the runtime (its containers were deleted, or the pod was stopped)", false);

    public string SandboxId => State.SandboxId;

    /// <summary>Where the boot's time went, for the shim's log: "state, cgroup and network 3 ms, template 41 ms, ...".</summary>
    public string BootPhases { get; private init; } = "";
    /// <summary>Where the stop's time went, once <see cref="StopAsync"/> returned: "DestroySandbox 20 ms, QEMU stopped 15 ms, ...".</summary>
    public string StopPhases { get; private set; } = "";
    public SandboxStateDirectory State { get; }
    public IHypervisor Hypervisor { get; }
    public AgentConnection Agent { get; }
    public PodNetwork? Network { get; }
    /// <summary>Where QEMU and its helpers run on the host (null: in the shim's cgroup).</summary>
    public PodHostCgroup? HostCgroup { get; }

    /// <summary>Started once the agent answers: the VMM's copies of the kernel and initrd leave its resident memory
    /// (see <see cref="IHypervisor.ReleaseBootImagesAsync"/>). Completes with a one-line description; never faults.</summary>
    public Task<string> BootImagesReleased { get; }

    /// <summary>Why the sandbox ends, for its post-mortem record: the first failure reported wins over a later stop.</summary>
    public void RecordEnd(string reason, bool failed)
    {
        lock (_endGate)
        {
            if (!_end.Failed)
                _end = (reason, failed);
        }
    }

    /// <summary>Guest path under which a host path below <see cref="SandboxStateDirectory.SharedDirectory"/> appears.</summary>
    public string GuestPathOf(string hostPathInShare)
    {
        var relative = Path.GetRelativePath(State.SharedDirectory, hostPathInShare);
        if (relative.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(relative))
            throw new ArgumentException($"sandbox {SandboxId}: {hostPathInShare} is not inside the shared directory {State.SharedDirectory}");
        return relative == "." ? GuestSharedMountPoint : GuestSharedMountPoint + "/" + relative.Replace('\\', '/');
    }

    public static async Task<SandboxVm> BootAsync(SandboxVmOptions options, IHypervisor hypervisor, CancellationToken cancellationToken)
    {
        var state = new SandboxStateDirectory(SandboxStateDirectory.ResolveRoot(options.StateRoot), options.SandboxId);
        if (Directory.Exists(state.Path))
            throw new InvalidOperationException(
                $"sandbox {options.SandboxId}: state directory {state.Path} already exists (a sandbox with this id runs, or was not cleaned up; `sandboxctl list` shows it)");
        state.Create();
        options.Journal?.AttachTo(state.Path);
        AgentConnection? agent = null;
        PodHostCgroup? hostCgroup = null;
        Task<string> bootImagesReleased = Task.FromResult("not started");
        Templates.TemplateClone? clone = null;
        var phases = new PhaseClock();
        try
        {
            if (options.JailerPath is not null)
                state.MakeShareMountPoint();
            // Before anything that can outlive this process (cgroup, QEMU): from here on `sandboxctl gc` and the shim's
            // `delete` can tell a sandbox whose owner died from a live one.
            SandboxOwnerFile.WriteSelf(state.Path);
            if (options.HostCgroupPath is { } cgroupPath)
            {
                WriteMetadata(state, options, hypervisor: null, clone: null); // names the cgroup before it exists
                hostCgroup = PodHostCgroup.Create(options.SandboxId, cgroupPath, HostCgroupMounts.Read());
                if (options.HostCgroupMemoryLimit is { } limit)
                    hostCgroup.SetMemoryLimit(limit);
            }
            var nics = options.Network is null ? [] : await options.Network.SetUpAsync(cancellationToken);
            phases.Mark("state, cgroup and network");
            if (options.CloneSource is { } cloneSource)
            {
                clone = await cloneSource(nics.Count, cancellationToken);
                phases.Mark("template");
            }
            var config = new VmConfig
            {
                SandboxId = options.SandboxId,
                StateDirectory = state.Path,
                KernelPath = options.Assets.KernelPath,
                InitrdPath = options.Assets.InitrdPath,
                ExtraKernelParameters = options.ExtraKernelParameters,
                Vcpus = options.Vcpus,
                MemoryMiB = options.MemoryMiB,
                Acceleration = options.Acceleration,
                VsockMode = options.VsockMode,
                MachineType = options.MachineType,
                SharedDirectory = state.SharedDirectory,
                VmmPath = options.VmmPath,
                VhostDeviceVsockPath = options.VhostDeviceVsockPath,
                Debug = options.Debug,
                NetworkNamespacePath = options.Network?.NetworkNamespacePath,
                NetworkInterfaces = nics.Select(nic => new VmNetworkInterface(nic.TapName, nic.Mac)).ToList(),
                CgroupProcsFiles = hostCgroup?.ProcsFiles ?? [],
                JailerPath = options.JailerPath,
                ShareAllowsSetId = options.ShareAllowsSetId,
                Template = clone?.Role,
            };
            await hypervisor.PrepareAsync(config, cancellationToken);
            phases.Mark("prepare");
            using (await TakeBootSlotAsync(options, cancellationToken))
            {
                await hypervisor.StartAsync(cancellationToken);
                phases.Mark(clone is null ? "QEMU started" : "QEMU restored");
                agent = new AgentConnection(DialerFor(hypervisor.AgentEndpoint), options.SandboxId);
                WriteMetadata(state, options, hypervisor, clone);
                // A clone's agent was listening when its template was saved, so its first call is CreateSandbox: under
                // TCG every call into a restored guest runs freshly translated code, and a Health first cost one more
                // such round trip. A clone that does not answer fails CreateSandbox and boots cold (VmSandboxBackend).
                if (clone is null)
                {
                    await AgentReadiness.WaitAsync(hypervisor, agent, options.SandboxId, options.AgentReadyTimeout, cancellationToken);
                    phases.Mark("agent ready");
                }
            }
            // The guest has long copied both images into its memory; this runs beside the sandbox set-up below.
            bootImagesReleased = ReleaseBootImagesAsync(hypervisor);
            await agent.Client.CreateSandboxAsync(new CreateSandboxRequest
            {
                SandboxId = options.SandboxId,
                Hostname = options.Hostname ?? "",
                ShareMountTag = config.ShareMountTag,
                SharedMountPoint = GuestSharedMountPoint,
                DebugConsole = options.DebugConsole,
                // a clone resumes with its template's random generator and clock: both are refreshed from the host
                Entropy = Google.Protobuf.ByteString.CopyFrom(HostRandomBytes(GuestEntropyBytes)),
                HostTimeUnixNanos = (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).Ticks * 100,
                // a clone's cards have the template's placeholder addresses until the agent sets the pod's
                NetworkCardMacs = { clone is null ? [] : nics.Select(nic => nic.Mac) },
            }, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: cancellationToken);
            phases.Mark("CreateSandbox");
            PodPortForwarder? portForwarder = null;
            if (options.Network is not null)
            {
                await GuestNetworkClient.ApplyAsync(agent.Client, options.Network, cancellationToken);
                portForwarder = await StartPortForwarderAsync(options.SandboxId, options.Network, agent, cancellationToken);
                phases.Mark("guest network");
            }
            return new SandboxVm(state, hypervisor, agent, options.Network, portForwarder, bootImagesReleased, hostCgroup, options, clone)
            {
                BootPhases = phases.Describe(),
            };
        }
        catch (Exception e)
        {
            agent?.Dispose();
            await bootImagesReleased;
            await hypervisor.StopAsync(CancellationToken.None);
            clone?.Release();
            WritePostMortem(options.PostMortems, options.Journal, state, PostMortemRecord.BootFailedPrefix + FirstLine(e.Message), failed: true, e.Message);
            TryDeleteState(state);
            if (options.Network is not null)
                await TryTearDownAsync(options.Network);
            if (hostCgroup is not null)
                await RemoveHostCgroupAsync(hostCgroup);
            throw;
        }
    }

    /// <summary>A boot slot (<see cref="SandboxVmOptions.BootSlots"/>), or nothing to hold when there is no limit.</summary>
    private static async Task<IDisposable?> TakeBootSlotAsync(SandboxVmOptions options, CancellationToken cancellationToken)
    {
        if (options.BootSlots is not { } slots)
            return null;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        bool waited = false;
        var slot = await slots.AcquireAsync(() =>
        {
            waited = true;
            options.Log?.Invoke($"sandbox {options.SandboxId}: {slots.Count} VM(s) are booting on this host already (runtime.boot_concurrency = {slots.Count}); " +
                                "waiting for one to finish before starting QEMU");
        }, cancellationToken);
        if (waited)
            options.Log?.Invoke($"sandbox {options.SandboxId}: boot slot {slot.Number} free after {clock.Elapsed.TotalSeconds:0.0} s; starting QEMU");
        return slot;
    }

    /// <summary>
    /// Port-forward into the VM (<see cref="PodPortForwarder"/>). Without it the pod works, only `kubectl
    /// port-forward` to it is refused: a failure is logged with its cause, not fatal.
    /// </summary>
    private static async Task<PodPortForwarder?> StartPortForwarderAsync(string sandboxId, PodNetwork network, AgentConnection agent,
        CancellationToken cancellationToken)
    {
        try
        {
            return await PodPortForwarder.StartAsync(sandboxId, network.NetworkNamespacePath, agent.Client, cancellationToken);
        }
        catch (PodNetworkException e)
        {
            Console.Error.WriteLine($"{e.Message}\nsandbox {sandboxId}: port-forward into the VM is off, so `kubectl port-forward` to this pod is refused; " +
                                    "check that iptables works in network namespaces (Debian's iptables, the kernel's nf_nat)");
            return null;
        }
    }

    private static async Task<string> ReleaseBootImagesAsync(IHypervisor hypervisor)
    {
        try
        {
            return await hypervisor.ReleaseBootImagesAsync(CancellationToken.None);
        }
        catch (Exception e)
        {
            // Only memory is at stake: the sandbox works the same with the images resident.
            return "boot images left resident: " + e.Message;
        }
    }

    public static IAgentDialer DialerFor(AgentEndpoint endpoint) => endpoint switch
    {
        HybridVsockEndpoint hybrid => new HybridVsockDialer(hybrid.SocketPath, hybrid.Port),
        KernelVsockEndpoint kernel => new KernelVsockDialer(kernel.Cid, kernel.Port),
        VirtioSerialEndpoint serial => new VirtioSerialDialer(serial.SocketPath),
        _ => throw new NotSupportedException($"agent endpoint {endpoint} has no dialer"),
    };

    /// <summary>
    /// The sandbox's record in its state directory (sandbox.json, which `sandboxctl list` and `delete` read). Written
    /// twice: before the host cgroup is created, with the VMM's fields "pending" (<paramref name="hypervisor"/> null),
    /// so that a shim killed from then on leaves a cgroup that `delete` can find (issue 15's soak: killed 0.3 s into
    /// `ctr run`, it left the cgroup in every hierarchy); then once the VMM runs.
    /// </summary>
    private static void WriteMetadata(SandboxStateDirectory state, SandboxVmOptions options, IHypervisor? hypervisor, Templates.TemplateClone? clone)
    {
        const string pending = "pending";
        var caps = hypervisor?.Capabilities;
        new SandboxMetadata
        {
            SandboxId = options.SandboxId,
            CreatedAt = DateTimeOffset.UtcNow,
            VmmPid = hypervisor?.Pid,
            Hypervisor = caps?.Name ?? pending,
            Acceleration = caps?.Acceleration.ToString().ToLowerInvariant() ?? pending,
            VsockMode = caps?.VsockMode.ToString().ToLowerInvariant() ?? pending,
            AgentEndpoint = hypervisor is null ? pending : DialerFor(hypervisor.AgentEndpoint).Description,
            AgentSocketPath = (hypervisor?.AgentEndpoint as HybridVsockEndpoint)?.SocketPath,
            AgentCid = (hypervisor?.AgentEndpoint as KernelVsockEndpoint)?.Cid,
            AgentPort = hypervisor?.AgentEndpoint.Port,
            ConsoleLog = hypervisor?.ConsoleLogPath ?? pending,
            KernelPath = options.Assets.KernelPath,
            InitrdPath = options.Assets.InitrdPath,
            Vcpus = options.Vcpus,
            MemoryMiB = options.MemoryMiB,
            HostCgroup = options.HostCgroupPath,
            HostCgroupMemoryLimit = options.HostCgroupMemoryLimit,
            Confinement = DescribeConfinement(options),
            Start = clone?.Describe() ?? "booted",
            // tools (sandboxctl) get the second port: the shim holds the first
            AgentSerialSocket = (hypervisor?.AgentEndpoint as VirtioSerialEndpoint)?.ToolsSocketPath,
        }.Write(state.MetadataFile);
    }

    /// <summary>What <see cref="SandboxMetadata.Confinement"/> says for these options.</summary>
    public static string DescribeConfinement(SandboxVmOptions options) => options.JailerPath is null
        ? "unconfined (no_new_privs, QEMU's seccomp filter; [hypervisor.qemu] confine = false)"
        : $"jailed (mount namespace, seccomp, no_new_privs, uid 0 with {string.Join(",", Hypervisors.Jail.QemuJail.ShareCapabilities)}" +
          (options.ShareAllowsSetId ? "; setuid files allowed in the share)" : "; setuid files refused in the share)");

    /// <summary>Tears the guest down politely (DestroySandbox, short deadline), stops the VM, removes the state directory.
    /// DestroySandbox is more than a courtesy: it stops the containers and unmounts the 9p share, which writes back pages
    /// that containers dirtied through shared mmaps of files on read-write volumes (cache=mmap keeps those in the guest);
    /// killing QEMU first could lose them.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1)
            return;
        var phases = new PhaseClock();
        await DestroyGuestAsync(cancellationToken);
        phases.Mark("DestroySandbox");
        if (_portForwarder is not null)
            await _portForwarder.DisposeAsync();
        Agent.Dispose();
        await BootImagesReleased;
        await Hypervisor.StopAsync(cancellationToken);
        _clone?.Release();
        phases.Mark("QEMU stopped");
        // QEMU and its helpers are gone: their cgroup can go
        if (HostCgroup is not null)
            await RemoveHostCgroupAsync(HostCgroup);
        WritePostMortem(_postMortems, _journal, State, _end.Reason, _end.Failed, error: null);
        TryDeleteState(State);
        phases.Mark("cgroup, record and state");
        // After QEMU is gone; each ip/tc command has its own timeout, so the teardown is not cut short. containerd may
        // already have removed the namespace (CRI's StopPodSandbox does, racing the shim's exit): nothing is left then.
        if (Network is not null)
        {
            await TryTearDownAsync(Network);
            phases.Mark("network");
        }
        StopPhases = phases.Describe();
    }

    /// <summary>The guest's half of the stop, once (StopAsync runs it unless it ran before): DestroySandbox with a
    /// short deadline, which stops every container and unmounts the share. The VM keeps running.</summary>
    public async Task DestroyGuestAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _guestDestroyed, 1) == 1)
            return;
        try
        {
            await Agent.Client.DestroySandboxAsync(new DestroySandboxRequest(),
                deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancellationToken);
        }
        catch (Grpc.Core.RpcException)
        {
            // The guest is going away regardless; a dead or wedged agent must not block the stop.
        }
    }

    /// <summary>After QEMU and its helpers exited: the leaf cgroup goes (its parents belong to the kubelet or containerd).</summary>
    private static async Task RemoveHostCgroupAsync(PodHostCgroup cgroup)
    {
        var left = await cgroup.RemoveAsync(TimeSpan.FromSeconds(10), CancellationToken.None);
        if (left.Count > 0)
            Console.Error.WriteLine($"sandbox {cgroup.SandboxId}: its host cgroup could not be removed (pids still in it: " +
                                    $"{string.Join(' ', cgroup.Pids())}):\n  {string.Join("\n  ", left)}");
    }

    /// <summary>For a failed boot the boot's own error is the one to report; at a stop, nothing may keep the rest of the
    /// clean-up from running.</summary>
    private static async Task TryTearDownAsync(PodNetwork network)
    {
        try
        {
            await network.TearDownAsync(CancellationToken.None);
        }
        catch (PodNetworkException e)
        {
            Console.Error.WriteLine(e.Message);
        }
        catch (IOException e)
        {
            // seen when containerd removes the namespace while the teardown reads it
            Console.Error.WriteLine($"sandbox {network.SandboxId}: pod network in {network.NetworkNamespacePath}: teardown failed " +
                                    $"({(File.Exists(network.NetworkNamespacePath) ? "the namespace is still there" : "the namespace is gone")}): {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>The record of the sandbox, just before its state directory goes; the journal stops writing there.</summary>
    private static void WritePostMortem(PostMortemStore? store, SandboxJournal? journal, SandboxStateDirectory state, string reason,
        bool failed, string? error)
    {
        if (store?.Write(PostMortemRecord.Capture(state, reason, failed, error, journal?.Recent())) is { } problem)
            Console.Error.WriteLine(problem);
        journal?.Detach();
    }

    private static string FirstLine(string text) => text.Split('\n', 2)[0];

    private static void TryDeleteState(SandboxStateDirectory state)
    {
        try
        {
            state.Delete();
        }
        catch (IOException e)
        {
            Console.Error.WriteLine(e.Message);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None);
        await Hypervisor.DisposeAsync();
    }
}
