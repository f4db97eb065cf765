using System.Buffers.Binary;
using System.Net;

namespace Sandbox.Agent.Network;

/// <summary>A network interface as RTM_GETLINK reports it.</summary>
public sealed record LinkInfo(int Index, string Name, byte[] Mac, uint Flags, uint Mtu)
{
    public bool IsUp => (Flags & Rtnetlink.IFF_UP) != 0;
    public string MacText => string.Join(':', Mac.Select(b => b.ToString("x2")));
}

/// <summary>An interface address as RTM_GETADDR reports it.</summary>
public sealed record AddressInfo(int Index, byte Family, byte PrefixLength, byte Scope, IPAddress Address)
{
    public override string ToString() => $"{Address}/{PrefixLength}";
}

/// <summary>A route as RTM_GETROUTE reports it, with the header fields needed to delete exactly this route.</summary>
public sealed record RouteInfo(byte Family, byte DestinationLength, byte SourceLength, byte Tos, uint Table, byte Protocol,
    byte Scope, byte Type, IPAddress? Destination, IPAddress? Gateway, int OutputInterface, IPAddress? PreferredSource, uint? Priority)
{
    public override string ToString() =>
        $"{(Destination == null ? "default" : $"{Destination}/{DestinationLength}")}{(Gateway != null ? $" via {Gateway}" : "")} (ifindex {OutputInterface}, protocol {Protocol})";
}

/// <summary>A route to add: destination (null = default route), gateway (null = on-link), device, preferred source, scope.</summary>
public sealed record RouteRequest(byte Family, IpPrefix? Destination, IPAddress? Gateway, int OutputInterface, IPAddress? PreferredSource, byte Scope);

/// <summary>
/// rtnetlink (NETLINK_ROUTE) requests and dump parsers for links, addresses and routes: the constants and struct
/// layouts of linux/netlink.h, linux/rtnetlink.h, linux/if_link.h and linux/if_addr.h.
/// </summary>
public static class Rtnetlink
{
    public const byte AF_UNSPEC = 0, AF_INET = 2, AF_INET6 = 10;
    public const ushort NLMSG_NOOP = 1, NLMSG_ERROR = 2, NLMSG_DONE = 3;
    public const ushort NLM_F_REQUEST = 0x1, NLM_F_MULTI = 0x2, NLM_F_ACK = 0x4, NLM_F_DUMP = 0x300;
    public const ushort NLM_F_REPLACE = 0x100, NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400;
    /// <summary>In an NLMSG_ERROR: the original request was cut to its header / extended-ack TLVs follow.</summary>
    public const ushort NLM_F_CAPPED = 0x100, NLM_F_ACK_TLVS = 0x200;
    public const ushort NLMSGERR_ATTR_MSG = 1;
    public const ushort RTM_NEWLINK = 16, RTM_GETLINK = 18, RTM_NEWADDR = 20, RTM_DELADDR = 21, RTM_GETADDR = 22;
    public const ushort RTM_NEWROUTE = 24, RTM_DELROUTE = 25, RTM_GETROUTE = 26;
    public const ushort IFLA_ADDRESS = 1, IFLA_IFNAME = 3, IFLA_MTU = 4;
    public const ushort IFA_ADDRESS = 1, IFA_LOCAL = 2;
    public const byte IFA_F_NODAD = 0x02;
    public const ushort RTA_DST = 1, RTA_OIF = 4, RTA_GATEWAY = 5, RTA_PRIORITY = 6, RTA_PREFSRC = 7, RTA_TABLE = 15;
    public const uint IFF_UP = 0x1;
    public const byte RT_TABLE_MAIN = 254;
    public const byte RTPROT_KERNEL = 2, RTPROT_BOOT = 3;
    public const byte RTN_UNICAST = 1;
    public const byte RT_SCOPE_UNIVERSE = 0, RT_SCOPE_LINK = 253, RT_SCOPE_HOST = 254;

    private const ushort Ack = NLM_F_REQUEST | NLM_F_ACK;

    public static byte[] GetLinks(uint sequence) =>
        new NetlinkMessageWriter(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP).Write(IfInfoMsg(AF_UNSPEC, 0, 0, 0)).ToArray(sequence);

