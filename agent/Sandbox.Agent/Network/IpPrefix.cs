using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Sandbox.Agent.Network;

/// <summary>An IP address with a prefix length: an interface address (10.88.0.5/16) or a route destination (10.0.0.0/8).</summary>
public sealed record IpPrefix(IPAddress Address, int PrefixLength)
{
    public byte Family => FamilyOf(Address);
    public int MaxPrefixLength => Address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;

    public override string ToString() => $"{Address}/{PrefixLength}";

    /// <summary>The rtnetlink address family: AF_INET (2) or AF_INET6 (10).</summary>
    public static byte FamilyOf(IPAddress address) => address.AddressFamily == AddressFamily.InterNetwork ? Rtnetlink.AF_INET : Rtnetlink.AF_INET6;

    /// <summary>Parses a plain IPv4 or IPv6 address (no prefix, no zone).</summary>
    public static bool TryParseAddress(string text, out IPAddress address, out string error)
    {
        address = IPAddress.None;
        if (string.IsNullOrWhiteSpace(text) || text.Contains('/') || text.Contains('%')
            || !IPAddress.TryParse(text, out IPAddress? parsed)
            || parsed.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
            || (parsed.AddressFamily == AddressFamily.InterNetwork && text.Count(c => c == '.') != 3))
        {
            error = $"'{text}' is not an IPv4 or IPv6 address";
            return false;
        }
        address = parsed;
        error = "";
        return true;
    }

    /// <summary>An interface address: the address and its prefix length (host bits may be set).</summary>
    public static bool TryCreate(string address, uint prefixLength, out IpPrefix prefix, out string error)
    {
        prefix = null!;
        if (!TryParseAddress(address, out IPAddress parsed, out error)) return false;
        int max = parsed.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        if (prefixLength > max)
        {
            error = $"prefix length {prefixLength} of {address} is out of range (0-{max})";
            return false;
        }
        prefix = new IpPrefix(parsed, (int)prefixLength);
        return true;
    }

    /// <summary>A route destination in CIDR form ("10.0.0.0/8", "fd00::/64"); a bare address is a host route (/32, /128).
    /// Host bits must be zero, as the kernel requires.</summary>
    public static bool TryParseCidr(string text, out IpPrefix prefix, out string error)
    {
        prefix = null!;
        int slash = text.IndexOf('/');
        string addressText = slash < 0 ? text : text[..slash];
        if (!TryParseAddress(addressText, out IPAddress address, out error))
        {
            error = $"'{text}' is not a CIDR prefix like 10.0.0.0/8 or fd00::/64";
            return false;
        }
        int max = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        int length = max;
        if (slash >= 0 && (!int.TryParse(text[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out length) || length > max))
        {
            error = $"'{text}' has an invalid prefix length (0-{max})";
            return false;
        }
        byte[] bytes = address.GetAddressBytes();
        for (int bit = length; bit < bytes.Length * 8; bit++)
        {
            if ((bytes[bit / 8] & (0x80 >> (bit % 8))) != 0)
            {
                error = $"'{text}' has host bits set after the /{length} prefix (did you mean {Masked(bytes, length)}/{length}?)";
                return false;
            }
        }
        prefix = new IpPrefix(address, length);
        error = "";
        return true;
    }

    /// <summary>The address with the bits after the first <paramref name="length"/> cleared (the network of an interface address).</summary>
    public static IPAddress Masked(IPAddress address, int length) => Masked(address.GetAddressBytes(), length);

    private static IPAddress Masked(byte[] bytes, int length)
    {
        byte[] masked = (byte[])bytes.Clone();
        for (int bit = length; bit < masked.Length * 8; bit++) masked[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        return new IPAddress(masked);
    }
}
