using System.Net;
using Grpc.Core;
using Sandbox.Agent.Network;
using Sandbox.Agent.Protocol;

namespace Sandbox.Agent.Tests;

/// <summary>rtnetlink message encoding and decoding, byte for byte against the layouts of linux/rtnetlink.h.</summary>
public class NetlinkEncodingTests
{
    [Fact]
    public void AddAddress_is_an_ifaddrmsg_with_local_and_address_attributes()
    {
        byte[] message = Rtnetlink.AddAddress(7, 2, new IpPrefix(IPAddress.Parse("10.88.0.5"), 16));
        byte[] expected =
        [
            40, 0, 0, 0, /* RTM_NEWADDR */ 20, 0, /* REQUEST|ACK|REPLACE|CREATE */ 0x05, 0x05, 7, 0, 0, 0, 0, 0, 0, 0,
            /* ifaddrmsg: AF_INET, /16, flags, scope universe, index 2 */ 2, 16, 0, 0, 2, 0, 0, 0,
            /* IFA_LOCAL */ 8, 0, 2, 0, 10, 88, 0, 5,
            /* IFA_ADDRESS */ 8, 0, 1, 0, 10, 88, 0, 5,
        ];
        Assert.Equal(expected, message);
    }

    [Fact]
    public void An_IPv6_address_carries_16_bytes_AF_INET6_and_skips_duplicate_address_detection()
    {
        byte[] message = Rtnetlink.AddAddress(1, 3, new IpPrefix(IPAddress.Parse("fd00::5"), 64));
        Assert.Equal(16 + 8 + 20 + 20, message.Length);
        Assert.Equal(10, message[16]); // AF_INET6
        Assert.Equal(64, message[17]);
        Assert.Equal(Rtnetlink.IFA_F_NODAD, message[18]); // no duplicate address detection: usable at once
        Assert.Equal(new byte[] { 20, 0, 2, 0, 0xfd, 0 }, message[24..30]);
        Assert.Equal(5, message[24 + 19]);
    }

    [Fact]
    public void SetLink_renames_with_a_nul_terminated_padded_name_and_sets_the_mtu()
    {
        byte[] message = Rtnetlink.SetLink(9, 4, 0, 0, name: "eth0", mtu: 1400);
        byte[] expected =
        [
            52, 0, 0, 0, /* RTM_NEWLINK */ 16, 0, /* REQUEST|ACK */ 5, 0, 9, 0, 0, 0, 0, 0, 0, 0,
            /* ifinfomsg: AF_UNSPEC, pad, type, index 4, flags 0, change 0 */ 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            /* IFLA_IFNAME "eth0\0" + 3 bytes of padding */ 9, 0, 3, 0, (byte)'e', (byte)'t', (byte)'h', (byte)'0', 0, 0, 0, 0,
            /* IFLA_MTU 1400 */ 8, 0, 4, 0, 0x78, 0x05, 0, 0,
        ];
        Assert.Equal(expected, message);
    }

    [Fact]
    public void SetLink_up_sets_IFF_UP_in_flags_and_change()
    {
        byte[] message = Rtnetlink.SetLink(1, 1, Rtnetlink.IFF_UP, Rtnetlink.IFF_UP);
        Assert.Equal(32, message.Length);
        Assert.Equal(new byte[] { 1, 0, 0, 0, 1, 0, 0, 0 }, message[24..32]);
    }

    [Fact]
    public void AddRoute_default_via_gateway_goes_to_the_main_table_with_protocol_boot()
    {
        byte[] message = Rtnetlink.AddRoute(3, new RouteRequest(Rtnetlink.AF_INET, null, IPAddress.Parse("10.0.0.1"), 3, null, 0));
        byte[] expected =
        [
            44, 0, 0, 0, /* RTM_NEWROUTE */ 24, 0, 0x05, 0x05, 3, 0, 0, 0, 0, 0, 0, 0,
            /* rtmsg: AF_INET, dst_len 0, src_len, tos, table main, proto boot, scope universe, unicast, flags */
            2, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0,
            /* RTA_GATEWAY */ 8, 0, 5, 0, 10, 0, 0, 1,
            /* RTA_OIF 3 */ 8, 0, 4, 0, 3, 0, 0, 0,
        ];
        Assert.Equal(expected, message);
    }

