using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Sandbox.Agent.Protocol;
using Sandbox.Hypervisors.Processes;
using Sandbox.Hypervisors.Qemu;
using Sandbox.IntegrationTests.Support;
using Sandbox.Runtime.Network;
using Sandbox.Runtime.Sandboxes;
using Xunit.Abstractions;

namespace Sandbox.IntegrationTests;

/// <summary>
/// A real VM (TCG here) with a pod network: a namespace and veth pair made by the test like CNI would
/// (eth0 = 10.213.0.2/24 and fd21:3:0::2/64 inside, the host end .1 and ::1), QEMU in the namespace, eth0's traffic redirected to the
/// tap, the guest configured by the agent. The host reaches a server in a guest container at the pod IP.
/// Timings are printed, never asserted.
/// </summary>
public sealed class PodNetworkInVmTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Guard = TimeSpan.FromMinutes(4);
    private const int HelloPort = 8080;
    private const int EchoPort = 8081;

    [Fact]
    public async Task Host_reaches_a_server_in_the_guest_at_the_pod_ip_and_stop_leaves_the_namespace_clean()
    {
        using var guard = new CancellationTokenSource(Guard);
        var ct = guard.Token;
        var stateRoot = TestVm.NewStateRoot();
        await using var pod = await TestPodNamespace.CreateAsync(subnet: 0, hostAddress: true, ipv6: true);
        var network = new PodNetwork("netvm", pod.Path);
        SandboxVm? vm = null;
        try
        {
            var boot = Stopwatch.StartNew();
            vm = await SandboxVm.BootAsync(new SandboxVmOptions
            {
                SandboxId = "netvm",
                Assets = GuestAssets.Locate(),
                StateRoot = stateRoot,
                Hostname = "netvm",
                AgentReadyTimeout = TimeSpan.FromSeconds(90),
                Network = network,
            }, new QemuAdapter(), ct);
            output.WriteLine($"boot with pod network (set-up, VM, agent, UpdateInterface, UpdateRoutes): {boot.ElapsedMilliseconds} ms");

            // QEMU runs in the pod's namespace, so containerd can join containers to it through the task pid.
            var qemuPid = vm.Hypervisor.Pid!.Value;
            Assert.Equal(NetworkNamespaceIdentity.OfPath(pod.Path), NetworkNamespaceIdentity.OfProcess(qemuPid));
            var nic = Assert.Single(vm.Network!.Nics);
            Assert.Equal(("tap0_sbx", "eth0"), (nic.TapName, nic.Name));

            // The guest's eth0 has the pod's MAC, address and default route.
            var addresses = await new GuestContainer(vm, "ipaddr").RunAsync(["busybox", "ip", "-o", "addr"], stdin: null, ct);
            output.WriteLine(addresses.StdoutText);
            Assert.Equal(0, addresses.ExitStatus);
            Assert.Matches($@"\beth0\s+inet {Regex.Escape(pod.PodAddress)}/24 ", addresses.StdoutText);
            Assert.Matches($@"\beth0\s+inet6 {Regex.Escape(pod.PodAddress6)}/64 ", addresses.StdoutText);
            var links = await new GuestContainer(vm, "iplink").RunAsync(["busybox", "ip", "-o", "link", "show", "eth0"], stdin: null, ct);
            Assert.Contains(nic.Mac, links.StdoutText);
            var routes = await new GuestContainer(vm, "iproute").RunAsync(["busybox", "ip", "route"], stdin: null, ct);
            output.WriteLine(routes.StdoutText);
            Assert.Contains($"default via {pod.HostAddress} dev eth0", routes.StdoutText);

            // Servers in a container: one says hello, one echoes.
            var server = new GuestContainer(vm, "servers");
            await server.CreateAsync(OciSpecs.Busybox(["sh", "-c",
                $"nc -ll -p {HelloPort} -e echo hello & exec nc -ll -p {EchoPort} -e cat"]), stdin: false, ct);
            try
            {
                await vm.Agent.Client.StartContainerAsync(new StartContainerRequest { ContainerId = server.Id },
                    deadline: DateTime.UtcNow.AddSeconds(60), cancellationToken: ct);

                Assert.Equal("hello\n", await ReadHelloAsync(pod.PodAddress, ct));
                // IPv6 too (the guest's address may still be in duplicate address detection for a moment).
                Assert.Equal("hello\n", await ReadHelloAsync(pod.PodAddress6, ct));
                await MeasureAsync(pod.PodAddress, ct);
            }
            finally
            {
                await server.RemoveAsync(CancellationToken.None);
            }

            var stop = Stopwatch.StartNew();
            await vm.StopAsync(ct);
            output.WriteLine($"stop (DestroySandbox, QEMU, network teardown): {stop.ElapsedMilliseconds} ms");
            Assert.False(HostProcesses.IsAlive(qemuPid));

            // Nothing of ours is left in the namespace: no tap, no qdisc, no filter.
            var after = await network.InspectAsync(ct);
            Assert.DoesNotContain(after.Links, l => l.Kind == "tun");
            Assert.Empty(after.Ingresses);
            Assert.Equal("", (await pod.InsideAsync("tc", "filter", "show", "dev", "eth0", "ingress")).Trim());
            Assert.Equal(["lo", "eth0"], after.Links.Select(l => l.Name));
        }
        finally
        {
            if (vm is not null)
                await vm.DisposeAsync();
            try { Directory.Delete(stateRoot, recursive: true); } catch (IOException) { }
        }
        await pod.DisposeAsync();
        Assert.False(File.Exists(pod.Path));
        Assert.False(pod.HostVethExists());
    }

    /// <summary>Connects until the guest listens (refusals are quick: the guest answers with a reset), reads to EOF.</summary>
    private async Task<string> ReadHelloAsync(string address, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        var attempts = 0;
        while (true)
        {
            attempts++;
            using var client = new TcpClient { NoDelay = true };
            try
            {
                await client.ConnectAsync(address, HelloPort, ct);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.HostUnreachable
                                                or SocketError.NetworkUnreachable or SocketError.TimedOut)
            {
                await Task.Delay(100, ct);
                continue;
            }
            using var reader = new StreamReader(client.GetStream(), Encoding.ASCII);
            var text = await reader.ReadToEndAsync(ct);
            output.WriteLine($"hello from [{address}]:{HelloPort} after {watch.ElapsedMilliseconds} ms and {attempts} connection attempts");
            return text;
        }
    }

    /// <summary>TCP connect time and 1-byte round trips host -> guest echo server.</summary>
    private async Task MeasureAsync(string address, CancellationToken ct)
    {
        // busybox nc -ll accepts one connection at a time and forks `cat` for it; connecting again before it is back
        // in accept() overflows its backlog, the guest drops the SYN and the retransmission costs 1 s. So: pauses.
        var connects = new List<double>();
        for (var i = 0; i < 20; i++)
        {
            await Task.Delay(100, ct);
            using var probe = new TcpClient { NoDelay = true };
            var connect = Stopwatch.StartNew();
            await probe.ConnectAsync(address, EchoPort, ct);
            connects.Add(connect.Elapsed.TotalMicroseconds);
        }

        using var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync(address, EchoPort, ct);
        var stream = client.GetStream();
        var buffer = new byte[1];
        var roundTrips = new List<double>();
        for (var i = 0; i < 520; i++)
        {
            var watch = Stopwatch.StartNew();
            buffer[0] = (byte)('a' + i % 26);
            await stream.WriteAsync(buffer, ct);
            var read = await stream.ReadAsync(buffer, ct);
            var elapsed = watch.Elapsed.TotalMicroseconds;
            Assert.Equal(1, read);
            Assert.Equal((byte)('a' + i % 26), buffer[0]);
            if (i >= 20) // warm-up: the guest's first reads fault in cat's pages
                roundTrips.Add(elapsed);
        }
        output.WriteLine($"TCP connect host->guest (n={connects.Count}): {Describe(connects)}");
        output.WriteLine($"TCP 1-byte round trip host->guest->host (n={roundTrips.Count}): {Describe(roundTrips)}");
    }

    private static string Describe(List<double> microseconds)
    {
        var sorted = microseconds.Order().ToList();
        double At(double q) => sorted[Math.Min(sorted.Count - 1, (int)(q * sorted.Count))];
        return $"min {sorted[0] / 1000:F3} ms, median {At(0.5) / 1000:F3} ms, p90 {At(0.9) / 1000:F3} ms, " +
               $"p99 {At(0.99) / 1000:F3} ms, max {sorted[^1] / 1000:F3} ms";
    }
}
