namespace Sandbox.Runtime.Network;

/// <summary>An address of an interface, as `ip -j addr` shows it.</summary>
/// <param name="Scope">"global", "link" or "host".</param>
public sealed record NetnsAddress(string Address, int PrefixLength, bool IsIPv6, string Scope)
{
    public override string ToString() => $"{Address}/{PrefixLength}";
}

/// <summary>A network interface in a namespace.</summary>
/// <param name="Kind">The link kind from `ip -d` ("veth", "tun", ...), or null for none (lo, physical devices).</param>
/// <param name="Mac">Hardware address in lower case, "" when the device has none.</param>
public sealed record NetnsLink(int Index, string Name, string? Kind, string Mac, int Mtu, bool IsUp, IReadOnlyList<NetnsAddress> Addresses);

/// <summary>A route of the main table.</summary>
/// <param name="Destination">CIDR ("10.88.0.0/16", "10.0.0.1/32"); "" for the default route.</param>
/// <param name="Gateway">"" when on-link.</param>
/// <param name="Source">Preferred source address (prefsrc), "" for none.</param>
/// <param name="Scope">rtnetlink scope: 0 universe, 200 site, 253 link, 254 host.</param>
/// <param name="Type">"unicast", or another route type ("multicast", "unreachable", "blackhole", ...).</param>
public sealed record NetnsRoute(string Destination, string Gateway, string Device, string Source, uint Scope, string Type, bool IsIPv6);

/// <summary>An ingress qdisc and what its filters do.</summary>
/// <param name="RedirectTargets">Devices that mirred actions of the filters redirect to.</param>
/// <param name="OtherActions">How many actions are not a mirred redirect.</param>
public sealed record NetnsIngress(string Device, IReadOnlyList<string> RedirectTargets, int OtherActions);

/// <summary>What a network namespace holds: interfaces with addresses, routes, ingress qdiscs with their redirects.</summary>
public sealed record NetnsSnapshot(
    IReadOnlyList<NetnsLink> Links,
    IReadOnlyList<NetnsRoute> Routes,
    IReadOnlyList<NetnsIngress> Ingresses)
{
    public NetnsLink? Link(string name) => Links.FirstOrDefault(l => l.Name == name);
    public NetnsIngress? Ingress(string device) => Ingresses.FirstOrDefault(i => i.Device == device);
}
