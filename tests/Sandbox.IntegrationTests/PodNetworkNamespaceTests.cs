using System.Diagnostics;
using Sandbox.Hypervisors.Qemu;
using Sandbox.IntegrationTests.Support;
using Sandbox.Runtime.Network;
using Sandbox.Runtime.Sandboxes;
using Xunit.Abstractions;

namespace Sandbox.IntegrationTests;

/// <summary>PodNetwork against real namespaces made by the test (root, iproute2, util-linux); no VM.</summary>
public sealed class PodNetworkNamespaceTests(ITestOutputHelper output)
{
    private static CancellationToken Timeout => new CancellationTokenSource(TimeSpan.FromMinutes(1)).Token;

    private static void AssertNothingOfOurs(NetnsSnapshot snapshot)
    {
        Assert.DoesNotContain(snapshot.Links, l => l.Kind == "tun");
        Assert.Empty(snapshot.Ingresses);
    }

    [Fact]
    public async Task Set_up_wires_eth0_to_a_tap_and_tear_down_leaves_nothing_both_idempotent()
    {
        await using var pod = await TestPodNamespace.CreateAsync(subnet: 11, hostAddress: false, ipv6: true, mtu: 1450);
        var network = new PodNetwork("nstest", pod.Path);

        var watch = Stopwatch.StartNew();
        var nics = await network.SetUpAsync(Timeout);
        output.WriteLine($"set-up (inspect + 6 commands): {watch.ElapsedMilliseconds} ms");
        var nic = Assert.Single(nics);
        var snapshot = await network.InspectAsync(Timeout);
        var eth0 = snapshot.Link("eth0")!;
        Assert.Equal(("tap0_sbx", "eth0", eth0.Mac, 1450), (nic.TapName, nic.Name, nic.Mac, nic.Mtu));
        Assert.Equal([$"{pod.PodAddress}/24", "fd21:3:11::2/64"], nic.Addresses.Select(a => a.ToString()));
        Assert.Contains(nic.Routes, r => r is { Destination: "", Gateway: "10.213.11.1", Device: "eth0" });
        Assert.Contains(nic.Routes, r => r is { Destination: "10.213.11.0/24", Gateway: "", Scope: 253 });
        Assert.DoesNotContain(nic.Routes, r => r.Destination.StartsWith("fe80:", StringComparison.Ordinal));
        var tap = snapshot.Link("tap0_sbx")!;
        Assert.Equal(("tun", 1450, true), (tap.Kind, tap.Mtu, tap.IsUp));
        Assert.Equal(["tap0_sbx"], snapshot.Ingress("eth0")!.RedirectTargets);
        Assert.Equal(["eth0"], snapshot.Ingress("tap0_sbx")!.RedirectTargets);
        Assert.Same(nics, network.Nics);

        // Again: nothing changes (the tap keeps its index), the same cards come back.
        watch.Restart();
        var again = await network.SetUpAsync(Timeout);
        output.WriteLine($"set-up again (inspect only): {watch.ElapsedMilliseconds} ms");
        Assert.Equal(nics.Select(n => (n.TapName, n.Mac, n.Mtu)), again.Select(n => (n.TapName, n.Mac, n.Mtu)));
        Assert.Equal(tap.Index, (await network.InspectAsync(Timeout)).Link("tap0_sbx")!.Index);

        watch.Restart();
        await network.TearDownAsync(Timeout);
        output.WriteLine($"tear-down (inspect + 2 commands): {watch.ElapsedMilliseconds} ms");
        var after = await network.InspectAsync(Timeout);
        AssertNothingOfOurs(after);
        Assert.Equal(snapshot.Link("eth0")!.Mac, after.Link("eth0")!.Mac); // the veth itself is untouched
        Assert.Contains(after.Link("eth0")!.Addresses, a => a.Address == pod.PodAddress);
        await network.TearDownAsync(Timeout);

        // A new PodNetwork (say, the shim's `delete` after a crash) tears down what another one set up.
        await network.SetUpAsync(Timeout);
        await new PodNetwork("nstest", pod.Path).TearDownAsync(Timeout);
        AssertNothingOfOurs(await network.InspectAsync(Timeout));
    }

    [Fact]
    public async Task A_namespace_made_by_the_cni_bridge_plugin_is_wired_like_a_hand_made_one()
    {
        await using var pod = await TestCniNamespace.CreateAsync(subnet: 15);
        var network = new PodNetwork("cni", pod.Path);
        var nic = Assert.Single(await network.SetUpAsync(Timeout));
        Assert.Equal(("tap0_sbx", "eth0"), (nic.TapName, nic.Name));
        Assert.Equal(["10.213.15.2/24"], nic.Addresses.Select(a => a.ToString())); // host-local's first address
        Assert.Equal([("10.213.15.0/24", ""), ("", pod.Gateway)], nic.Routes.Select(r => (r.Destination, r.Gateway)));
        var snapshot = await network.InspectAsync(Timeout);
        Assert.Equal(["tap0_sbx"], snapshot.Ingress("eth0")!.RedirectTargets);
        await network.TearDownAsync(Timeout);
        AssertNothingOfOurs(await network.InspectAsync(Timeout));
    }

