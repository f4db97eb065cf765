using Sandbox.Runtime.Network;

namespace Sandbox.IntegrationTests;

/// <summary>Pure parts of the pod network: iproute2 JSON, the tap/redirect plan, the agent requests. No root needed.</summary>
public sealed class PodNetworkPlanningTests
{
    // Captured from `ip -d -j addr show` in a namespace with a CNI-like veth (iproute2 6.1).
    private const string Links = """
        [{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","link_type":"loopback","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo"},{"family":"inet6","local":"::1","prefixlen":128,"scope":"host"}]},
         {"ifindex":2,"link_index":6,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1450,"operstate":"UP","link_type":"ether","address":"46:2C:DA:00:5B:61","link_netnsid":0,"linkinfo":{"info_kind":"veth"},"addr_info":[{"family":"inet","local":"10.213.9.2","prefixlen":24,"scope":"global","label":"eth0"},{"family":"inet6","local":"fd99::2","prefixlen":64,"scope":"global","nodad":true},{"family":"inet6","local":"fe80::442c:daff:fe00:5b61","prefixlen":64,"scope":"link"}]},
         {"ifindex":3,"ifname":"tap0_sbx","flags":["BROADCAST","MULTICAST","UP"],"mtu":1450,"link_type":"ether","address":"8a:8d:37:9f:f8:fe","linkinfo":{"info_kind":"tun","info_data":{"type":"tap","pi":false,"vnet_hdr":false,"multi_queue":false,"persist":true}},"addr_info":[]},
         {"ifindex":4,"ifname":"veth-noaddr","flags":["BROADCAST"],"mtu":1500,"address":"02:00:00:00:00:04","linkinfo":{"info_kind":"veth"},"addr_info":[]}]
        """;

    private const string Routes4 = """
        [{"dst":"default","gateway":"10.213.9.1","dev":"eth0","flags":[]},{"dst":"10.99.0.0/16","gateway":"10.213.9.1","dev":"eth0","flags":[]},{"dst":"10.213.9.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"10.213.9.2","flags":[]},{"dst":"10.1.1.1","dev":"eth0","scope":"link","flags":[]},{"type":"unreachable","dst":"10.66.0.0/16","flags":[]}]
        """;

    private const string Routes6 = """
        [{"dst":"fd99::/64","dev":"eth0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},{"dst":"fe80::/64","dev":"eth0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},{"dst":"default","gateway":"fd99::1","dev":"eth0","metric":1024,"flags":[],"pref":"medium"},{"type":"multicast","dst":"ff00::/8","dev":"eth0","table":"local","protocol":"kernel","metric":256,"flags":[],"pref":"medium"}]
        """;

    // `tc -j filter show dev eth0 ingress` after the set-up: three entries, only the last has the action.
    private const string EthFilters = """
        [{"parent":"ffff:","protocol":"all","pref":49152,"kind":"u32","chain":0},{"parent":"ffff:","protocol":"all","pref":49152,"kind":"u32","chain":0,"options":{"fh":"800:","ht_divisor":1}},{"parent":"ffff:","protocol":"all","pref":49152,"kind":"u32","chain":0,"options":{"fh":"800::800","order":2048,"key_ht":"800","bkt":"0","not_in_hw":true,"match":{"value":"0","mask":"0","offmask":"","off":0},"actions":[{"order":1,"kind":"mirred","mirred_action":"redirect","direction":"egress","to_dev":"tap0_sbx","control_action":{"type":"stolen"},"index":1,"ref":1,"bind":1}]}}]
        """;

    private static NetnsSnapshot Snapshot(params NetnsIngress[] ingresses) => new(
        IpJsonParser.ParseLinks(Links),
        [.. IpJsonParser.ParseRoutes(Routes4, ipv6: false), .. IpJsonParser.ParseRoutes(Routes6, ipv6: true)],
        ingresses);

    [Fact]
    public void Links_have_kind_mac_mtu_state_and_addresses()
    {
        var links = IpJsonParser.ParseLinks(Links);
        Assert.Equal(["lo", "eth0", "tap0_sbx", "veth-noaddr"], links.Select(l => l.Name));
        var eth0 = links[1];
        Assert.Equal((2, "veth", "46:2c:da:00:5b:61", 1450, true), (eth0.Index, eth0.Kind, eth0.Mac, eth0.Mtu, eth0.IsUp));
        Assert.Equal(["10.213.9.2/24", "fd99::2/64", "fe80::442c:daff:fe00:5b61/64"], eth0.Addresses.Select(a => a.ToString()));
        Assert.Equal([false, true, true], eth0.Addresses.Select(a => a.IsIPv6));
        Assert.Equal(["global", "global", "link"], eth0.Addresses.Select(a => a.Scope));
        Assert.Null(links[0].Kind);
        Assert.Equal("tun", links[2].Kind);
        Assert.False(links[3].IsUp);
    }

