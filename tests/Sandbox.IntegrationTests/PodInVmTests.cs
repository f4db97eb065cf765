using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using Sandbox.Agent.Protocol;
using Sandbox.IntegrationTests.Support;
using Sandbox.Runtime.Agent;
using Xunit.Abstractions;

namespace Sandbox.IntegrationTests;

/// <summary>
/// CRI pods in a real VM: a sandbox (pause-like) container and application containers whose specs carry the CRI
/// annotations and host namespace paths, as containerd writes them. The agent maps those paths to the sandbox
/// container's namespaces in the guest; the VM's network stack is the pod's.
/// </summary>
[Collection(SharedVmCollection.Name)]
public sealed class PodInVmTests(SharedVmFixture fixture, ITestOutputHelper output)
{
    private static CancellationToken Timeout => new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token;
    private static DateTime Deadline => DateTime.UtcNow.AddSeconds(60);
    private Sandbox.Agent.Protocol.Agent.AgentClient Agent => fixture.Vm.Agent.Client;

    private static string NewId(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>A busybox spec with the CRI annotations of <paramref name="containerType"/> in pod <paramref name="podId"/>.</summary>
    private static JsonObject PodSpec(string containerType, string podId, string[] args, string? hostname, params JsonObject[] namespaces)
    {
        var spec = JsonNode.Parse(OciSpecs.Busybox(args))!.AsObject();
        spec["annotations"] = new JsonObject
        {
            ["io.kubernetes.cri.container-type"] = containerType,
            ["io.kubernetes.cri.sandbox-id"] = podId,
            ["io.kubernetes.cri.sandbox-name"] = "test-pod",
        };
        if (hostname is null) spec.Remove("hostname");
        else spec["hostname"] = hostname;
        spec["linux"]!["namespaces"] = new JsonArray(namespaces.Select(n => (JsonNode)n).ToArray());
        return spec;
    }

    private static JsonObject Namespace(string type, string? path = null) =>
        path is null ? new JsonObject { ["type"] = type } : new JsonObject { ["type"] = type, ["path"] = path };

    /// <summary>The sandbox container as CRI makes it: new pid, ipc, uts and mount namespaces, the pod's hostname, a network
    /// namespace path on the host (which the agent drops). Started; it sleeps like pause.</summary>
    private async Task<GuestContainer> StartSandboxAsync(string podId, string hostname, Action<JsonObject>? edit = null)
    {
        var spec = PodSpec("sandbox", podId, ["sleep", "600"], hostname,
            Namespace("pid"), Namespace("ipc"), Namespace("uts"), Namespace("mount"), Namespace("network", "/var/run/netns/cni-test"));
        edit?.Invoke(spec);
        var sandbox = new GuestContainer(fixture.Vm, podId);
        await sandbox.CreateAsync(spec.ToJsonString(), stdin: false, Timeout);
        await Agent.StartContainerAsync(new StartContainerRequest { ContainerId = podId }, deadline: Deadline);
        return sandbox;
    }

    /// <summary>An application container's namespaces as containerd writes them: the sandbox's host pid in every path
    /// (a made-up one here: the agent must not use it), a new mount namespace, and a pid path only for a shared PID namespace.</summary>
    private static JsonObject[] AppNamespaces(bool sharePid)
    {
        const string hostPid = "/proc/31337/ns/";
        return
        [
            sharePid ? Namespace("pid", hostPid + "pid") : Namespace("pid"),
            Namespace("ipc", hostPid + "ipc"), Namespace("uts", hostPid + "uts"), Namespace("mount"),
            Namespace("network", hostPid + "net"),
        ];
    }

    /// <summary>Creates, starts and waits for a container; returns its output. The container is removed afterwards.</summary>
    private async Task<ContainerResult> RunAsync(string id, JsonObject spec)
    {
        var container = new GuestContainer(fixture.Vm, id);
        await container.CreateAsync(spec.ToJsonString(), stdin: false, Timeout);
        try
        {
            var stdio = new GuestProcessStdio(Agent, id);
            var stdout = new MemoryStream();
            var stderr = new MemoryStream();
            var reading = Task.WhenAll(stdio.CopyStdoutToAsync(stdout, Timeout), stdio.CopyStderrToAsync(stderr, Timeout));
            await Agent.StartContainerAsync(new StartContainerRequest { ContainerId = id }, deadline: Deadline);
            var exit = await container.WaitAsync(Timeout);
            await reading;
            return new ContainerResult(exit.ExitStatus, stdout.ToArray(), stderr.ToArray());
        }
        finally
        {
            await container.RemoveAsync(CancellationToken.None);
        }
    }

    private async Task<string> ExecAsync(string containerId, params string[] args)
    {
        string execId = NewId("x");
        await Agent.ExecProcessAsync(new ExecProcessRequest
        {
            ContainerId = containerId, ExecId = execId, ProcessJson = ByteString.CopyFromUtf8(OciSpecs.Process(args)),
        }, deadline: Deadline);
        var stdout = new MemoryStream();
        await new GuestProcessStdio(Agent, containerId, execId).CopyStdoutToAsync(stdout, Timeout);
        var exit = await Agent.WaitProcessAsync(new WaitProcessRequest { ContainerId = containerId, ExecId = execId }, deadline: Deadline);
        Assert.Equal(0, exit.ExitStatus);
        return Encoding.UTF8.GetString(stdout.ToArray());
    }

    [Fact]
    public async Task App_containers_share_the_sandbox_ipc_and_uts_namespaces_and_the_pod_hostname()
    {
        string podId = NewId("pod");
        var sandbox = await StartSandboxAsync(podId, "pod-host-1");
        try
        {
            string[] inSandbox = (await ExecAsync(podId, "sh", "-c",
                "hostname; readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts; readlink /proc/self/ns/pid")).Split('\n');

            var app = await RunAsync(NewId("app"), PodSpec("container", podId,
                ["sh", "-c", "hostname; readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts; readlink /proc/self/ns/pid"], hostname: null,
                AppNamespaces(sharePid: false)));
            Assert.Equal("", app.StderrText);
            Assert.Equal(0, app.ExitStatus);
            string[] inApp = app.StdoutText.Split('\n');
            Assert.Equal("pod-host-1", inSandbox[0]);
            Assert.Equal("pod-host-1", inApp[0]);           // the pod's hostname, through the shared uts namespace
            Assert.StartsWith("ipc:[", inApp[1]);
            Assert.Equal(inSandbox[1], inApp[1]);            // same ipc namespace
            Assert.Equal(inSandbox[2], inApp[2]);            // same uts namespace
            Assert.NotEqual(inSandbox[3], inApp[3]);         // its own pid namespace: no pid path in its spec

            // The VM itself keeps its own hostname and namespaces.
            var info = await Agent.GetGuestInfoAsync(new GetGuestInfoRequest(), deadline: Deadline);
            Assert.NotEqual("", info.KernelRelease);
        }
        finally
        {
            await sandbox.RemoveAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task A_pid_namespace_path_shares_the_sandbox_process_namespace()
    {
        string podId = NewId("pod");
        var sandbox = await StartSandboxAsync(podId, "pod-host-2");
        try
        {
            string sandboxPidNs = (await ExecAsync(podId, "sh", "-c", "readlink /proc/self/ns/pid")).Trim();
            var app = await RunAsync(NewId("app"), PodSpec("container", podId,
                ["sh", "-c", "readlink /proc/self/ns/pid; ps -o pid,args"], hostname: null, AppNamespaces(sharePid: true)));
            Assert.Equal(0, app.ExitStatus);
            string[] lines = app.StdoutText.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(sandboxPidNs, lines[0]);
            // The sandbox's `sleep 600` is pid 1 of the shared namespace, visible from the app container.
            Assert.Contains(lines, l => l.Trim().StartsWith("1 ") && l.Contains("sleep 600"));
        }
        finally
        {
            await sandbox.RemoveAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task A_container_reaches_another_container_of_the_pod_on_localhost()
    {
        string podId = NewId("pod");
        var sandbox = await StartSandboxAsync(podId, "pod-host-3");
        var server = new GuestContainer(fixture.Vm, NewId("web"));
        try
        {
            var serverSpec = PodSpec("container", podId,
                ["sh", "-c", "mkdir -p /tmp/www && echo hello-from-a > /tmp/www/index.html && exec busybox httpd -f -p 127.0.0.1:8080 -h /tmp/www"],
                hostname: null, AppNamespaces(sharePid: false));
            await server.CreateAsync(serverSpec.ToJsonString(), stdin: false, Timeout);
            await Agent.StartContainerAsync(new StartContainerRequest { ContainerId = server.Id }, deadline: Deadline);

            var client = await RunAsync(NewId("client"), PodSpec("container", podId,
                ["sh", "-c", "for i in $(seq 1 100); do busybox wget -q -O - http://127.0.0.1:8080/index.html && exit 0; sleep 0.2; done; exit 1"],
                hostname: null, AppNamespaces(sharePid: false)));
            Assert.Equal(0, client.ExitStatus);
            Assert.Equal("hello-from-a\n", client.StdoutText);
        }
        finally
        {
            await server.RemoveAsync(CancellationToken.None);
            await sandbox.RemoveAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task Share_files_bind_mount_read_only_and_a_read_write_volume_writes_through_to_the_host()
    {
        string id = NewId("vol");
        // What the shim places in the shared directory: a resolv.conf and an (empty) volume directory.
        string hostFiles = Path.Combine(fixture.Vm.State.SharedDirectory, id + "-files");
        Directory.CreateDirectory(Path.Combine(hostFiles, "volume"));
        await File.WriteAllTextAsync(Path.Combine(hostFiles, "resolv.conf"), "nameserver 10.96.0.10\n");
        try
        {
            var spec = JsonNode.Parse(OciSpecs.Busybox(["sh", "-c",
                "cat /etc/resolv.conf; echo changed > /etc/resolv.conf && echo WRITABLE || echo READONLY; echo from-guest > /data/out.txt && cat /data/out.txt"]))!.AsObject();
            spec["mounts"]!.AsArray().Add(new JsonObject
            {
                ["destination"] = "/etc/resolv.conf", ["type"] = "bind",
                ["source"] = fixture.Vm.GuestPathOf(Path.Combine(hostFiles, "resolv.conf")),
                ["options"] = new JsonArray("rbind", "ro"),
            });
            spec["mounts"]!.AsArray().Add(new JsonObject
            {
                ["destination"] = "/data", ["type"] = "bind",
                ["source"] = fixture.Vm.GuestPathOf(Path.Combine(hostFiles, "volume")),
                ["options"] = new JsonArray("rbind", "rw"),
            });
            var result = await RunAsync(id, spec);
            Assert.Equal("nameserver 10.96.0.10\nREADONLY\nfrom-guest\n", result.StdoutText);
            Assert.Contains("Read-only file system", result.StderrText);
            Assert.Equal(0, result.ExitStatus);
            Assert.Equal("nameserver 10.96.0.10\n", await File.ReadAllTextAsync(Path.Combine(hostFiles, "resolv.conf")));
            Assert.Equal("from-guest\n", await File.ReadAllTextAsync(Path.Combine(hostFiles, "volume", "out.txt")));
        }
        finally
        {
            Directory.Delete(hostFiles, recursive: true);
        }
    }

    [Fact]
    public async Task Pod_sysctls_net_ones_on_the_VM_and_ipc_ones_by_crun_are_seen_by_app_containers()
    {
        string podId = NewId("pod");
        var sandbox = await StartSandboxAsync(podId, "pod-host-4", spec => spec["linux"]!["sysctl"] = new JsonObject
        {
            ["net.ipv4.ip_unprivileged_port_start"] = "0",
            ["kernel.shm_rmid_forced"] = "1",
        });
        try
        {
            var app = await RunAsync(NewId("app"), PodSpec("container", podId,
                ["sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shm_rmid_forced"],
                hostname: null, AppNamespaces(sharePid: false)));
            Assert.Equal("", app.StderrText);
            Assert.Equal("0\n1\n", app.StdoutText);
        }
        finally
        {
            await sandbox.RemoveAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task An_app_container_whose_sandbox_is_not_in_the_VM_is_FailedPrecondition()
    {
        var container = new GuestContainer(fixture.Vm, NewId("orphan"));
        var spec = PodSpec("container", "pod-that-is-not-here", ["true"], hostname: null, AppNamespaces(sharePid: false));
        var error = await Assert.ThrowsAsync<RpcException>(() => container.CreateAsync(spec.ToJsonString(), stdin: false, Timeout));
        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Contains("pod-that-is-not-here", error.Status.Detail);
        Directory.Delete(Path.GetDirectoryName(container.HostRootfs)!, recursive: true);
    }

    [Fact]
    public async Task UpdateInterface_with_an_unknown_MAC_is_NotFound_and_lists_the_interfaces()
    {
        var watch = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<RpcException>(() => Agent.UpdateInterfaceAsync(new UpdateInterfaceRequest
        {
            Interface = new NetworkInterface { Name = "eth0", Mac = "02:00:00:00:be:ef", Mtu = 1500 },
        }, deadline: Deadline).ResponseAsync);
        output.WriteLine($"UpdateInterface (unknown MAC, includes loading virtio_net and the 3 s wait): {watch.ElapsedMilliseconds} ms");
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Contains("no guest interface has MAC 02:00:00:00:be:ef", error.Status.Detail);
        Assert.Contains("lo (00:00:00:00:00:00)", error.Status.Detail);

        var badRoute = await Assert.ThrowsAsync<RpcException>(() => Agent.UpdateRoutesAsync(new UpdateRoutesRequest
        {
            Routes = { new Route { Gateway = "10.0.0.1", Device = "eth7" } },
        }, deadline: Deadline).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, badRoute.StatusCode);
        Assert.Contains("no guest interface named 'eth7'", badRoute.Status.Detail);
        await Agent.HealthAsync(new HealthRequest(), deadline: Deadline);
    }
}