    [Fact]
    public async Task A_failed_boot_tears_the_network_down()
    {
        await using var pod = await TestPodNamespace.CreateAsync(subnet: 16, hostAddress: false);
        var stateRoot = TestVm.NewStateRoot();
        try
        {
            var network = new PodNetwork("badboot", pod.Path);
            // The hypervisor refuses the memory size after the network was set up.
            await Assert.ThrowsAsync<Sandbox.Hypervisors.HypervisorException>(() => SandboxVm.BootAsync(new SandboxVmOptions
            {
                SandboxId = "badboot",
                Assets = GuestAssets.Locate(),
                StateRoot = stateRoot,
                MemoryMiB = 8,
                Network = network,
            }, new QemuAdapter(), Timeout));
            AssertNothingOfOurs(await network.InspectAsync(Timeout));
            Assert.False(Directory.Exists(Path.Combine(stateRoot, "badboot")));
        }
        finally
        {
            Directory.Delete(stateRoot, recursive: true);
        }
    }

    [Fact]
    public async Task An_interrupted_set_up_is_cleaned_up_by_the_next_one()
    {
        await using var pod = await TestPodNamespace.CreateAsync(subnet: 12, hostAddress: false);
        // What a crash after the third set-up command leaves.
        await pod.InsideAsync("ip", "tuntap", "add", "dev", "tap0_sbx", "mode", "tap");
        await pod.InsideAsync("tc", "qdisc", "add", "dev", "eth0", "ingress");
        var network = new PodNetwork("interrupted", pod.Path);
        await network.SetUpAsync(Timeout);
        var snapshot = await network.InspectAsync(Timeout);
        Assert.Equal(["tap0_sbx"], snapshot.Ingress("eth0")!.RedirectTargets);
        Assert.True(snapshot.Link("tap0_sbx")!.IsUp);
        await network.TearDownAsync(Timeout);
        AssertNothingOfOurs(await network.InspectAsync(Timeout));
    }

    [Fact]
    public async Task A_failing_command_is_named_with_its_stderr_and_the_partial_set_up_is_removed()
    {
        await using var pod = await TestPodNamespace.CreateAsync(subnet: 13, hostAddress: false);
        // Someone else's ingress qdisc with a filter on eth0: our `tc qdisc add dev eth0 ingress` fails.
        await pod.InsideAsync("tc", "qdisc", "add", "dev", "eth0", "ingress");
        await pod.InsideAsync("tc", "filter", "add", "dev", "eth0", "parent", "ffff:", "protocol", "all", "u32", "match", "u8", "0", "0", "action", "mirred", "egress", "redirect", "dev", "lo");
        var network = new PodNetwork("failing", pod.Path);
        var error = await Assert.ThrowsAsync<PodNetworkException>(() => network.SetUpAsync(Timeout));
        Assert.StartsWith($"sandbox failing: pod network in {pod.Path}: `tc qdisc add dev eth0 ingress` failed with exit code 2: ", error.Message);
        Assert.Contains("Exclusivity flag on", error.Message);
        // Our tap is gone again; the foreign qdisc and filter are still there.
        var snapshot = await network.InspectAsync(Timeout);
        Assert.Null(snapshot.Link("tap0_sbx"));
        Assert.Equal(["lo"], snapshot.Ingress("eth0")!.RedirectTargets);
        Assert.Empty(network.Nics);
    }

    [Fact]
    public async Task A_namespace_without_an_addressed_veth_gives_no_cards()
    {
        await using var pod = await TestPodNamespace.CreateAsync(subnet: 14, hostAddress: false);
        await pod.InsideAsync("ip", "addr", "flush", "dev", "eth0");
        var network = new PodNetwork("empty", pod.Path);
        Assert.Empty(await network.SetUpAsync(Timeout));
        AssertNothingOfOurs(await network.InspectAsync(Timeout));
    }

    [Fact]
    public async Task A_missing_namespace_fails_set_up_with_its_path_and_tear_down_has_nothing_to_do()
    {
        var path = "/var/run/netns/sbxtest-missing-" + Guid.NewGuid().ToString("N")[..8];
        var network = new PodNetwork("missing", path);
        var error = await Assert.ThrowsAsync<PodNetworkException>(() => network.SetUpAsync(Timeout));
        Assert.StartsWith($"sandbox missing: pod network in {path}: the network namespace does not exist", error.Message);
        await network.TearDownAsync(Timeout);
    }

    [Fact]
    public async Task A_file_that_is_no_namespace_fails_with_nsenters_message()
    {
        var path = Path.Combine(Path.GetTempPath(), "sbxtest-notns-" + Guid.NewGuid().ToString("N")[..8]);
        await File.WriteAllTextAsync(path, "");
        try
        {
            var error = await Assert.ThrowsAsync<PodNetworkException>(() => new PodNetwork("notns", path).SetUpAsync(Timeout));
            Assert.Contains("`ip -d -j addr show` failed", error.Message);
            Assert.Contains("nsenter", error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
