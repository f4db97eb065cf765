using System.Diagnostics;
using System.Text.Json.Nodes;
using Grpc.Core;
using Sandbox.Cri.Tests.Api;
using Sandbox.Cri.Tests.Client;
using Sandbox.Hypervisors.Processes;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Cri.Tests.Fixture;

/// <summary>
/// A private containerd with its CRI plugin, as a kubelet would find it: runtime handlers `runc`
/// (io.containerd.runc.v2, the reference) and `sandbox` (io.containerd.sandbox.v2, containerd-shim-sandbox-v2 with
/// its configuration through the runtime options' ConfigPath), a CNI bridge network of its own, the busybox image and a
/// pause image imported into k8s.io (nothing is pulled). Pods are run with <see cref="Handler"/>.
/// Two pods are shared by the tests that only look: <see cref="SharedPodAsync"/> (containers "server" with a
/// read-write hostPath volume and a read-only file, and "client") and <see cref="NeighbourPodAsync"/>. They are
/// removed through CRI, and checked for leftovers, when the fixture is disposed; then containerd is stopped and its
/// directory, the bridge, runc state, any leftover VM and network namespace are removed.
/// </summary>
public abstract class CriFixture : IAsyncLifetime
{
    public const string RuncHandler = "runc";
    public const string SandboxHandler = "sandbox";
    /// <summary>The same runtime with a configuration of its own (<see cref="ColdShimConfigurationPath"/>) that
    /// <see cref="UseTemplatesAsync"/> leaves alone: its pods boot cold while the others start from a template.</summary>
    public const string SandboxColdHandler = "sandbox-cold";

    /// <summary>
    /// containerd 2.x only: the same shim with `sandboxer = "shim"`, so that CRI starts the pod through the shim's
    /// Sandbox API (no pause container).
    /// </summary>
    public const string SandboxApiHandler = "sandbox-api";
    public const string PodNamespace = "cri-tests";
    public const int ServerPort = 8080;
    public const string ServerPage = "hello-from-pod";
    public const string SettingsText = "setting=1\n";
    public const int ExecTimeoutSeconds = 60;

    /// <summary>Default deadline of every CRI call: RunPodSandbox boots a VM under TCG with the sandbox handler.</summary>
    public static readonly TimeSpan CallDeadline = TimeSpan.FromMinutes(3);

    private readonly List<TestPod> _livePods = new();
    private readonly List<TestPod> _allPods = new();
    private readonly Dictionary<string, Task<TestPod>> _sharedPods = new(StringComparer.Ordinal);
    private readonly List<string> _timings = new();
    private bool _disposed;

    protected CriFixture(string handler)
    {
        Handler = handler;
    }

    /// <summary>The runtime handler this fixture's pods run with.</summary>
    public string Handler { get; }

    /// <summary>Everything of this fixture except containerd's own directory: configs, sandbox state, logs, volumes.</summary>
    public string Directory { get; private set; } = "";

    /// <summary>The shim's runtime.state_root: one directory per pod (VM files).</summary>
    public string StateRoot => Path.Combine(Directory, "s");

    /// <summary>Root of the runc handler (runtime option Root), instead of /run/containerd/runc.</summary>
    public string RuncRoot => Path.Combine(Directory, "runc");

    public string ShimConfigurationPath => Path.Combine(Directory, "configuration.toml");

    /// <summary>The <see cref="SandboxColdHandler"/>'s configuration: the same as <see cref="ShimConfigurationPath"/>'s
    /// at the start, never switched to templates.</summary>
    public string ColdShimConfigurationPath => Path.Combine(Directory, "configuration-cold.toml");

    public PrivateContainerd Containerd { get; private set; } = null!;

    public CniBridgeNetwork Network { get; private set; } = null!;

    public CriConnection Cri { get; private set; } = null!;

    public string Image => BusyboxOciImage.DefaultName;

    /// <summary>
    /// The pods' cgroup_parent, as a kubelet passes one: unique to this fixture, so that the cgroups CRI's runtime
    /// makes (cgroup v1 here: one per controller) can be checked per pod and removed at the end.
    /// </summary>
    public string CgroupParent { get; } = "/sbx-cri-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>A file on the host, outside anything shared with a pod, that no pod may read.</summary>
    public string HostMarkerPath { get; private set; } = "";