    [Fact]
    public void A_link_route_carries_its_destination_prefix_source_and_scope()
    {
        byte[] message = Rtnetlink.AddRoute(1, new RouteRequest(Rtnetlink.AF_INET, new IpPrefix(IPAddress.Parse("10.88.0.0"), 16), null, 2,
            IPAddress.Parse("10.88.0.5"), Rtnetlink.RT_SCOPE_LINK));
        Assert.Equal(16, message[17]);  // rtm_dst_len
        Assert.Equal(253, message[22]); // rtm_scope
        var attributes = NetlinkAttributes.Parse(message.AsSpan(28));
        Assert.Equal(new byte[] { 10, 88, 0, 0 }, attributes[Rtnetlink.RTA_DST]);
        Assert.Equal(new byte[] { 10, 88, 0, 5 }, attributes[Rtnetlink.RTA_PREFSRC]);
        Assert.Equal(2u, NetlinkAttributes.UInt32(attributes, Rtnetlink.RTA_OIF));
        Assert.False(attributes.ContainsKey(Rtnetlink.RTA_GATEWAY));
    }

    [Fact]
    public void A_dumped_route_parses_and_its_delete_request_names_the_same_route()
    {
        byte[] dumped = new NetlinkMessageWriter(Rtnetlink.RTM_NEWROUTE, 0)
            .Write([2, 8, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0])
            .Attribute(Rtnetlink.RTA_TABLE, 254u)
            .Attribute(Rtnetlink.RTA_DST, [10, 0, 0, 0])
            .Attribute(Rtnetlink.RTA_GATEWAY, [192, 168, 1, 1])
            .Attribute(Rtnetlink.RTA_OIF, 5u)
            .ToArray(1)[16..];
        RouteInfo route = Rtnetlink.ParseRoute(dumped);
        Assert.Equal(IPAddress.Parse("10.0.0.0"), route.Destination);
        Assert.Equal(8, route.DestinationLength);
        Assert.Equal(IPAddress.Parse("192.168.1.1"), route.Gateway);
        Assert.Equal(5, route.OutputInterface);
        Assert.Equal(254u, route.Table);
        Assert.Equal(Rtnetlink.RTPROT_BOOT, route.Protocol);

        byte[] delete = Rtnetlink.DeleteRoute(2, route);
        Assert.Equal(Rtnetlink.RTM_DELROUTE, BitConverter.ToUInt16(delete, 4));
        Assert.Equal(dumped[..12], delete[16..28]);
        var attributes = NetlinkAttributes.Parse(delete.AsSpan(28));
        Assert.Equal(new byte[] { 10, 0, 0, 0 }, attributes[Rtnetlink.RTA_DST]);
        Assert.Equal(new byte[] { 192, 168, 1, 1 }, attributes[Rtnetlink.RTA_GATEWAY]);
        Assert.Equal(5u, NetlinkAttributes.UInt32(attributes, Rtnetlink.RTA_OIF));
    }

    [Fact]
    public void A_dumped_link_gives_index_name_mac_flags_and_mtu()
    {
        byte[] payload = new NetlinkMessageWriter(Rtnetlink.RTM_NEWLINK, 0)
            .Write([0, 0, 1, 0, 2, 0, 0, 0, 0x43, 0x10, 0, 0, 0, 0, 0, 0])
            .Attribute(Rtnetlink.IFLA_ADDRESS, [0x52, 0x54, 0, 0x12, 0x34, 0x56])
            .Attribute(Rtnetlink.IFLA_IFNAME, "eth0")
            .Attribute(Rtnetlink.IFLA_MTU, 1500u)
            .ToArray(1)[16..];
        LinkInfo link = Rtnetlink.ParseLink(payload);
        Assert.Equal(2, link.Index);
        Assert.Equal("eth0", link.Name);
        Assert.Equal("52:54:00:12:34:56", link.MacText);
        Assert.True(link.IsUp);
        Assert.Equal(1500u, link.Mtu);
    }