    /// <summary>Changes the link <paramref name="index"/>: the flags in <paramref name="change"/> to their value in
    /// <paramref name="flags"/>, and the name, MTU and hardware address when given.</summary>
    public static byte[] SetLink(uint sequence, int index, uint flags, uint change, string? name = null, uint mtu = 0, byte[]? address = null)
    {
        var writer = new NetlinkMessageWriter(RTM_NEWLINK, Ack).Write(IfInfoMsg(AF_UNSPEC, index, flags, change));
        if (name != null) writer.Attribute(IFLA_IFNAME, name);
        if (mtu != 0) writer.Attribute(IFLA_MTU, mtu);
        if (address != null) writer.Attribute(IFLA_ADDRESS, address);
        return writer.ToArray(sequence);
    }

    public static byte[] GetAddresses(uint sequence) =>
        new NetlinkMessageWriter(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP).Write(IfAddrMsg(AF_UNSPEC, 0, 0, 0, 0)).ToArray(sequence);

    /// <summary>
    /// Adds the address, or replaces it when it exists (so repeating the request is harmless). IPv6 addresses skip
    /// duplicate address detection (IFA_F_NODAD): the address is the pod's, already given to it on the host, and DAD
    /// would keep it unusable ("tentative") for a second or more after the interface comes up.
    /// </summary>
    public static byte[] AddAddress(uint sequence, int index, IpPrefix address)
    {
        byte[] bytes = address.Address.GetAddressBytes();
        byte flags = address.Family == AF_INET6 ? IFA_F_NODAD : (byte)0;
        return new NetlinkMessageWriter(RTM_NEWADDR, Ack | NLM_F_CREATE | NLM_F_REPLACE)
            .Write(IfAddrMsg(address.Family, (byte)address.PrefixLength, flags, RT_SCOPE_UNIVERSE, index))
            .Attribute(IFA_LOCAL, bytes)
            .Attribute(IFA_ADDRESS, bytes)
            .ToArray(sequence);
    }

    public static byte[] DeleteAddress(uint sequence, AddressInfo address)
    {
        byte[] bytes = address.Address.GetAddressBytes();
        var writer = new NetlinkMessageWriter(RTM_DELADDR, Ack)
            .Write(IfAddrMsg(address.Family, address.PrefixLength, 0, address.Scope, address.Index));
        if (address.Family == AF_INET) writer.Attribute(IFA_LOCAL, bytes);
        return writer.Attribute(IFA_ADDRESS, bytes).ToArray(sequence);
    }

    public static byte[] GetRoutes(uint sequence) =>
        new NetlinkMessageWriter(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP).Write(RtMsg(AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0)).ToArray(sequence);

    /// <summary>Adds a route to the main table (protocol boot, as `ip route add` does), replacing an equal one.</summary>
    public static byte[] AddRoute(uint sequence, RouteRequest route)
    {
        var writer = new NetlinkMessageWriter(RTM_NEWROUTE, Ack | NLM_F_CREATE | NLM_F_REPLACE)
            .Write(RtMsg(route.Family, (byte)(route.Destination?.PrefixLength ?? 0), 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, route.Scope, RTN_UNICAST));
        if (route.Destination != null) writer.Attribute(RTA_DST, route.Destination.Address.GetAddressBytes());
        if (route.Gateway != null) writer.Attribute(RTA_GATEWAY, route.Gateway.GetAddressBytes());
        if (route.PreferredSource != null) writer.Attribute(RTA_PREFSRC, route.PreferredSource.GetAddressBytes());
        writer.Attribute(RTA_OIF, (uint)route.OutputInterface);
        return writer.ToArray(sequence);
    }

    /// <summary>Deletes exactly the dumped route (same header fields and key attributes).</summary>
    public static byte[] DeleteRoute(uint sequence, RouteInfo route)
    {
        var writer = new NetlinkMessageWriter(RTM_DELROUTE, Ack)
            .Write(RtMsg(route.Family, route.DestinationLength, route.SourceLength, route.Tos, route.Table > 255 ? (byte)0 : (byte)route.Table,
                route.Protocol, route.Scope, route.Type));
        writer.Attribute(RTA_TABLE, route.Table);
        if (route.Destination != null) writer.Attribute(RTA_DST, route.Destination.GetAddressBytes());
        if (route.Gateway != null) writer.Attribute(RTA_GATEWAY, route.Gateway.GetAddressBytes());
        if (route.OutputInterface != 0) writer.Attribute(RTA_OIF, (uint)route.OutputInterface);
        if (route.Priority is { } priority) writer.Attribute(RTA_PRIORITY, priority);
        return writer.ToArray(sequence);
    }