    /// <summary>The neighbour pod's container sleeps this many seconds: a marker for its process.</summary>
    public string NeighbourSleepMarker { get; } = Random.Shared.Next(10_000_000, 99_999_999).ToString();

    /// <summary>The name of the file in the neighbour pod's volume (and part of its directory's name).</summary>
    public string NeighbourSecretName { get; } = "secret-" + Guid.NewGuid().ToString("N")[..12];

    /// <summary>How long the CRI calls that make pods and containers took ("RunPodSandbox shared: 812 ms").</summary>
    public IReadOnlyList<string> Timings
    {
        get { lock (_timings) return _timings.ToArray(); }
    }

    public IReadOnlyList<TestPod> LivePods
    {
        get { lock (_livePods) return _livePods.ToArray(); }
    }

    public async Task InitializeAsync()
    {
        foreach (var program in new[] { "containerd", "ctr", "runc", "ip" })
        {
            if (FindOnPath(program) is null)
                throw new InvalidOperationException($"{program} is not on PATH: the CRI tests need containerd, runc and iproute2 (images/setup-host.sh installs them)");
        }
        CniBridgeNetwork.EnsurePluginsInstalled();

        // short: the shim's VM sockets live in <state root>/<64-hex pod id>/ and a Unix socket path has 108 bytes
        Directory = System.IO.Directory.CreateTempSubdirectory("c").FullName;
        try
        {
            HostMarkerPath = Path.Combine(Path.GetTempPath(), $"sbx-cri-host-marker-{Guid.NewGuid():N}.txt");
            await File.WriteAllTextAsync(HostMarkerPath, "host-only\n");
            Network = await CniBridgeNetwork.CreateAsync(System.IO.Directory.CreateDirectory(Path.Combine(Directory, "cni")).FullName);
            await File.WriteAllTextAsync(ShimConfigurationPath, ShimConfiguration());
            await File.WriteAllTextAsync(ColdShimConfigurationPath, ShimConfiguration());

            var release = await ContainerdRelease.DetectAsync();
            var options = new PrivateContainerdOptions
            {
                EnableCri = true,
                ExtraConfigToml = release.ConfigVersion >= 3 ? CriConfigurationVersion3() : CriConfigurationVersion2(),
            };
            options.Shims[ShimBinary.FileName] = ShimBinary.Locate();
            if (CheckoutGuestDirectory() is { } guest)
                options.Environment["SANDBOX_GUEST_DIR"] = guest;
            options.Environment["SANDBOX_CONFIG"] = ShimConfigurationPath; // the sandbox-api handler has no ConfigPath option
            Containerd = await PrivateContainerd.StartAsync(options);

            string busybox = Path.Combine(Directory, "busybox.tar");
            string pause = Path.Combine(Directory, "pause.tar");
            BusyboxOciImage.Build(busybox);
            PauseImage.DeriveFrom(busybox, pause);
            await Containerd.ImportImageAsync(busybox, "k8s.io");
            await Containerd.ImportImageAsync(pause, "k8s.io");

            Cri = CriConnection.Open(Containerd.GrpcAddress, CallDeadline);
            await WaitUntilReadyAsync();
        }
        catch (Exception failure)
        {
            try
            {
                await DisposeAsync();
            }
            catch (Exception teardown)
            {
                throw new AggregateException($"the CRI fixture ({Handler}) did not start, and its teardown failed too", failure, teardown);
            }
            throw;
        }
    }

    /// <summary>
    /// The pod most tests share: hostname "shared-&lt;handler&gt;", containers "server" (busybox httpd on
    /// <see cref="ServerPort"/>, writes "server-started" to stdout and "server-stderr" to stderr, mounts
    /// &lt;volumes&gt;/data read-write at /data and &lt;volumes&gt;/settings.txt read-only at /etc/app/settings.txt)
    /// and "client" (sleeps). Created on first use; a failure is kept and reported to every test that needs it.
    /// </summary>
    public Task<TestPod> SharedPodAsync() => Once("shared", CreateSharedPodAsync);

    /// <summary>A second pod: container "keeper" sleeps <see cref="NeighbourSleepMarker"/> s with /secret mounted.</summary>
    public Task<TestPod> NeighbourPodAsync() => Once("neighbour", CreateNeighbourPodAsync);

