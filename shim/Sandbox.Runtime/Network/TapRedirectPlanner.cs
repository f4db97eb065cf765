using System.Text.RegularExpressions;

namespace Sandbox.Runtime.Network;

/// <summary>
/// Decides, from a <see cref="NetnsSnapshot"/>, which interfaces of a pod's namespace the guest gets and which ip/tc
/// commands connect them to tap devices (Kata's "tcfilter" model) or remove those again. Pure.
///
/// For every veth with a global address (normally only eth0, made by CNI), ordered by interface index, tap N is
/// `tapN_sbx` with the veth's MTU, and two ingress filters move every frame across:
/// veth ingress → redirect to the tap's egress (into QEMU), tap ingress (from QEMU) → redirect to the veth's egress.
/// The veth keeps its addresses; the guest gets the same MAC and addresses, so the pod IP answers from the guest.
/// Our devices are recognised by name (`tap&lt;N&gt;_sbx`, kind tun), so a teardown needs nothing but the namespace.
/// </summary>
public static partial class TapRedirectPlanner
{
    public static string TapName(int index) => $"tap{index}_sbx";

    public static bool IsOurTap(NetnsLink link) => link.Kind == "tun" && OurTapName().IsMatch(link.Name);

    /// <summary>The guest cards for the namespace's veths that carry a global address.</summary>
    public static IReadOnlyList<GuestNic> GuestNics(NetnsSnapshot snapshot)
    {
        var veths = snapshot.Links
            .Where(l => l.Kind == "veth" && l.Addresses.Any(IsGlobal))
            .OrderBy(l => l.Index)
            .ToList();
        return veths.Select((veth, i) => new GuestNic(
            TapName(i),
            veth.Name,
            veth.Mac,
            veth.Mtu,
            veth.Addresses.Where(IsGlobal).ToList(),
            RoutesThrough(snapshot, veth.Name))).ToList();
    }

    /// <summary>Unicast routes through <paramref name="device"/>, leaving out the IPv6 link-local and multicast
    /// prefixes the guest kernel makes itself; routes without a gateway before those with one (a gateway must be
    /// reachable when its route is added).</summary>
    public static IReadOnlyList<NetnsRoute> RoutesThrough(NetnsSnapshot snapshot, string device) =>
        snapshot.Routes
            .Where(r => r.Device == device && r.Type == "unicast")
            .Where(r => !(r.IsIPv6 && (r.Destination.StartsWith("fe80:", StringComparison.OrdinalIgnoreCase) ||
                                       r.Destination.StartsWith("ff", StringComparison.OrdinalIgnoreCase))))
            .OrderBy(r => r.Gateway.Length == 0 ? 0 : 1)
            .ToList();

    /// <summary>True when every card's tap exists, is up with the veth's MTU, and both redirects are in place.</summary>
    public static bool IsSetUp(NetnsSnapshot snapshot, IReadOnlyList<GuestNic> nics) =>
        nics.All(nic =>
            snapshot.Link(nic.TapName) is { } tap && IsOurTap(tap) && tap.IsUp && tap.Mtu == nic.Mtu &&
            snapshot.Ingress(nic.Name) is { OtherActions: 0 } vethIngress && vethIngress.RedirectTargets.SequenceEqual([nic.TapName]) &&
            snapshot.Ingress(nic.TapName) is { OtherActions: 0 } tapIngress && tapIngress.RedirectTargets.SequenceEqual([nic.Name]));

    /// <summary>Creates the taps and the redirects, in an order where a failure leaves only our devices behind.</summary>
    public static IReadOnlyList<NetnsCommand> SetUpCommands(IReadOnlyList<GuestNic> nics)
    {
        var commands = new List<NetnsCommand>();
        foreach (var nic in nics)
        {
            commands.Add(NetnsCommand.Ip("tuntap", "add", "dev", nic.TapName, "mode", "tap"));
            commands.Add(NetnsCommand.Ip("link", "set", "dev", nic.TapName, "mtu", nic.Mtu.ToString(), "up"));
            commands.Add(NetnsCommand.Tc("qdisc", "add", "dev", nic.TapName, "ingress"));
            commands.Add(Redirect(nic.TapName, nic.Name));
            commands.Add(NetnsCommand.Tc("qdisc", "add", "dev", nic.Name, "ingress"));
            commands.Add(Redirect(nic.Name, nic.TapName));
        }
        return commands;
    }

    /// <summary>Removes what <see cref="SetUpCommands"/> made, whole or in part: the ingress qdisc (and with it its
    /// filters) of every device whose ingress only redirects to our taps, and our taps (with their qdiscs).
    /// Nothing when no tap of ours exists, so other ingress qdiscs are never touched.</summary>
    public static IReadOnlyList<NetnsCommand> TearDownCommands(NetnsSnapshot snapshot)
    {
        var taps = snapshot.Links.Where(IsOurTap).Select(l => l.Name).ToHashSet();
        if (taps.Count == 0)
            return [];
        var commands = new List<NetnsCommand>();
        foreach (var ingress in snapshot.Ingresses)
        {
            if (taps.Contains(ingress.Device))
                continue;
            if (ingress.OtherActions == 0 && ingress.RedirectTargets.All(taps.Contains))
                commands.Add(NetnsCommand.Tc("qdisc", "del", "dev", ingress.Device, "ingress"));
        }
        foreach (var tap in taps.Order(StringComparer.Ordinal))
            commands.Add(NetnsCommand.Ip("link", "del", "dev", tap));
        return commands;
    }

    /// <summary>Every frame arriving on <paramref name="from"/> leaves through <paramref name="to"/>.</summary>
    private static NetnsCommand Redirect(string from, string to) =>
        NetnsCommand.Tc("filter", "add", "dev", from, "parent", "ffff:", "protocol", "all",
            "u32", "match", "u8", "0", "0", "action", "mirred", "egress", "redirect", "dev", to);

    private static bool IsGlobal(NetnsAddress address) => address.Scope == "global";

    [GeneratedRegex("^tap[0-9]+_sbx$")]
    private static partial Regex OurTapName();
}