    [Fact]
    public void Several_messages_in_one_datagram_are_split_at_4_byte_boundaries()
    {
        byte[] datagram =
        [
            18, 0, 0, 0, 16, 0, 2, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0xbb, /* padding */ 0, 0,
            16, 0, 0, 0, 3, 0, 2, 0, 5, 0, 0, 0, 0, 0, 0, 0,
        ];
        var messages = NetlinkMessage.ParseAll(datagram);
        Assert.Equal(2, messages.Count);
        Assert.Equal(new byte[] { 0xaa, 0xbb }, messages[0].Payload);
        Assert.Equal(Rtnetlink.NLMSG_DONE, messages[1].Type);
        Assert.Equal(5u, messages[1].Sequence);
        Assert.Throws<FormatException>(() => NetlinkMessage.ParseAll([200, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    }

    [Fact]
    public void An_error_with_extended_ack_gives_errno_and_the_kernel_message()
    {
        // Capped: the original request is cut to its 16-byte header; the TLVs follow it.
        byte[] capped =
        [
            0xea, 0xff, 0xff, 0xff, // -22
            44, 0, 0, 0, 24, 0, 5, 5, 3, 0, 0, 0, 0, 0, 0, 0,
            11, 0, 1, 0, (byte)'b', (byte)'a', (byte)'d', (byte)' ', (byte)'g', (byte)'w', 0, 0,
        ];
        var (errno, text) = Rtnetlink.ParseError(new NetlinkMessage(Rtnetlink.NLMSG_ERROR, Rtnetlink.NLM_F_CAPPED | Rtnetlink.NLM_F_ACK_TLVS, 3, capped));
        Assert.Equal(22, errno);
        Assert.Equal("bad gw", text);

        // Not capped: the whole original request (here 20 bytes) sits between the error code and the TLVs.
        byte[] full =
        [
            0xef, 0xff, 0xff, 0xff, // -17
            20, 0, 0, 0, 20, 0, 5, 5, 3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4,
            9, 0, 1, 0, (byte)'d', (byte)'u', (byte)'p', (byte)'!', 0, 0, 0, 0,
        ];
        Assert.Equal((17, "dup!"), Rtnetlink.ParseError(new NetlinkMessage(Rtnetlink.NLMSG_ERROR, Rtnetlink.NLM_F_ACK_TLVS, 3, full)));

        // A plain acknowledgement.
        Assert.Equal((0, null), Rtnetlink.ParseError(new NetlinkMessage(Rtnetlink.NLMSG_ERROR, Rtnetlink.NLM_F_CAPPED, 3, new byte[20])));
    }

    [Fact]
    public void The_real_kernel_answers_a_link_dump_with_the_loopback_interface()
    {
        using var netlink = NetlinkSocket.Open();
        var links = netlink.Dump(Rtnetlink.GetLinks(netlink.NextSequence()), Rtnetlink.RTM_NEWLINK).Select(Rtnetlink.ParseLink).ToList();
        LinkInfo lo = Assert.Single(links, l => l.Name == "lo");
        Assert.Equal(1, lo.Index);
        Assert.Equal("00:00:00:00:00:00", lo.MacText);
    }

    [Fact]
    public void The_real_kernel_refusal_carries_errno_and_its_message()
    {
        using var netlink = NetlinkSocket.Open();
        // Deleting an address that does not exist on lo: EADDRNOTAVAIL (99) for IPv4.
        var error = Assert.Throws<NetlinkException>(() => netlink.Execute(
            Rtnetlink.DeleteAddress(netlink.NextSequence(), new AddressInfo(1, Rtnetlink.AF_INET, 32, 0, IPAddress.Parse("192.0.2.77")))));
        Assert.Equal(99, error.Errno);
        Assert.Contains("errno 99", error.Message);
    }
}

public class NetworkRequestValidationTests
{
    [Theory]
    [InlineData("10.0.0.0/8", "10.0.0.0", 8)]
    [InlineData("fd00::/64", "fd00::", 64)]
    [InlineData("0.0.0.0/0", "0.0.0.0", 0)]
    [InlineData("192.168.1.7", "192.168.1.7", 32)]
    public void Cidr_prefixes_parse(string text, string address, int length)
    {
        Assert.True(IpPrefix.TryParseCidr(text, out IpPrefix prefix, out _));
        Assert.Equal(IPAddress.Parse(address), prefix.Address);
        Assert.Equal(length, prefix.PrefixLength);
    }

    [Theory]
    [InlineData("10.0.0.5/8", "host bits")]
    [InlineData("10.0.0.0/33", "prefix length")]
    [InlineData("10.0.0/8", "not a CIDR")]
    [InlineData("banana", "not a CIDR")]
    [InlineData("fd00::/129", "prefix length")]
    public void Bad_cidr_prefixes_say_why(string text, string reason)
    {
        Assert.False(IpPrefix.TryParseCidr(text, out _, out string error));
        Assert.Contains(reason, error);
    }

    [Fact]
    public void An_interface_request_is_validated_field_by_field()
    {
        var good = new NetworkInterface { Name = "eth0", Mac = "AA:bb:cc:dd:ee:0f", Mtu = 1450 };
        good.Addresses.Add(new IpAddress { Address = "10.88.0.5", PrefixLength = 16 });
        good.Addresses.Add(new IpAddress { Address = "fd00::5", PrefixLength = 64 });
        InterfacePlan plan = InterfacePlan.Validate(good);
        Assert.Equal("aa:bb:cc:dd:ee:0f", plan.MacText);
        Assert.Equal(new byte[] { 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f }, plan.Mac);
        Assert.Equal(["10.88.0.5/16", "fd00::5/64"], plan.Addresses.Select(a => a.ToString()));

        AssertInvalid(new NetworkInterface { Name = "eth0", Mac = "aa:bb:cc:dd:ee" }, "mac 'aa:bb:cc:dd:ee'");
        AssertInvalid(new NetworkInterface { Name = "eth0", Mac = "aa:bb:cc:dd:ee:zz" }, "is not a MAC address");
        AssertInvalid(new NetworkInterface { Name = "a-very-long-interface-name", Mac = "aa:bb:cc:dd:ee:ff" }, "not a valid interface name");
        AssertInvalid(new NetworkInterface { Name = "eth/0", Mac = "aa:bb:cc:dd:ee:ff" }, "not a valid interface name");
        AssertInvalid(new NetworkInterface { Name = "eth0", Mac = "aa:bb:cc:dd:ee:ff", Mtu = 20 }, "mtu 20");
        var badAddress = new NetworkInterface { Name = "eth0", Mac = "aa:bb:cc:dd:ee:ff" };
        badAddress.Addresses.Add(new IpAddress { Address = "10.88.0.500", PrefixLength = 16 });
        AssertInvalid(badAddress, "'10.88.0.500' is not an IPv4 or IPv6 address");
        var badPrefix = new NetworkInterface { Name = "eth0", Mac = "aa:bb:cc:dd:ee:ff" };
        badPrefix.Addresses.Add(new IpAddress { Address = "10.88.0.5", PrefixLength = 40 });
        AssertInvalid(badPrefix, "prefix length 40 of 10.88.0.5 is out of range (0-32)");
        Assert.Equal(StatusCode.InvalidArgument, Assert.Throws<RpcException>(() => InterfacePlan.Validate(null)).StatusCode);
    }

    private static void AssertInvalid(NetworkInterface request, string expected)
    {
        var error = Assert.Throws<RpcException>(() => InterfacePlan.Validate(request));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains(expected, error.Status.Detail);
    }

    [Fact]
    public void Routes_are_validated_and_get_their_family()
    {
        var v6 = GuestNetwork.ValidateRoute(0, new Route { Destination = "", Gateway = "fd00::1", Device = "eth0" });
        Assert.Equal(Rtnetlink.AF_INET6, v6.Family);
        Assert.Null(v6.Destination);
        var link = GuestNetwork.ValidateRoute(1, new Route { Destination = "10.88.0.0/16", Device = "eth0", Source = "10.88.0.5", Scope = 253 });
        Assert.Equal(Rtnetlink.AF_INET, link.Family);
        Assert.Equal(16, link.Destination!.PrefixLength);

        AssertInvalidRoute(new Route { Destination = "10.0.0.0/8", Gateway = "10.0.0.1" }, "route 2 (10.0.0.0/8 via 10.0.0.1 dev ?): device is empty");
        AssertInvalidRoute(new Route { Destination = "10.0.0.1/8", Device = "eth0" }, "host bits");
        AssertInvalidRoute(new Route { Gateway = "10.0.0.256", Device = "eth0" }, "gateway '10.0.0.256'");
        AssertInvalidRoute(new Route { Destination = "fd00::/64", Gateway = "10.0.0.1", Device = "eth0" }, "mix IPv4 and IPv6");
        AssertInvalidRoute(new Route { Gateway = "10.0.0.1", Device = "eth0", Scope = 300 }, "scope 300");
    }

    private static void AssertInvalidRoute(Route route, string expected)
    {
        var error = Assert.Throws<RpcException>(() => GuestNetwork.ValidateRoute(2, route));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains(expected, error.Status.Detail);
    }
}
