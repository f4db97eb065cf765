using System.Buffers.Binary;
using System.Text;

namespace Sandbox.Agent.Network;

/// <summary>One netlink message as received: the nlmsghdr fields and the payload after the 16-byte header.</summary>
public sealed record NetlinkMessage(ushort Type, ushort Flags, uint Sequence, byte[] Payload)
{
    public const int HeaderSize = 16;

    /// <summary>
    /// Splits a datagram from a netlink socket into its messages (each nlmsghdr gives its length; messages are
    /// 4-byte aligned). Throws <see cref="FormatException"/> on a length that does not fit.
    /// </summary>
    public static List<NetlinkMessage> ParseAll(ReadOnlySpan<byte> datagram)
    {
        var messages = new List<NetlinkMessage>();
        while (datagram.Length >= HeaderSize)
        {
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(datagram);
            if (length < HeaderSize || length > datagram.Length)
                throw new FormatException($"netlink message length {length} does not fit the {datagram.Length} bytes received");
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(datagram[4..]);
            ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(datagram[6..]);
            uint sequence = BinaryPrimitives.ReadUInt32LittleEndian(datagram[8..]);
            messages.Add(new NetlinkMessage(type, flags, sequence, datagram[HeaderSize..(int)length].ToArray()));
            int next = Align((int)length);
            datagram = next >= datagram.Length ? [] : datagram[next..];
        }
        return messages;
    }

    public static int Align(int length) => (length + 3) & ~3;
}

/// <summary>
/// Builds one netlink request: the 16-byte nlmsghdr, a fixed family header (ifinfomsg, ifaddrmsg, rtmsg) and
/// rtattr attributes, each 4-byte aligned. Integers are in host byte order (little-endian on x86-64), addresses
/// in network byte order, as the kernel expects.
/// </summary>
public sealed class NetlinkMessageWriter
{
    private readonly List<byte> _bytes = new(256);
    private readonly ushort _type;
    private readonly ushort _flags;

    public NetlinkMessageWriter(ushort type, ushort flags)
    {
        _type = type;
        _flags = flags;
        _bytes.AddRange(new byte[NetlinkMessage.HeaderSize]);
    }

    /// <summary>Appends raw bytes (the family header); pads to 4 bytes.</summary>
    public NetlinkMessageWriter Write(ReadOnlySpan<byte> bytes)
    {
        _bytes.AddRange(bytes.ToArray());
        Pad();
        return this;
    }

    public NetlinkMessageWriter Attribute(ushort type, ReadOnlySpan<byte> value)
    {
        Span<byte> header = stackalloc byte[4];
        BinaryPrimitives.WriteUInt16LittleEndian(header, (ushort)(4 + value.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(header[2..], type);
        _bytes.AddRange(header.ToArray());
        _bytes.AddRange(value.ToArray());
        Pad();
        return this;
    }

    public NetlinkMessageWriter Attribute(ushort type, uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        return Attribute(type, bytes);
    }

    /// <summary>A NUL-terminated string attribute (IFLA_IFNAME).</summary>
    public NetlinkMessageWriter Attribute(ushort type, string value) => Attribute(type, Encoding.UTF8.GetBytes(value + "\0"));

    /// <summary>The finished message with its length and <paramref name="sequence"/> filled in (port id 0: the kernel).</summary>
    public byte[] ToArray(uint sequence)
    {
        byte[] message = _bytes.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)message.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(4), _type);
        BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(6), _flags);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(8), sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(12), 0);
        return message;
    }

    private void Pad()
    {
        while (_bytes.Count % 4 != 0) _bytes.Add(0);
    }
}

/// <summary>The rtattr attributes that follow a family header: type → value (the last one wins on a repeat).</summary>
public static class NetlinkAttributes
{
    public static Dictionary<ushort, byte[]> Parse(ReadOnlySpan<byte> bytes)
    {
        var attributes = new Dictionary<ushort, byte[]>();
        while (bytes.Length >= 4)
        {
            ushort length = BinaryPrimitives.ReadUInt16LittleEndian(bytes);
            ushort type = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(bytes[2..]) & 0x3fff); // without NLA_F_NESTED / NLA_F_NET_BYTEORDER
            if (length < 4 || length > bytes.Length) break;
            attributes[type] = bytes[4..length].ToArray();
            int next = NetlinkMessage.Align(length);
            bytes = next >= bytes.Length ? [] : bytes[next..];
        }
        return attributes;
    }

    public static string? String(Dictionary<ushort, byte[]> attributes, ushort type)
    {
        if (!attributes.TryGetValue(type, out byte[]? value)) return null;
        int end = Array.IndexOf(value, (byte)0);
        return Encoding.UTF8.GetString(value, 0, end < 0 ? value.Length : end);
    }

    public static uint? UInt32(Dictionary<ushort, byte[]> attributes, ushort type) =>
        attributes.TryGetValue(type, out byte[]? value) && value.Length >= 4 ? BinaryPrimitives.ReadUInt32LittleEndian(value) : null;
}
