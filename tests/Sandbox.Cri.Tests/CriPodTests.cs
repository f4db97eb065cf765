using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Grpc.Core;
using Sandbox.Cri.Tests.Api;
using Sandbox.Cri.Tests.Client;
using Sandbox.Cri.Tests.Fixture;
using Sandbox.Shim.Tests.Containerd;
using Xunit.Abstractions;

namespace Sandbox.Cri.Tests;

/// <summary>
/// Kubernetes pods through containerd's real CRI plugin, as a kubelet drives it, with one runtime handler per derived
/// class. Most tests look at the fixture's shared pod (two busybox containers, a pod network, volumes); the lifecycle
/// test runs its own pod and checks that nothing is left once it is removed. Needs root, containerd, runc,
/// containernetworking-plugins and busybox-static; the sandbox handler also QEMU, vhost-device-vsock and the guest image.
/// </summary>
public abstract class CriPodTests<TFixture>(TFixture fixture, ITestOutputHelper output) where TFixture : CriFixture
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    protected TFixture Fixture { get; } = fixture;

    protected ITestOutputHelper Output { get; } = output;

    protected RuntimeService.RuntimeServiceClient Runtime => Fixture.Cri.Runtime;

    [Fact]
    public async Task Version_and_status_report_containerd_speaking_v1_with_runtime_and_network_ready()
    {
        var version = await Runtime.VersionAsync(new VersionRequest { Version = "v1" });
        Assert.Equal("containerd", version.RuntimeName);
        Assert.Equal("v1", version.RuntimeApiVersion);
        Assert.False(string.IsNullOrEmpty(version.RuntimeVersion));

        var status = await Runtime.StatusAsync(new StatusRequest { Verbose = true });
        var conditions = status.Status.Conditions.ToDictionary(c => c.Type, c => c);
        Assert.True(conditions["RuntimeReady"].Status, conditions["RuntimeReady"].Message);
        Assert.True(conditions["NetworkReady"].Status, conditions["NetworkReady"].Message);
        Assert.NotEmpty(status.Info);
    }

    [Fact]
    public async Task Imported_images_are_listed_and_have_a_status_and_an_unknown_image_has_none()
    {
        var images = await Fixture.Cri.Images.ListImagesAsync(new ListImagesRequest());
        var tags = images.Images.SelectMany(i => i.RepoTags).ToArray();
        Assert.Contains(Fixture.Image, tags);
        Assert.Contains(PauseImage.DefaultName, tags);

        var busybox = await Fixture.Cri.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = Fixture.Image } });
        Assert.NotNull(busybox.Image);
        Assert.StartsWith("sha256:", busybox.Image.Id);
        Assert.True(busybox.Image.Size > 0);

        var unknown = await Fixture.Cri.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = "docker.io/library/no-such-image:none" } });
        Assert.Null(unknown.Image);
    }

    [Fact]
    public async Task Pod_is_ready_with_its_handler_hostname_and_an_address_on_the_pod_network()
    {
        var pod = await Fixture.SharedPodAsync();
        foreach (var timing in Fixture.Timings)
            Output.WriteLine(timing);

        var status = (await Fixture.PodStatusAsync(pod)).Status;
        Assert.Equal(PodSandboxState.SandboxReady, status.State);
        Assert.Equal(Fixture.Handler, status.RuntimeHandler);
        Assert.Equal("shared", status.Metadata.Name);
        Assert.True(IPAddress.TryParse(status.Network.Ip, out var ip), $"pod IP '{status.Network.Ip}'");
        Assert.True(Fixture.Network.Contains(ip), $"pod IP {ip} is not in the CNI network {Fixture.Network.Cidr}");
        Assert.NotEqual(Fixture.Network.Gateway, status.Network.Ip);

        var hostname = await Fixture.ExecAsync(pod, "server", "hostname");
        Assert.True(hostname.ExitCode == 0, hostname.ToString());
        Assert.Equal($"shared-{Fixture.Handler}", hostname.Stdout.Trim());

        // the pod's address is configured inside the pod (for the sandbox handler: on the VM's eth0)
        var addresses = await Fixture.ExecAsync(pod, "client", "busybox", "ip", "-o", "-4", "addr");
        Assert.True(addresses.ExitCode == 0, addresses.ToString());
        Assert.Contains($"inet {status.Network.Ip}/24", addresses.Stdout);
    }

    [Fact]
    public async Task Both_containers_run_and_are_listed_in_the_pod_with_their_mounts()
    {
        var pod = await Fixture.SharedPodAsync();

        var listed = await Runtime.ListContainersAsync(new ListContainersRequest { Filter = new ContainerFilter { PodSandboxId = pod.Id } });
        Assert.Equal(new[] { "client", "server" }, listed.Containers.Select(c => c.Metadata.Name).Order().ToArray());
        Assert.All(listed.Containers, c => Assert.Equal(ContainerState.ContainerRunning, c.State));

        var server = await Fixture.ContainerStatusAsync(pod, "server");
        Assert.Equal(ContainerState.ContainerRunning, server.State);
        Assert.True(server.StartedAt > 0);
        Assert.Equal(Fixture.Image, server.Image.Image);
        Assert.Equal(Path.Combine(pod.LogDirectory, "server.log"), server.LogPath);
        Assert.Contains(server.Mounts, m => m.ContainerPath == "/data" && !m.Readonly);
        Assert.Contains(server.Mounts, m => m.ContainerPath == "/etc/app/settings.txt" && m.Readonly);
    }

    [Fact]
    public async Task ExecSync_returns_the_exit_code_stdout_and_stderr()
    {
        var pod = await Fixture.SharedPodAsync();

        var failing = await Fixture.ExecAsync(pod, "server", "sh", "-c", "echo out; echo err >&2; exit 4");
        Assert.True(failing.ExitCode == 4, failing.ToString());
        Assert.Equal("out\n", failing.Stdout);
        Assert.Equal("err\n", failing.Stderr);

        var succeeding = await Fixture.ExecAsync(pod, "client", "sh", "-c", "echo \"$((6 * 7))\"");
        Assert.True(succeeding.ExitCode == 0, succeeding.ToString());
        Assert.Equal("42\n", succeeding.Stdout);
        Assert.Equal("", succeeding.Stderr);
    }

    [Fact]
    public async Task Containers_of_the_pod_reach_each_other_on_localhost()
    {
        var pod = await Fixture.SharedPodAsync();

        var fetched = await UntilAsync(
            () => Fixture.ExecAsync(pod, "client", "busybox", "wget", "-q", "-O", "-", $"http://127.0.0.1:{CriFixture.ServerPort}/"),
            result => result.ExitCode == 0,
            "the client container fetching the server container's page on 127.0.0.1");
        Assert.Equal(CriFixture.ServerPage + "\n", fetched.Stdout);
    }

    [Fact]
    public async Task The_host_reaches_the_pod_at_its_ip()
    {
        var pod = await Fixture.SharedPodAsync();
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(5) })
        {
            Timeout = TimeSpan.FromSeconds(10),
        };
        var url = $"http://{pod.Ip}:{CriFixture.ServerPort}/";

        var watch = Stopwatch.StartNew();
        int attempts = 0;
        string? body = null;
        Exception? last = null;
        while (body is null && watch.Elapsed < Patience)
        {
            attempts++;
            try
            {
                body = await http.GetStringAsync(url);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or SocketException)
            {
                last = e;
                await Task.Delay(200);
            }
        }
        Assert.True(body is not null, $"GET {url} from the host failed for {Patience.TotalSeconds} s: {last}");
        Output.WriteLine($"GET {url}: {attempts} attempt(s), {watch.ElapsedMilliseconds} ms");
        Assert.Equal(CriFixture.ServerPage + "\n", body);
    }

    /// <summary>
    /// What containerd's CRI does for PortForward (kubectl port-forward): it dials localhost:PORT inside the pod's
    /// network namespace on the host. With a VM the server is in the guest; the shim brings that connection there.
    /// </summary>
    [Fact]
    public async Task Localhost_in_the_pods_network_namespace_reaches_the_server_as_port_forward_does()
    {
        var pod = await Fixture.SharedPodAsync();
        Assert.False(string.IsNullOrEmpty(pod.NetworkNamespacePath), $"{pod}: no network namespace path in its status");

        var fetched = await UntilAsync(
            () => ExternalCommand.RunAsync("nsenter", [$"--net={pod.NetworkNamespacePath}", "/bin/busybox", "wget", "-q", "-O", "-", $"http://127.0.0.1:{CriFixture.ServerPort}/"],
                TimeSpan.FromSeconds(30)),
            result => result.ExitCode == 0,
            $"wget of 127.0.0.1:{CriFixture.ServerPort} in {pod.NetworkNamespacePath}");
        Assert.Equal(CriFixture.ServerPage + "\n", fetched.Stdout);

        // a port nothing listens on: the connection is refused or closed at once, not left hanging
        var nothing = await ExternalCommand.RunAsync("nsenter",
            [$"--net={pod.NetworkNamespacePath}", "/bin/busybox", "wget", "-q", "-T", "20", "-O", "-", "http://127.0.0.1:1/"], TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, nothing.ExitCode);
    }

    /// <summary>Privileged pods expect the kernel's bridge (Docker-in-pod, CNI inside a pod): the guest kernel loads it
    /// on first use, as the host does for runc.</summary>
    [Fact]
    public async Task A_privileged_container_can_create_a_network_bridge()
    {
        var pod = await Fixture.RunPodAsync("privileged", privileged: true);
        await Fixture.StartContainerAsync(pod, "admin", ["sleep", "2147483647"], privileged: true);

        var add = await Fixture.ExecAsync(pod, "admin", "busybox", "brctl", "addbr", "sbxtest0");
        Assert.True(add.ExitCode == 0, add.ToString());
        var show = await Fixture.ExecAsync(pod, "admin", "busybox", "ip", "link", "show", "sbxtest0");
        Assert.True(show.ExitCode == 0, show.ToString());
        await Fixture.StopAndRemovePodAsync(pod);
    }

    /// <summary>ContainerStats (kubectl top, the metrics server, the eviction manager): CPU and memory figures of a
    /// container, which grow when it works.</summary>
    [Fact]
    public async Task Container_stats_report_cpu_and_memory_that_grow_when_the_container_works()
    {
        var pod = await Fixture.SharedPodAsync();
        var before = await StatsAsync(pod, "client");
        Assert.True(before.Cpu.UsageCoreNanoSeconds?.Value > 0, $"CPU usage of {pod}/client: {before.Cpu}");
        Assert.True(before.Memory.WorkingSetBytes?.Value > 0, $"memory working set of {pod}/client: {before.Memory}");
        Assert.True(before.Memory.UsageBytes?.Value > 0, $"memory usage of {pod}/client: {before.Memory}");

        var work = await Fixture.ExecAsync(pod, "client", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done");
        Assert.True(work.ExitCode == 0, work.ToString());
        var after = await StatsAsync(pod, "client");
        Assert.True(after.Cpu.UsageCoreNanoSeconds.Value > before.Cpu.UsageCoreNanoSeconds.Value,
            $"CPU usage did not grow: {before.Cpu.UsageCoreNanoSeconds.Value} then {after.Cpu.UsageCoreNanoSeconds.Value} ns");
    }

    /// <summary>A container killed for exceeding its memory limit: exit code 137 and reason OOMKilled (containerd's CRI
    /// sets it from the runtime's /tasks/oom event).</summary>
    [Fact]
    public async Task A_container_over_its_memory_limit_ends_with_reason_OOMKilled()
    {
        var pod = await Fixture.RunPodAsync("oom");
        await Fixture.StartContainerAsync(pod, "hog", ["sh", "-c", "x=0123456789abcdef; while true; do x=$x$x; done"],
            resources: new LinuxContainerResources { MemoryLimitInBytes = 32 * 1024 * 1024 });
        var status = await UntilAsync(() => Fixture.ContainerStatusAsync(pod, "hog"),
            s => s.State == ContainerState.ContainerExited && s.Reason.Length > 0, $"the exit of {pod}/hog");
        Assert.Equal(137, status.ExitCode);
        Assert.Equal("OOMKilled", status.Reason);
        await Fixture.StopAndRemovePodAsync(pod);
    }

    /// <summary>UpdateContainerResources (in-place pod resize): the container's cgroup takes the new memory limit and
    /// CPU quota at once, without a restart.</summary>
    [Fact]
    public async Task Updated_limits_reach_the_running_containers_cgroup()
    {
        var pod = await Fixture.RunPodAsync("resize", new LinuxContainerResources { CpuPeriod = 100_000, CpuQuota = 100_000, MemoryLimitInBytes = 128L << 20 });
        try
        {
            await Fixture.StartContainerAsync(pod, "main", ["sleep", "2147483647"],
                resources: new LinuxContainerResources { CpuPeriod = 100_000, CpuQuota = 50_000, MemoryLimitInBytes = 64L << 20 });
            Assert.Equal((64L << 20).ToString(), await CgroupMemoryLimitAsync(pod, "main"));

            await UpdateResourcesAsync(pod, "main", new LinuxContainerResources { CpuPeriod = 100_000, CpuQuota = 80_000, MemoryLimitInBytes = 96L << 20 });
            Assert.Equal((96L << 20).ToString(), await CgroupMemoryLimitAsync(pod, "main"));
            var cpu = await Fixture.ExecAsync(pod, "main", "sh", "-c",
                OwnCgroupV2 + "cat /sys/fs/cgroup$own/cpu.max 2>/dev/null || echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)");
            Assert.Equal("80000 100000", cpu.Stdout.Trim());

            // the container still runs, with the same init
            Assert.Equal(ContainerState.ContainerRunning, (await Fixture.ContainerStatusAsync(pod, "main")).State);
        }
        finally
        {
            await Fixture.StopAndRemovePodAsync(pod);
        }
    }

    protected Task UpdateResourcesAsync(TestPod pod, string container, LinuxContainerResources resources) =>
        Fixture.CallAsync($"UpdateContainerResources of {pod}/{container}", () => Runtime.UpdateContainerResourcesAsync(new UpdateContainerResourcesRequest
        {
            ContainerId = pod.ContainerId(container),
            Linux = resources,
        }).ResponseAsync);

    /// <summary>Shell: $own = the container's cgroup v2 path. The guest's containers see the whole cgroup2 tree (CRI asks
    /// for no cgroup namespace), so their own directory is /sys/fs/cgroup + the "0::" line of /proc/self/cgroup.</summary>
    private const string OwnCgroupV2 = "own=$(sed -n 's/^0:://p' /proc/self/cgroup); ";

    /// <summary>The memory limit the container's own cgroup has: memory.max (cgroup v2, the VM's guest) or
    /// memory.limit_in_bytes (cgroup v1, runc on this host).</summary>
    protected async Task<string> CgroupMemoryLimitAsync(TestPod pod, string container)
    {
        var read = await Fixture.ExecAsync(pod, container, "sh", "-c",
            OwnCgroupV2 + "cat /sys/fs/cgroup$own/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes");
        Assert.True(read.ExitCode == 0, read.ToString());
        return read.Stdout.Trim();
    }

    private async Task<ContainerStats> StatsAsync(TestPod pod, string container) =>
        (await Fixture.CallAsync($"ContainerStats of {pod}/{container}",
            () => Runtime.ContainerStatsAsync(new ContainerStatsRequest { ContainerId = pod.ContainerId(container) }).ResponseAsync)).Stats;

    [Fact]
    public async Task Container_output_is_in_the_cri_log_file_under_the_log_directory()
    {
        var pod = await Fixture.SharedPodAsync();
        string serverLog = Path.Combine(pod.LogDirectory, "server.log");
        string clientLog = Path.Combine(pod.LogDirectory, "client.log");

        var server = await UntilAsync(() => ReadLinesAsync(serverLog), lines => lines.Length >= 2, $"two lines in {serverLog}");
        var parsed = server.Select(line => (Line: line, Parsed: CriLogLine.TryParse(line))).ToArray();
        Assert.All(parsed, p => Assert.True(p.Parsed is not null, $"not in the CRI log format: '{p.Line}'"));
        Assert.Contains(parsed, p => p.Parsed is { Stream: "stdout", Tag: "F", Content: "server-started" });
        Assert.Contains(parsed, p => p.Parsed is { Stream: "stderr", Tag: "F", Content: "server-stderr" });

        var client = await UntilAsync(() => ReadLinesAsync(clientLog), lines => lines.Length >= 1, $"a line in {clientLog}");
        Assert.Equal(new CriLogLine(default, "stdout", "F", "client-started"), CriLogLine.TryParse(client[0])! with { Time = default });
    }

    [Fact]
    public async Task HostPath_volume_is_read_write_both_ways_and_the_file_mount_is_read_only()
    {
        var pod = await Fixture.SharedPodAsync();
        string data = Path.Combine(pod.VolumeDirectory, "data");
        string settings = Path.Combine(pod.VolumeDirectory, "settings.txt");

        var write = await Fixture.ExecAsync(pod, "server", "sh", "-c", "echo written-in-pod > /data/from-pod.txt");
        Assert.True(write.ExitCode == 0, write.ToString());
        Assert.Equal("written-in-pod\n", await File.ReadAllTextAsync(Path.Combine(data, "from-pod.txt")));

        await File.WriteAllTextAsync(Path.Combine(data, "from-host.txt"), "written-on-host\n");
        var read = await Fixture.ExecAsync(pod, "server", "cat", "/data/from-host.txt");
        Assert.True(read.ExitCode == 0, read.ToString());
        Assert.Equal("written-on-host\n", read.Stdout);

        var setting = await Fixture.ExecAsync(pod, "server", "cat", "/etc/app/settings.txt");
        Assert.True(setting.ExitCode == 0, setting.ToString());
        Assert.Equal(CriFixture.SettingsText, setting.Stdout);

        var overwrite = await Fixture.ExecAsync(pod, "server", "sh", "-c", "echo changed > /etc/app/settings.txt");
        Assert.True(overwrite.ExitCode != 0, "writing the read-only file mount succeeded: " + overwrite);
        Assert.Contains("Read-only file system", overwrite.Stderr);
        Assert.Equal(CriFixture.SettingsText, await File.ReadAllTextAsync(settings));
    }

    [Fact]
    public async Task A_pod_sees_neither_the_processes_nor_the_files_of_another_pod_nor_unshared_host_files()
    {
        var pod = await Fixture.SharedPodAsync();
        var neighbour = await Fixture.NeighbourPodAsync();
        string secretFile = Fixture.NeighbourSecretName + ".txt";
        string[] find =
        {
            "busybox", "find", "/", "(", "-path", "/proc", "-o", "-path", "/sys", ")", "-prune", "-o",
            "(", "-name", $"*{Fixture.NeighbourSecretName}*", "-o", "-name", Path.GetFileName(Fixture.HostMarkerPath), ")", "-print",
        };

        // controls: ps shows arguments, and find finds the secret, where they are
        var neighbourPs = await Fixture.ExecAsync(neighbour, "keeper", "ps");
        Assert.True(neighbourPs.ExitCode == 0 && neighbourPs.Stdout.Contains(Fixture.NeighbourSleepMarker), neighbourPs.ToString());
        var neighbourFind = await Fixture.ExecAsync(neighbour, "keeper", find);
        Assert.Contains($"/secret/{secretFile}", neighbourFind.Stdout);

        foreach (var container in new[] { "server", "client" })
        {
            var ps = await Fixture.ExecAsync(pod, container, "ps");
            Assert.True(ps.ExitCode == 0, ps.ToString());
            Assert.Contains(container == "server" ? "httpd" : "sleep", ps.Stdout);
            Assert.DoesNotContain(Fixture.NeighbourSleepMarker, ps.Stdout);

            var found = await Fixture.ExecAsync(pod, container, find);
            Assert.True(found.Stdout.Trim().Length == 0, $"{container} of the shared pod finds files it must not see:\n{found}");

            var secret = await Fixture.ExecAsync(pod, container, "cat", $"/secret/{secretFile}");
            Assert.True(secret.ExitCode != 0, "the neighbour's volume is readable: " + secret);
            var marker = await Fixture.ExecAsync(pod, container, "cat", Fixture.HostMarkerPath);
            Assert.True(marker.ExitCode != 0, "an unshared host file is readable: " + marker);
        }
    }

    [Fact]
    public async Task Stopping_and_removing_containers_and_the_pod_leaves_nothing_behind()
    {
        var pod = await Fixture.RunPodAsync("lifecycle");
        await Fixture.StartContainerAsync(pod, "stopped", new[] { "sleep", "2147483647" });
        await Fixture.StartContainerAsync(pod, "left", new[] { "sh", "-c", "echo left-running; exec sleep 2147483647" });
        Assert.Equal(ContainerState.ContainerRunning, (await Fixture.ContainerStatusAsync(pod, "stopped")).State);

        var watch = Stopwatch.StartNew();
        await Fixture.CallAsync("StopContainer stopped (timeout 2 s)",
            () => Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = pod.ContainerId("stopped"), Timeout = 2 }).ResponseAsync);
        Output.WriteLine($"StopContainer (timeout 2 s): {watch.ElapsedMilliseconds} ms");
        var stopped = await Fixture.ContainerStatusAsync(pod, "stopped");
        Assert.Equal(ContainerState.ContainerExited, stopped.State);
        Assert.True(stopped.ExitCode is 128 + 9 or 128 + 15, $"exit code {stopped.ExitCode} ({stopped.Reason} {stopped.Message})");
        Assert.True(stopped.FinishedAt >= stopped.StartedAt && stopped.StartedAt > 0);

        await Fixture.CallAsync("RemoveContainer stopped",
            () => Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = pod.ContainerId("stopped") }).ResponseAsync);
        await AssertNotFoundAsync(() => Runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = pod.ContainerId("stopped") }).ResponseAsync);

        // control: while the pod runs, the leftover check sees its shim, network namespace, address lease and CNI result
        var whileRunning = await PodLeftovers.FindAsync(Fixture, pod);
        foreach (var kind in new[] { "process ", "network namespace ", "IPAM lease ", "CNI result ", "directory ", "mount " })
            Assert.True(whileRunning.Any(l => l.StartsWith(kind, StringComparison.Ordinal)), $"no '{kind}' found for the running {pod}:\n  {string.Join("\n  ", whileRunning)}");
        if (Fixture.Handler == CriFixture.RuncHandler) // runc: the pod's cgroups under cgroup_parent and its shim's socket
        {
            Assert.Contains(whileRunning, l => l.StartsWith("cgroup ", StringComparison.Ordinal));
            Assert.Contains(whileRunning, l => l.StartsWith("shim socket ", StringComparison.Ordinal));
        }

        // StopPodSandbox kills what still runs, then the sandbox
        watch.Restart();
        await Fixture.CallAsync($"StopPodSandbox of {pod}",
            () => Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod.Id }).ResponseAsync);
        Output.WriteLine($"StopPodSandbox: {watch.ElapsedMilliseconds} ms");
        Assert.Equal(PodSandboxState.SandboxNotready, (await Fixture.PodStatusAsync(pod)).Status.State);
        Assert.Equal(ContainerState.ContainerExited, (await Fixture.ContainerStatusAsync(pod, "left")).State);

        watch.Restart();
        await Fixture.CallAsync($"RemovePodSandbox of {pod}",
            () => Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod.Id }).ResponseAsync);
        Output.WriteLine($"RemovePodSandbox: {watch.ElapsedMilliseconds} ms");
        Fixture.Forget(pod);
        await AssertNotFoundAsync(() => Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = pod.Id }).ResponseAsync);
        var remaining = await Runtime.ListContainersAsync(new ListContainersRequest { Filter = new ContainerFilter { PodSandboxId = pod.Id } });
        Assert.Empty(remaining.Containers);

        var leftovers = await PodLeftovers.WaitUntilGoneAsync(Fixture, pod);
        Assert.True(leftovers.Count == 0, $"{pod} left behind:\n  {string.Join("\n  ", leftovers)}\n--- containerd log (tail) ---\n{Fixture.LogTail(60)}");
        var ports = await Fixture.Network.PortsAsync();
        Assert.True(ports.Count == Fixture.LivePods.Count,
            $"bridge {Fixture.Network.Bridge} has ports {string.Join(", ", ports)} for {Fixture.LivePods.Count} live pod(s)");
    }

    /// <summary>Repeats <paramref name="attempt"/> until <paramref name="done"/> (at most <see cref="Patience"/>).</summary>
    protected static async Task<T> UntilAsync<T>(Func<Task<T>> attempt, Func<T, bool> done, string what)
    {
        var watch = Stopwatch.StartNew();
        T result = await attempt();
        while (!done(result))
        {
            Assert.True(watch.Elapsed < Patience, $"{what}: still not done after {Patience.TotalSeconds} s; last result:\n" +
                (result is IEnumerable<string> lines ? string.Join('\n', lines) : result?.ToString()));
            await Task.Delay(200);
            result = await attempt();
        }
        return result;
    }

    private static async Task<string[]> ReadLinesAsync(string path) =>
        File.Exists(path) ? (await File.ReadAllLinesAsync(path)).Where(l => l.Length > 0).ToArray() : Array.Empty<string>();

    private static async Task AssertNotFoundAsync<T>(Func<Task<T>> call)
    {
        var error = await Assert.ThrowsAsync<RpcException>(call);
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
    }
}