    public static LinkInfo ParseLink(byte[] payload)
    {
        if (payload.Length < 16) throw new FormatException($"RTM_NEWLINK payload of {payload.Length} bytes is shorter than ifinfomsg");
        int index = BinaryPrimitives.ReadInt32LittleEndian(payload.AsSpan(4));
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(payload.AsSpan(8));
        var attributes = NetlinkAttributes.Parse(payload.AsSpan(16));
        return new LinkInfo(index, NetlinkAttributes.String(attributes, IFLA_IFNAME) ?? $"if{index}",
            attributes.GetValueOrDefault(IFLA_ADDRESS) ?? [], flags, NetlinkAttributes.UInt32(attributes, IFLA_MTU) ?? 0);
    }

    public static AddressInfo ParseAddress(byte[] payload)
    {
        if (payload.Length < 8) throw new FormatException($"RTM_NEWADDR payload of {payload.Length} bytes is shorter than ifaddrmsg");
        var attributes = NetlinkAttributes.Parse(payload.AsSpan(8));
        byte[] address = attributes.GetValueOrDefault(IFA_LOCAL) ?? attributes.GetValueOrDefault(IFA_ADDRESS) ?? [];
        return new AddressInfo(BinaryPrimitives.ReadInt32LittleEndian(payload.AsSpan(4)), payload[0], payload[1], payload[3],
            address.Length is 4 or 16 ? new IPAddress(address) : IPAddress.None);
    }

    public static RouteInfo ParseRoute(byte[] payload)
    {
        if (payload.Length < 12) throw new FormatException($"RTM_NEWROUTE payload of {payload.Length} bytes is shorter than rtmsg");
        var attributes = NetlinkAttributes.Parse(payload.AsSpan(12));
        return new RouteInfo(payload[0], payload[1], payload[2], payload[3], NetlinkAttributes.UInt32(attributes, RTA_TABLE) ?? payload[4],
            payload[5], payload[6], payload[7], AddressOf(attributes, RTA_DST), AddressOf(attributes, RTA_GATEWAY),
            (int)(NetlinkAttributes.UInt32(attributes, RTA_OIF) ?? 0), AddressOf(attributes, RTA_PREFSRC),
            NetlinkAttributes.UInt32(attributes, RTA_PRIORITY));
    }

    /// <summary>
    /// Reads an NLMSG_ERROR payload: the negative errno (0 = an acknowledgement) and, when the kernel sent extended
    /// acknowledgements, its human-readable message (e.g. "Nexthop has invalid gateway").
    /// </summary>
    public static (int Errno, string? Message) ParseError(NetlinkMessage message)
    {
        byte[] payload = message.Payload;
        if (payload.Length < 4) throw new FormatException("NLMSG_ERROR payload is shorter than its error code");
        int errno = -BinaryPrimitives.ReadInt32LittleEndian(payload);
        if ((message.Flags & NLM_F_ACK_TLVS) == 0 || payload.Length < 4 + NetlinkMessage.HeaderSize) return (errno, null);
        int offset = 4 + NetlinkMessage.HeaderSize;
        if ((message.Flags & NLM_F_CAPPED) == 0)
        {
            uint originalLength = BinaryPrimitives.ReadUInt32LittleEndian(payload.AsSpan(4));
            offset = 4 + NetlinkMessage.Align((int)Math.Min(originalLength, (uint)payload.Length));
        }
        if (offset >= payload.Length) return (errno, null);
        return (errno, NetlinkAttributes.String(NetlinkAttributes.Parse(payload.AsSpan(offset)), NLMSGERR_ATTR_MSG));
    }

    private static IPAddress? AddressOf(Dictionary<ushort, byte[]> attributes, ushort type) =>
        attributes.TryGetValue(type, out byte[]? bytes) && bytes.Length is 4 or 16 ? new IPAddress(bytes) : null;

    private static byte[] IfInfoMsg(byte family, int index, uint flags, uint change)
    {
        var bytes = new byte[16];
        bytes[0] = family;
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), index);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(12), change);
        return bytes;
    }

    private static byte[] IfAddrMsg(byte family, byte prefixLength, byte flags, byte scope, int index)
    {
        var bytes = new byte[8];
        bytes[0] = family;
        bytes[1] = prefixLength;
        bytes[2] = flags;
        bytes[3] = scope;
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), index);
        return bytes;
    }

    private static byte[] RtMsg(byte family, byte dstLength, byte srcLength, byte tos, byte table, byte protocol, byte scope, byte type) =>
        [family, dstLength, srcLength, tos, table, protocol, scope, type, 0, 0, 0, 0];
}