    [Fact]
    public void Routes_become_cidrs_with_rtnetlink_scopes()
    {
        var routes = IpJsonParser.ParseRoutes(Routes4, ipv6: false);
        Assert.Equal(new NetnsRoute("", "10.213.9.1", "eth0", "", 0, "unicast", false), routes[0]);
        Assert.Equal(new NetnsRoute("10.213.9.0/24", "", "eth0", "10.213.9.2", 253, "unicast", false), routes[2]);
        Assert.Equal("10.1.1.1/32", routes[3].Destination);
        Assert.Equal(("unreachable", ""), (routes[4].Type, routes[4].Device));
        var routes6 = IpJsonParser.ParseRoutes(Routes6, ipv6: true);
        Assert.Equal(new NetnsRoute("", "fd99::1", "eth0", "", 0, "unicast", true), routes6[2]);
        Assert.Equal("2001:db8::1/128", IpJsonParser.ParseRoutes("""[{"dst":"2001:db8::1","dev":"eth0"}]""", ipv6: true)[0].Destination);
    }

    [Fact]
    public void Ingress_filters_and_qdiscs()
    {
        var ingress = IpJsonParser.ParseIngressFilters("eth0", EthFilters);
        Assert.Equal(["tap0_sbx"], ingress.RedirectTargets);
        Assert.Equal(0, ingress.OtherActions);
        var police = IpJsonParser.ParseIngressFilters("eth0",
            """[{"kind":"u32","options":{"actions":[{"order":1,"kind":"police","control_action":{"type":"drop"}}]}}]""");
        Assert.Equal((0, 1), (police.RedirectTargets.Count, police.OtherActions));
        Assert.Empty(IpJsonParser.ParseIngressFilters("eth0", "").RedirectTargets);
        Assert.Equal(["eth0"], IpJsonParser.ParseIngressQdiscDevices(
            """[{"kind":"noqueue","handle":"0:","dev":"lo","root":true},{"kind":"ingress","handle":"ffff:","dev":"eth0","parent":"ffff:fff1"}]"""));
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("[{\"ifname\":\"eth0\"}]")]
    [InlineData("[not json")]
    public void Malformed_output_is_a_format_error(string json) =>
        Assert.Throws<FormatException>(() => IpJsonParser.ParseLinks(json));

    [Fact]
    public void Unknown_scope_is_a_format_error() =>
        Assert.Throws<FormatException>(() => IpJsonParser.ParseRoutes("""[{"dst":"10.0.0.0/8","dev":"eth0","scope":"galaxy"}]""", ipv6: false));

    [Fact]
    public void Each_addressed_veth_becomes_a_guest_card_with_global_addresses_and_its_routes()
    {
        var nics = TapRedirectPlanner.GuestNics(Snapshot());
        var nic = Assert.Single(nics); // lo is no veth, tap0_sbx is ours, veth-noaddr has no address
        Assert.Equal(("tap0_sbx", "eth0", "46:2c:da:00:5b:61", 1450), (nic.TapName, nic.Name, nic.Mac, nic.Mtu));
        Assert.Equal(["10.213.9.2/24", "fd99::2/64"], nic.Addresses.Select(a => a.ToString()));
        // Link routes first; no fe80::/64, no multicast, no unreachable (not through eth0).
        Assert.Equal(["10.213.9.0/24", "10.1.1.1/32", "fd99::/64", "", "10.99.0.0/16", ""], nic.Routes.Select(r => r.Destination));
        Assert.Equal(["", "", "", "10.213.9.1", "10.213.9.1", "fd99::1"], nic.Routes.Select(r => r.Gateway));
    }

    [Fact]
    public void Set_up_makes_the_tap_then_the_redirects_veth_last()
    {
        var nic = TapRedirectPlanner.GuestNics(Snapshot())[0];
        Assert.Equal(
        [
            "ip tuntap add dev tap0_sbx mode tap",
            "ip link set dev tap0_sbx mtu 1450 up",
            "tc qdisc add dev tap0_sbx ingress",
            "tc filter add dev tap0_sbx parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev eth0",
            "tc qdisc add dev eth0 ingress",
            "tc filter add dev eth0 parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev tap0_sbx",
        ], TapRedirectPlanner.SetUpCommands([nic]).Select(c => c.ToString()));
    }

    [Fact]
    public void Set_up_is_recognised_only_when_complete()
    {
        var nics = TapRedirectPlanner.GuestNics(Snapshot());
        var complete = Snapshot(new NetnsIngress("eth0", ["tap0_sbx"], 0), new NetnsIngress("tap0_sbx", ["eth0"], 0));
        Assert.True(TapRedirectPlanner.IsSetUp(complete, nics));
        Assert.False(TapRedirectPlanner.IsSetUp(Snapshot(new NetnsIngress("tap0_sbx", ["eth0"], 0)), nics));
        Assert.False(TapRedirectPlanner.IsSetUp(Snapshot(new NetnsIngress("eth0", ["tap0_sbx"], 1), new NetnsIngress("tap0_sbx", ["eth0"], 0)), nics));
        Assert.False(TapRedirectPlanner.IsSetUp(complete with { Links = complete.Links.Where(l => l.Name != "tap0_sbx").ToList() }, nics));
        Assert.False(TapRedirectPlanner.IsSetUp(complete with
        {
            Links = complete.Links.Select(l => l.Name == "tap0_sbx" ? l with { Mtu = 1500 } : l).ToList(),
        }, nics));
    }

