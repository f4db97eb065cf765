using System.Diagnostics;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using Sandbox.Agent.Protocol;

namespace Sandbox.Agent.Tests;

/// <summary>
/// UpdateInterface / UpdateRoutes against the real kernel: the agent runs in a network namespace of its own
/// (unshare --net, needs root) holding a veth pair whose v0 end stands in for the VM's virtio-net device. The test
/// looks at the result with `ip -j` inside that namespace (nsenter).
/// </summary>
public sealed class NetworkServerTests : IAsyncLifetime
{
    private const string Mac = "02:5a:00:00:00:01";
    private readonly AgentProcess _agent = new(ownNetworkNamespace: true);
    private Protocol.Agent.AgentClient Client => _agent.Client;

    private static CallOptions Deadline => new(deadline: DateTime.UtcNow.AddSeconds(30));

    public async Task InitializeAsync()
    {
        Assert.True(Environment.UserName == "root", "these tests create network interfaces in a private network namespace and need root");
        await _agent.InitializeAsync();
        InNamespace("ip", "link", "add", "v0", "address", Mac, "type", "veth", "peer", "name", "v1");
        InNamespace("ip", "link", "set", "v1", "up");
    }

    public Task DisposeAsync() => _agent.DisposeAsync();

    private string InNamespace(params string[] command)
    {
        var start = new ProcessStartInfo("nsenter") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in (string[])["-t", _agent.Pid.ToString(), "-n", .. command]) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd();
        string errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{string.Join(' ', command)} failed with {process.ExitCode}: {errors}");
        return output;
    }

    private JsonObject Link(string name) =>
        JsonNode.Parse(InNamespace("ip", "-j", "addr", "show", "dev", name))!.AsArray().Single()!.AsObject();

    private List<string> Addresses(string name) =>
        Link(name)["addr_info"]!.AsArray().Where(a => (string?)a!["scope"] != "link")
            .Select(a => $"{a!["local"]}/{a["prefixlen"]}").ToList();

    private List<string> Routes(string family) =>
        JsonNode.Parse(InNamespace("ip", "-j", family, "route", "show", "table", "main"))!.AsArray()
            .Select(r => $"{r!["dst"]}{(r["gateway"] is { } g ? " via " + g : "")} dev {r["dev"]}{(r["protocol"] is { } p ? " proto " + p : "")}").ToList();

    private static NetworkInterface Interface(string name, uint mtu, params string[] addresses)
    {
        var request = new NetworkInterface { Name = name, Mac = Mac, Mtu = mtu };
        foreach (string address in addresses)
        {
            string[] parts = address.Split('/');
            request.Addresses.Add(new IpAddress { Address = parts[0], PrefixLength = uint.Parse(parts[1]) });
        }
        return request;
    }

    private Task UpdateInterfaceAsync(NetworkInterface request) =>
        Client.UpdateInterfaceAsync(new UpdateInterfaceRequest { Interface = request }, Deadline).ResponseAsync;

    private Task UpdateRoutesAsync(params Route[] routes)
    {
        var request = new UpdateRoutesRequest();
        request.Routes.AddRange(routes);
        return Client.UpdateRoutesAsync(request, Deadline).ResponseAsync;
    }

    [Fact]
    public async Task UpdateInterface_renames_sets_mtu_and_addresses_brings_it_and_lo_up_and_is_idempotent()
    {
        Assert.DoesNotContain("UP", Link("lo")["flags"]!.AsArray().Select(f => (string?)f));

        await UpdateInterfaceAsync(Interface("eth0", 1400, "10.88.0.5/16", "fd00::5/64"));
        JsonObject eth0 = Link("eth0");
        Assert.Equal(Mac, (string?)eth0["address"]);
        Assert.Equal(1400, (int)eth0["mtu"]!);
        Assert.Contains("UP", eth0["flags"]!.AsArray().Select(f => (string?)f));
        Assert.Equal(["10.88.0.5/16", "fd00::5/64"], Addresses("eth0"));
        // The IPv6 address is usable at once: no duplicate address detection, so not "tentative".
        JsonObject v6 = eth0["addr_info"]!.AsArray().Single(a => (string?)a!["local"] == "fd00::5")!.AsObject();
        Assert.Null(v6["tentative"]);
        Assert.Equal(true, (bool?)v6["nodad"]);
        Assert.Contains("UP", Link("lo")["flags"]!.AsArray().Select(f => (string?)f));

        // Again, with one address changed: the same interface, the old address gone, the new one there.
        await UpdateInterfaceAsync(Interface("eth0", 1400, "10.88.0.6/16", "fd00::5/64"));
        Assert.Equal(["fd00::5/64", "10.88.0.6/16"], Addresses("eth0").OrderBy(a => a.Contains(':') ? 0 : 1));
        Assert.Equal(1400, (int)Link("eth0")["mtu"]!);

        // A second rename of the interface while it is up.
        await UpdateInterfaceAsync(Interface("pod0", 0, "10.88.0.6/16"));
        Assert.Equal(["10.88.0.6/16"], Addresses("pod0"));
        Assert.Contains("UP", Link("pod0")["flags"]!.AsArray().Select(f => (string?)f));
    }

    [Fact]
    public async Task UpdateRoutes_adds_link_and_gateway_routes_and_replaces_the_previous_ones()
    {
        await UpdateInterfaceAsync(Interface("eth0", 0, "10.88.0.5/16"));
        await UpdateRoutesAsync(
            new Route { Destination = "10.88.0.0/16", Device = "eth0", Source = "10.88.0.5", Scope = 253 },
            new Route { Destination = "10.96.0.0/12", Gateway = "10.88.0.1", Device = "eth0" },
            new Route { Gateway = "10.88.0.1", Device = "eth0" });
        List<string> routes = Routes("-4");
        Assert.Contains("default via 10.88.0.1 dev eth0", routes);
        Assert.Contains("10.96.0.0/12 via 10.88.0.1 dev eth0", routes);
        Assert.Contains("10.88.0.0/16 dev eth0", routes);

        // The same call again succeeds (replace), and a shorter list removes what is no longer asked for.
        await UpdateRoutesAsync(new Route { Gateway = "10.88.0.1", Device = "eth0" });
        routes = Routes("-4");
        Assert.Contains("default via 10.88.0.1 dev eth0", routes);
        Assert.DoesNotContain(routes, r => r.StartsWith("10.96.0.0/12"));
    }

    [Fact]
    public async Task Errors_name_the_interface_the_route_and_what_is_present()
    {
        var unknownMac = await Assert.ThrowsAsync<RpcException>(() => Client.UpdateInterfaceAsync(new UpdateInterfaceRequest
        {
            Interface = new NetworkInterface { Name = "eth0", Mac = "02:5a:00:00:00:99" },
        }, Deadline).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknownMac.StatusCode);
        Assert.Contains("no guest interface has MAC 02:5a:00:00:00:99", unknownMac.Status.Detail);
        Assert.Contains($"v0 ({Mac})", unknownMac.Status.Detail);
        Assert.Contains("lo (00:00:00:00:00:00)", unknownMac.Status.Detail);

        await UpdateInterfaceAsync(Interface("eth0", 0, "10.88.0.5/16"));
        var unknownDevice = await Assert.ThrowsAsync<RpcException>(() => UpdateRoutesAsync(new Route { Gateway = "10.88.0.1", Device = "eth9" }));
        Assert.Equal(StatusCode.NotFound, unknownDevice.StatusCode);
        Assert.Contains("no guest interface named 'eth9'", unknownDevice.Status.Detail);
        Assert.Contains("eth0", unknownDevice.Status.Detail);

        // The kernel refuses a gateway outside every connected prefix, and says why.
        var unreachable = await Assert.ThrowsAsync<RpcException>(() => UpdateRoutesAsync(new Route { Gateway = "192.0.2.1", Device = "eth0" }));
        Assert.Equal(StatusCode.Internal, unreachable.StatusCode);
        Assert.Contains("add route 0 (default via 192.0.2.1 dev eth0)", unreachable.Status.Detail);

        var taken = Interface("v1", 0);
        var nameTaken = await Assert.ThrowsAsync<RpcException>(() => UpdateInterfaceAsync(taken));
        Assert.Equal(StatusCode.FailedPrecondition, nameTaken.StatusCode);
        Assert.Contains("the name v1 is taken", nameTaken.Status.Detail);

        // Nothing of the refused requests stuck, and the agent keeps serving.
        Assert.Equal(["10.88.0.5/16"], Addresses("eth0"));
        await Client.HealthAsync(new HealthRequest(), Deadline);
    }

    [Fact]
    public async Task Net_sysctls_of_a_container_spec_are_set_in_the_agent_network_namespace()
    {
        string spec = """
            {"process":{"args":["sleep","100"]},"linux":{"namespaces":[{"type":"pid"}],
             "sysctl":{"net.ipv4.ip_unprivileged_port_start":"80"}}}
            """;
        await Client.CreateContainerAsync(new CreateContainerRequest { ContainerId = "sysctl", OciSpecJson = ByteString.CopyFromUtf8(spec), RootfsPath = "/" }, Deadline);
        Assert.Equal("80", InNamespace("cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start").Trim());
        var config = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(_agent.RunDirectory, "containers", "sysctl", "config.json")))!;
        Assert.Empty(config["linux"]!["sysctl"]!.AsObject());
        await Client.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = "sysctl", Force = true }, Deadline);

        string missing = """{"process":{"args":["sleep","100"]},"linux":{"sysctl":{"net.ipv4.no_such_knob":"1"}}}""";
        var error = await Assert.ThrowsAsync<RpcException>(() => Client.CreateContainerAsync(new CreateContainerRequest
        {
            ContainerId = "sysctl2", OciSpecJson = ByteString.CopyFromUtf8(missing), RootfsPath = "/",
        }, Deadline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("net.ipv4.no_such_knob does not exist", error.Status.Detail);
    }
}