    /// <summary>
    /// RunPodSandbox with a hostname, a log directory and the pod network (and the pod's resources, as a kubelet
    /// passes the sum of its containers' limits); reads back IP and namespace.
    /// </summary>
    public Task<TestPod> RunPodAsync(string name, LinuxContainerResources? resources = null, bool privileged = false) =>
        RunPodAsync(name, resources, privileged, NamespaceMode.Pod);

    /// <summary>The same with the pod's network namespace mode (NODE: hostNetwork), another of this containerd's
    /// handlers than the fixture's own (null: <see cref="Handler"/>), for a node that mixes runtimes, and another
    /// cgroup_parent (null: <see cref="CgroupParent"/>; the caller removes what it names).</summary>
    public async Task<TestPod> RunPodAsync(string name, LinuxContainerResources? resources, bool privileged, NamespaceMode network,
        string? handler = null, string? cgroupParent = null)
    {
        handler ??= Handler;
        string logDirectory = System.IO.Directory.CreateDirectory(Path.Combine(Directory, "logs", name)).FullName;
        string volumes = System.IO.Directory.CreateDirectory(Path.Combine(Directory, "volumes", name)).FullName;
        var config = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = name, Uid = Guid.NewGuid().ToString(), Namespace = PodNamespace },
            Hostname = network == NamespaceMode.Node ? "" : $"{name}-{handler}", // the host's UTS namespace: no hostname of its own
            LogDirectory = logDirectory,
            Labels = { ["sandbox.test/pod"] = name },
            Linux = new LinuxPodSandboxConfig
            {
                CgroupParent = cgroupParent ?? CgroupParent,
                Resources = resources,
                SecurityContext = new LinuxSandboxSecurityContext
                {
                    NamespaceOptions = new NamespaceOption { Network = network, Pid = NamespaceMode.Container, Ipc = NamespaceMode.Pod },
                    Privileged = privileged,
                },
            },
        };
        var watch = Stopwatch.StartNew();
        var response = await CallAsync($"RunPodSandbox of pod {name} with handler {handler}",
            () => Cri.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config, RuntimeHandler = handler }).ResponseAsync);
        Record($"RunPodSandbox {name}", watch);
        var pod = new TestPod(name, response.PodSandboxId, config, volumes);
        lock (_livePods)
        {
            _livePods.Add(pod);
            _allPods.Add(pod);
        }

        var status = await PodStatusAsync(pod, verbose: true);
        pod.Ip = status.Status.Network?.Ip ?? "";
        if (status.Info.TryGetValue("info", out var infoJson) && JsonNode.Parse(infoJson) is JsonObject info)
        {
            pod.SandboxPid = info["pid"]?.GetValue<int>() ?? 0;
            pod.SandboxPidStartTime = PodLeftovers.StartTimeOf(pod.SandboxPid) ?? "";
            // the pause container's spec (podsandbox mode), or the sandbox shim's own status (Sandbox API mode)
            pod.NetworkNamespacePath = info["runtimeSpec"]?["linux"]?["namespaces"]?.AsArray()
                .FirstOrDefault(ns => (string?)ns?["type"] == "network")?["path"]?.GetValue<string>()
                ?? info["networkNamespace"]?.GetValue<string>() ?? "";
        }
        return pod;
    }

    /// <summary>CreateContainer + StartContainer of a busybox container logging to &lt;name&gt;.log.</summary>
    public async Task<string> StartContainerAsync(TestPod pod, string name, IEnumerable<string> command, IEnumerable<Mount>? mounts = null,
        bool privileged = false, LinuxContainerResources? resources = null)
    {
        var config = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = name },
            Image = new ImageSpec { Image = Image },
            Command = { command },
            LogPath = name + ".log",
            Labels = { ["sandbox.test/container"] = name },
            Linux = new LinuxContainerConfig
            {
                SecurityContext = new LinuxContainerSecurityContext
                {
                    NamespaceOptions = new NamespaceOption
                    {
                        Network = pod.Config.Linux.SecurityContext.NamespaceOptions.Network, Pid = NamespaceMode.Container, Ipc = NamespaceMode.Pod,
                    },
                    Privileged = privileged,
                },
                Resources = resources,
            },
        };
        if (mounts is not null)
            config.Mounts.Add(mounts);
        var watch = Stopwatch.StartNew();
        var created = await CallAsync($"CreateContainer {name} in {pod}",
            () => Cri.Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = pod.Id, Config = config, SandboxConfig = pod.Config }).ResponseAsync);
        pod.Containers[name] = created.ContainerId;
        await CallAsync($"StartContainer {name} ({created.ContainerId}) in {pod}",
            () => Cri.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = created.ContainerId }).ResponseAsync);
        Record($"CreateContainer+StartContainer {pod.Name}/{name}", watch);
        return created.ContainerId;
    }

    public async Task<ExecResult> ExecAsync(TestPod pod, string container, params string[] command)
    {
        var response = await CallAsync($"ExecSync `{string.Join(' ', command)}` in container {container} of {pod}",
            () => Cri.Runtime.ExecSyncAsync(new ExecSyncRequest
            {
                ContainerId = pod.ContainerId(container),
                Cmd = { command },
                Timeout = ExecTimeoutSeconds,
            }).ResponseAsync);
        return new ExecResult(container, command, response.ExitCode, response.Stdout.ToStringUtf8(), response.Stderr.ToStringUtf8());
    }

    public Task<PodSandboxStatusResponse> PodStatusAsync(TestPod pod, bool verbose = false) =>
        CallAsync($"PodSandboxStatus of {pod}",
            () => Cri.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = pod.Id, Verbose = verbose }).ResponseAsync);

    public async Task<ContainerStatus> ContainerStatusAsync(TestPod pod, string container) =>
        (await CallAsync($"ContainerStatus of {container} in {pod}",
            () => Cri.Runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = pod.ContainerId(container) }).ResponseAsync)).Status;

    /// <summary>StopPodSandbox then RemovePodSandbox, as the kubelet does.</summary>
    public async Task StopAndRemovePodAsync(TestPod pod)
    {
        await CallAsync($"StopPodSandbox of {pod}",
            () => Cri.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod.Id }).ResponseAsync);
        await CallAsync($"RemovePodSandbox of {pod}",
            () => Cri.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod.Id }).ResponseAsync);
        Forget(pod);
    }

    /// <summary>After RemovePodSandbox: the pod is no longer expected to hold anything.</summary>
    public void Forget(TestPod pod)
    {
        lock (_livePods)
            _livePods.Remove(pod);
    }

    /// <summary>Runs a CRI call; a failure names the call, the pod or container, and shows containerd's log tail.</summary>
    public async Task<T> CallAsync<T>(string what, Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (RpcException e)
        {
            throw new CriCallException($"CRI {what} failed: {e.StatusCode}: {e.Status.Detail}\n--- containerd log: last info/warning/error lines (the shim's are tagged runtime={Handler}) ---\n{LogTail(40)}", e);
        }
    }

    private void Record(string what, Stopwatch watch)
    {
        lock (_timings)
            _timings.Add($"{what}: {watch.ElapsedMilliseconds} ms");
    }

    /// <summary>containerd's last lines above debug level (CRI, the shims' own log lines), each cut at 700 characters.</summary>
    public string LogTail(int lines) =>
        string.Join('\n', (Containerd?.Log ?? "").Split('\n')
            .Where(line => !line.Contains("level=debug", StringComparison.Ordinal))
            .TakeLast(lines)
            .Select(line => line.Length > 700 ? line[..700] + " …" : line));

    public async Task DisposeAsync()
    {
        if (_disposed || Directory.Length == 0) // nothing was made before the private directory
            return;
        _disposed = true;
        var problems = new List<string>();
        foreach (var pod in LivePods)
        {
            try
            {
                await StopAndRemovePodAsync(pod);
                var leftovers = await PodLeftovers.WaitUntilGoneAsync(this, pod);
                if (leftovers.Count > 0)
                    problems.Add($"{pod} left behind after RemovePodSandbox:\n  " + string.Join("\n  ", leftovers));
            }
            catch (Exception e)
            {
                problems.Add($"removing {pod} failed: {e.Message}");
            }
        }
        Cri?.Dispose();
        if (Containerd is not null)
        {
            // every pod is gone: no shim of this containerd may run, and the sandbox shim's socket directory is empty
            for (int i = 0; i < 100 && (Containerd.LeftoverShimProcesses().Count > 0 || Containerd.LeftoverShimSockets().Count > 0); i++)
                await Task.Delay(100);
            problems.AddRange(Containerd.LeftoverShimProcesses().Select(pid => $"shim process {pid} still runs after every pod was removed"));
            problems.AddRange(Containerd.LeftoverShimSockets().Select(socket => $"shim socket {socket} is left after every pod was removed"));
            await Containerd.DisposeAsync();
            if (problems.Count > 0 && Environment.GetEnvironmentVariable(PrivateContainerd.KeepLogVariable) is null)
                problems.Add("set " + PrivateContainerd.KeepLogVariable + "=DIR to keep containerd's log");
        }
        await RemoveRuncContainersAsync();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            await LeftoverVmProcesses.KillAsync(StateRoot, timeout.Token);
        foreach (var pod in _allPods.Where(p => p.NetworkNamespacePath.Length > 0 && File.Exists(p.NetworkNamespacePath)))
        {
            problems.Add($"{pod}: network namespace {pod.NetworkNamespacePath} was still there at the end");
            await ExternalCommand.RunAsync("ip", new[] { "netns", "delete", Path.GetFileName(pod.NetworkNamespacePath) }, TimeSpan.FromSeconds(30));
        }
        problems.AddRange(RemoveCgroupParent());
        if (Network is not null)
            await Network.DisposeAsync();
        foreach (var mountPoint in MountPointsBelow(Directory).OrderByDescending(m => m.Length))
            await ExternalCommand.RunAsync("umount", new[] { "-l", mountPoint }, TimeSpan.FromSeconds(30));
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException e)
        {
            problems.Add($"{Directory} could not be removed: {e.Message}");
        }
        if (HostMarkerPath.Length > 0)
            File.Delete(HostMarkerPath);
        if (problems.Count > 0)
            throw new InvalidOperationException($"CRI fixture ({Handler}) teardown found problems:\n" + string.Join('\n', problems));
    }

    public static IReadOnlyList<string> MountPointsBelow(string directory) =>
        !Path.IsPathFullyQualified(directory) || Path.TrimEndingDirectorySeparator(directory) == "/"
            ? throw new ArgumentException($"not a private directory: '{directory}'", nameof(directory))
            : File.ReadAllLines("/proc/self/mountinfo")
            .Select(line => line.Split(' ')[4])
            .Where(mountPoint => mountPoint.StartsWith(directory + "/", StringComparison.Ordinal))
            .ToArray();

    private async Task<TestPod> CreateSharedPodAsync()
    {
        var pod = await RunPodAsync("shared");
        string data = System.IO.Directory.CreateDirectory(Path.Combine(pod.VolumeDirectory, "data")).FullName;
        string settings = Path.Combine(pod.VolumeDirectory, "settings.txt");
        await File.WriteAllTextAsync(settings, SettingsText);
        await StartContainerAsync(pod, "server",
            new[]
            {
                "sh", "-c",
                $"echo server-started; echo server-stderr >&2; busybox mkdir -p /www; echo {ServerPage} > /www/index.html; " +
                $"exec busybox httpd -f -p {ServerPort} -h /www",
            },
            new[]
            {
                new Mount { ContainerPath = "/data", HostPath = data },
                new Mount { ContainerPath = "/etc/app/settings.txt", HostPath = settings, Readonly = true },
            });
        await StartContainerAsync(pod, "client", new[] { "sh", "-c", "echo client-started; exec sleep 2147483647" });
        return pod;
    }

    private async Task<TestPod> CreateNeighbourPodAsync()
    {
        var pod = await RunPodAsync("neighbour");
        string secret = System.IO.Directory.CreateDirectory(Path.Combine(pod.VolumeDirectory, NeighbourSecretName)).FullName;
        await File.WriteAllTextAsync(Path.Combine(secret, NeighbourSecretName + ".txt"), "neighbour-only\n");
        await StartContainerAsync(pod, "keeper", new[] { "sleep", NeighbourSleepMarker },
            new[] { new Mount { ContainerPath = "/secret", HostPath = secret } });
        return pod;
    }

    /// <summary>Tests run one after another, but the creation is still started only once.</summary>
    private Task<TestPod> Once(string name, Func<Task<TestPod>> create)
    {
        lock (_sharedPods)
        {
            if (!_sharedPods.TryGetValue(name, out var pod))
                _sharedPods[name] = pod = create();
            return pod;
        }
    }

    private async Task WaitUntilReadyAsync()
    {
        var version = await CallAsync("Version", () => Cri.Runtime.VersionAsync(new VersionRequest { Version = "v1" }).ResponseAsync);
        if (version.RuntimeApiVersion != "v1")
            throw new InvalidOperationException($"containerd's CRI speaks {version.RuntimeApiVersion}, not v1");
        // CRI loads the CNI conflist at start; the images it sees through containerd's events after the import
        var watch = Stopwatch.StartNew();
        string state = "";
        while (watch.Elapsed < TimeSpan.FromSeconds(60))
        {
            var status = await CallAsync("Status", () => Cri.Runtime.StatusAsync(new StatusRequest()).ResponseAsync);
            bool ready = status.Status.Conditions.All(c => c.Status);
            var images = await Task.WhenAll(new[] { Image, PauseImage.DefaultName }.Select(image =>
                CallAsync($"ImageStatus {image}", () => Cri.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = image } }).ResponseAsync)));
            if (ready && images.All(i => i.Image is not null))
                return;
            state = string.Join(", ", status.Status.Conditions.Select(c => $"{c.Type}={c.Status} {c.Reason} {c.Message}")) +
                    "; images seen: " + string.Join(", ", images.Select(i => i.Image?.RepoTags.FirstOrDefault() ?? "(none)"));
            await Task.Delay(200);
        }
        throw new TimeoutException($"containerd's CRI did not become ready within 60 s: {state}\n{LogTail(60)}");
    }

    /// <summary>rmdir of the (by now empty) parent cgroup in every hierarchy; a busy one is a leftover.</summary>
    private IEnumerable<string> RemoveCgroupParent()
    {
        var problems = new List<string>();
        foreach (var cgroup in PodLeftovers.CgroupDirectories(CgroupParent).Where(System.IO.Directory.Exists))
        {
            try
            {
                System.IO.Directory.Delete(cgroup); // rmdir: cgroupfs refuses it while a child cgroup or a task is in it
            }
            catch (IOException e)
            {
                problems.Add($"cgroup {cgroup} could not be removed: {e.Message}");
            }
        }
        return problems;
    }

    private async Task RemoveRuncContainersAsync()
    {
        if (!System.IO.Directory.Exists(RuncRoot))
            return;
        foreach (var namespaceRoot in System.IO.Directory.GetDirectories(RuncRoot))
        {
            foreach (var container in System.IO.Directory.GetDirectories(namespaceRoot))
                await ExternalCommand.RunAsync("runc", new[] { "--root", namespaceRoot, "delete", "--force", Path.GetFileName(container) }, TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>The CRI plugin of containerd 1.6 and 1.7 (config.toml `version = 2`).</summary>
    private string CriConfigurationVersion2() => $"""
        [plugins."io.containerd.grpc.v1.cri"]
          sandbox_image = "{PauseImage.DefaultName}"
          restrict_oom_score_adj = true
          stream_server_address = "127.0.0.1"
          stream_server_port = "0"
          [plugins."io.containerd.grpc.v1.cri".containerd]
            default_runtime_name = "{RuncHandler}"
            [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{RuncHandler}]
              runtime_type = "io.containerd.runc.v2"
              [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{RuncHandler}.options]
                Root = "{RuncRoot}"
            [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{SandboxHandler}]
              runtime_type = "io.containerd.sandbox.v2"
              [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{SandboxHandler}.options]
                ConfigPath = "{ShimConfigurationPath}"
            [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{SandboxColdHandler}]
              runtime_type = "io.containerd.sandbox.v2"
              [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{SandboxColdHandler}.options]
                ConfigPath = "{ColdShimConfigurationPath}"
          [plugins."io.containerd.grpc.v1.cri".cni]
            bin_dir = "{CniBridgeNetwork.PluginDirectory}"
            conf_dir = "{Network.ConfigDirectory}"
            max_conf_num = 1
        {RegistryTable("""[plugins."io.containerd.grpc.v1.cri".registry]""")}
        """;

    /// <summary>
    /// The same for containerd 2.x (`version = 3`): the CRI plugin is split into images (the pause image is a pinned
    /// image), runtime (handlers, CNI) and the gRPC service (streaming).
    /// </summary>
    private string CriConfigurationVersion3() => $"""
        [plugins.'io.containerd.cri.v1.images'.pinned_images]
          sandbox = "{PauseImage.DefaultName}"
        {RegistryTable("[plugins.'io.containerd.cri.v1.images'.registry]")}

        [plugins.'io.containerd.cri.v1.runtime']
          restrict_oom_score_adj = true
          [plugins.'io.containerd.cri.v1.runtime'.containerd]
            default_runtime_name = "{RuncHandler}"
            [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{RuncHandler}]
              runtime_type = "io.containerd.runc.v2"
              [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{RuncHandler}.options]
                Root = "{RuncRoot}"
            [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{SandboxHandler}]
              runtime_type = "io.containerd.sandbox.v2"
              [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{SandboxHandler}.options]
                ConfigPath = "{ShimConfigurationPath}"
            [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{SandboxColdHandler}]
              runtime_type = "io.containerd.sandbox.v2"
              [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{SandboxColdHandler}.options]
                ConfigPath = "{ColdShimConfigurationPath}"
            # no options table: containerd 2.1's client takes any runtime options of a sandboxed container for runc's
            # (containerd#13360, fixed after 2.1), so the shim finds its configuration through $SANDBOX_CONFIG
            [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{SandboxApiHandler}]
              runtime_type = "io.containerd.sandbox.v2"
              sandboxer = "shim"
          [plugins.'io.containerd.cri.v1.runtime'.cni]
            bin_dirs = ["{CniBridgeNetwork.PluginDirectory}"]
            conf_dir = "{Network.ConfigDirectory}"
            max_conf_num = 1

        [plugins.'io.containerd.grpc.v1.cri']
          stream_server_address = "127.0.0.1"
          stream_server_port = "0"
        """;

    /// <summary>
    /// A registry hosts directory (containerd's hosts.toml layout: one folder per registry host) for CRI's image pulls,
    /// or null: nothing is pulled, the images are imported.
    /// </summary>
    protected virtual string? RegistryHostsDirectory => null;

    private string RegistryTable(string header) =>
        RegistryHostsDirectory is null ? "" : $"{header}\nconfig_path = \"{RegistryHostsDirectory}\"\n";

    /// <summary>Turns on [hypervisor.qemu] template = true in the shim configuration (each shim reads it as it starts)
    /// until the returned handle is disposed, which puts the configuration back.</summary>
    public async Task<IAsyncDisposable> UseTemplatesAsync()
    {
        string original = await File.ReadAllTextAsync(ShimConfigurationPath);
        await File.WriteAllTextAsync(ShimConfigurationPath, original.Contains("[hypervisor.qemu]\n", StringComparison.Ordinal)
            ? original.Replace("[hypervisor.qemu]\n", "[hypervisor.qemu]\ntemplate = true\n", StringComparison.Ordinal)
            : "[hypervisor.qemu]\ntemplate = true\n\n" + original);
        return new ConfigurationRestore(ShimConfigurationPath, original);
    }

    private sealed class ConfigurationRestore(string path, string original) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await File.WriteAllTextAsync(path, original);
    }

    /// <summary>The shim's configuration.toml: state under this fixture, the checkout's guest image when built.</summary>
    private string ShimConfiguration()
    {
        var text = new System.Text.StringBuilder();
        if (CheckoutGuestDirectory() is { } guest)
            text.Append($"[hypervisor.qemu]\nkernel = \"{guest}/vmlinux\"\ninitrd = \"{guest}/initramfs.cpio\"\n\n");
        text.Append("[agent]\nready_timeout = 120\nrpc_timeout = 60\n\n");
        text.Append($"[runtime]\nstate_root = \"{StateRoot}\"\n");
        return text.ToString();
    }

    /// <summary>build/guest of this checkout (`make image`), so that the tests boot the image built from these sources.</summary>
    private static string? CheckoutGuestDirectory() =>
        Sandbox.Runtime.Sandboxes.GuestAssets.CheckoutDirectory() is { } guest && File.Exists(Path.Combine(guest, "vmlinux")) ? guest : null;

    private static string? FindOnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, program)).FirstOrDefault(File.Exists);
}

/// <summary>Pods run with the runc handler (io.containerd.runc.v2): the reference.</summary>
public sealed class RuncCriFixture() : CriFixture(RuncHandler);

/// <summary>Pods run with the sandbox handler (containerd-shim-sandbox-v2): one VM per pod.</summary>
public sealed class SandboxCriFixture() : CriFixture(SandboxHandler);

/// <summary>Pods run with the sandbox-api handler (containerd 2.x's Sandbox API, sandboxer = "shim"): one VM per pod, no pause container.</summary>
public sealed class SandboxApiCriFixture() : CriFixture(SandboxApiHandler);