    [Fact]
    public void Tear_down_removes_our_redirecting_qdiscs_and_our_taps_only()
    {
        var snapshot = Snapshot(
            new NetnsIngress("eth0", ["tap0_sbx"], 0),
            new NetnsIngress("tap0_sbx", ["eth0"], 0),
            new NetnsIngress("veth-noaddr", [], 1)); // someone else's filter: left alone
        Assert.Equal(["tc qdisc del dev eth0 ingress", "ip link del dev tap0_sbx"],
            TapRedirectPlanner.TearDownCommands(snapshot).Select(c => c.ToString()));
    }

    [Fact]
    public void Tear_down_after_an_interrupted_set_up_removes_an_empty_ingress_qdisc_too()
    {
        var snapshot = Snapshot(new NetnsIngress("eth0", [], 0));
        Assert.Equal(["tc qdisc del dev eth0 ingress", "ip link del dev tap0_sbx"],
            TapRedirectPlanner.TearDownCommands(snapshot).Select(c => c.ToString()));
    }

    [Fact]
    public void Tear_down_without_a_tap_of_ours_touches_nothing()
    {
        var snapshot = Snapshot(new NetnsIngress("eth0", [], 0));
        snapshot = snapshot with { Links = snapshot.Links.Where(l => l.Name != "tap0_sbx").ToList() };
        Assert.Empty(TapRedirectPlanner.TearDownCommands(snapshot));
        // A "tun" link with another name is not ours either.
        Assert.False(TapRedirectPlanner.IsOurTap(new NetnsLink(9, "tap0_kata", "tun", "", 1500, true, [])));
        Assert.False(TapRedirectPlanner.IsOurTap(new NetnsLink(9, "tap0_sbx", "veth", "", 1500, true, [])));
    }

    [Fact]
    public void Agent_requests_carry_name_mac_mtu_addresses_and_ordered_routes()
    {
        var nic = TapRedirectPlanner.GuestNics(Snapshot())[0];
        var update = GuestNetworkClient.InterfaceRequest(nic).Interface;
        Assert.Equal(("eth0", "46:2c:da:00:5b:61", 1450u), (update.Name, update.Mac, update.Mtu));
        Assert.Equal(["10.213.9.2/24", "fd99::2/64"], update.Addresses.Select(a => $"{a.Address}/{a.PrefixLength}"));

        var second = nic with { TapName = "tap1_sbx", Name = "net1", Routes = [new NetnsRoute("10.5.0.0/16", "", "net1", "", 253, "unicast", false)] };
        var routes = GuestNetworkClient.RoutesRequest([nic, second]).Routes;
        Assert.Equal(
            ["10.213.9.0/24 via  dev eth0 src 10.213.9.2 scope 253", "10.1.1.1/32 via  dev eth0 src  scope 253",
             "fd99::/64 via  dev eth0 src  scope 0", "10.5.0.0/16 via  dev net1 src  scope 253",
             " via 10.213.9.1 dev eth0 src  scope 0", "10.99.0.0/16 via 10.213.9.1 dev eth0 src  scope 0", " via fd99::1 dev eth0 src  scope 0"],
            routes.Select(r => $"{r.Destination} via {r.Gateway} dev {r.Device} src {r.Source} scope {r.Scope}"));
    }

    [Fact]
    public void A_relative_namespace_path_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() => new PodNetwork("pod1", "netns/x"));
        Assert.Contains("sandbox pod1", error.Message);
    }
}

/// <summary>Where the shim finds the pod's namespace: config.json's linux.namespaces.</summary>
public sealed class OciNetworkNamespaceTests
{
    [Fact]
    public void Cri_sandbox_spec_names_the_cni_namespace() => Assert.Equal("/var/run/netns/cni-8a1c",
        OciNetworkNamespace.PathOf("""{"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/var/run/netns/cni-8a1c"},{"type":"ipc"}]}}"""));

    [Theory]
    [InlineData("""{"linux":{"namespaces":[{"type":"pid"},{"type":"network"}]}}""")] // ctr run: a new, empty namespace
    [InlineData("""{"linux":{"namespaces":[{"type":"pid"}]}}""")]                   // host network
    [InlineData("""{"linux":{}}""")]
    [InlineData("""{"process":{}}""")]
    [InlineData("""{"linux":{"namespaces":[{"type":"network","path":""}]}}""")]
    public void No_path_means_no_pod_network(string json) => Assert.Null(OciNetworkNamespace.PathOf(json));

    [Theory]
    [InlineData("[]")]
    [InlineData("{not json")]
    public void Malformed_config_is_a_format_error(string json) =>
        Assert.Throws<FormatException>(() => OciNetworkNamespace.PathOf(json));
}
