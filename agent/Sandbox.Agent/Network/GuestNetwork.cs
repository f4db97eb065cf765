using System.Diagnostics;
using System.Globalization;
using System.Net;
using Sandbox.Agent.Containers;
using Sandbox.Agent.Protocol;

namespace Sandbox.Agent.Network;

/// <summary>
/// UpdateInterface / UpdateRoutes: configures the guest's network (the VM is the pod's network namespace) through
/// rtnetlink, without a process per change. The virtio-net driver is loaded the first time an interface is configured.
/// Requests are validated completely before anything changes.
/// </summary>
public sealed class GuestNetwork(KernelModules modules)
{
    private const string LoopbackName = "lo";
    private static readonly TimeSpan InterfaceAppearTimeout = TimeSpan.FromSeconds(3);
    private readonly SemaphoreSlim _lock = new(1, 1);

    private Task? _loopbackAhead;

    /// <summary>
    /// Starts bringing lo up in the background, once: the agent does it when it starts as a guest's init, while the host
    /// connects. lo is the same in every pod's VM, so a template is saved with it up and its clones no longer run the
    /// kernel's netlink, address and route code for it at CreateSandbox (under TCG, ~11k guest instructions translated
    /// afresh in every clone: ~4% of a clone's first-run translation, measured with QEMU's `-d in_asm`).
    /// </summary>
    public void BringLoopbackUpAhead() => _loopbackAhead ??= Task.Run(() => BringLoopbackUpAsync(CancellationToken.None));

    /// <summary>
    /// lo is up when this returns (CreateSandbox): at once when <see cref="BringLoopbackUpAhead"/> did it (nothing else
    /// runs in the VM before CreateSandbox to take it down again), otherwise brought up now, with its error when that
    /// fails.
    /// </summary>
    public async Task EnsureLoopbackUpAsync(CancellationToken cancellationToken)
    {
        if (_loopbackAhead is { } ahead)
        {
            try
            {
                await ahead.WaitAsync(cancellationToken);
                return;
            }
            catch (global::Grpc.Core.RpcException)
            {
                // the attempt ahead failed: try again, and let this one's error reach the caller
            }
        }
        await BringLoopbackUpAsync(cancellationToken);
    }

    /// <summary>Brings lo up (containers of a pod talk over localhost). Does nothing when it is already up.</summary>
    public async Task BringLoopbackUpAsync(CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            using var netlink = NetlinkSocket.Open();
            BringLoopbackUp(netlink, ListLinks(netlink));
        }
        catch (Exception e) when (e is NetlinkException or IOException or FormatException)
        {
            throw AgentErrors.Internal($"bring the loopback interface up: {e.Message}");
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task UpdateInterfaceAsync(NetworkInterface request, CancellationToken cancellationToken)
    {
        var plan = InterfacePlan.Validate(request);
        var watch = Stopwatch.StartNew();
        await modules.EnsureLoadedAsync(["virtio_net"], $"configure interface {plan.Describe}", cancellationToken);
        long moduleMs = watch.ElapsedMilliseconds;
        await _lock.WaitAsync(cancellationToken);
        try
        {
            using var netlink = NetlinkSocket.Open();
            LinkInfo link = await FindByMacAsync(netlink, plan, cancellationToken);
            List<LinkInfo> links = ListLinks(netlink);
            BringLoopbackUp(netlink, links);
            Configure(netlink, plan, link, links);
            AgentLog.Write($"interface {plan.Describe}: {(plan.Addresses.Count > 0 ? string.Join(", ", plan.Addresses) : "no addresses")}, up in {watch.ElapsedMilliseconds} ms (virtio_net check/load {moduleMs} ms)");
        }
        catch (Exception e) when (e is NetlinkException or IOException or FormatException)
        {
            throw AgentErrors.Internal($"configure interface {plan.Describe}: {e.Message}");
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task UpdateRoutesAsync(IReadOnlyList<Route> routes, CancellationToken cancellationToken)
    {
        var validated = new List<(int Index, Route Route, byte Family, IpPrefix? Destination, IPAddress? Gateway, IPAddress? Source)>();
        for (int i = 0; i < routes.Count; i++) validated.Add(ValidateRoute(i, routes[i]));
        await _lock.WaitAsync(cancellationToken);
        string step = "list interfaces";
        var watch = Stopwatch.StartNew();
        try
        {
            using var netlink = NetlinkSocket.Open();
            List<LinkInfo> links = ListLinks(netlink);
            var devices = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var route in validated)
            {
                LinkInfo? link = links.FirstOrDefault(l => l.Name == route.Route.Device)
                    ?? throw AgentErrors.NotFound($"route {route.Index} ({Describe(route.Route)}): no guest interface named '{route.Route.Device}'; present: {DescribeLinks(links)} (UpdateInterface names the interface first)");
                devices[link.Name] = link.Index;
            }

            // Replace: remove the routes we (or an earlier call) added on these devices. The kernel's own routes stay, and so
            // do on-link routes to the prefix of an address of the device: a request may have replaced the kernel's route
            // with an equal one, and without it the gateways on that prefix would become unreachable.
            step = "list routes";
            var deviceIndexes = devices.Values.ToHashSet();
            List<AddressInfo> addresses = ListAddresses(netlink);
            foreach (RouteInfo old in ListRoutes(netlink))
            {
                if (old.Table != Rtnetlink.RT_TABLE_MAIN || old.Protocol == Rtnetlink.RTPROT_KERNEL || old.Type != Rtnetlink.RTN_UNICAST) continue;
                if (!deviceIndexes.Contains(old.OutputInterface) || IsConnectedRoute(old, addresses)) continue;
                step = $"delete old route {old}";
                netlink.Execute(Rtnetlink.DeleteRoute(netlink.NextSequence(), old));
            }
            foreach (var route in validated)
            {
                step = $"add route {route.Index} ({Describe(route.Route)})";
                netlink.Execute(Rtnetlink.AddRoute(netlink.NextSequence(), new RouteRequest(route.Family, route.Destination, route.Gateway,
                    devices[route.Route.Device], route.Source, (byte)route.Route.Scope)));
            }
            AgentLog.Write($"routes: {validated.Count} set on {(devices.Count > 0 ? string.Join(", ", devices.Keys) : "no device")} in {watch.ElapsedMilliseconds} ms");
        }
        catch (Exception e) when (e is NetlinkException or IOException or FormatException)
        {
            throw AgentErrors.Internal($"update routes: {step}: {e.Message}");
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Checks one route and resolves its family; InvalidArgument names the route and the field.</summary>
    public static (int Index, Route Route, byte Family, IpPrefix? Destination, IPAddress? Gateway, IPAddress? Source) ValidateRoute(int index, Route route)
    {
        string where = $"route {index} ({Describe(route)})";
        if (string.IsNullOrEmpty(route.Device)) throw AgentErrors.InvalidArgument($"{where}: device is empty (name the guest interface, e.g. eth0)");
        IpPrefix? destination = null;
        if (route.Destination.Length > 0)
        {
            if (!IpPrefix.TryParseCidr(route.Destination, out IpPrefix parsed, out string error)) throw AgentErrors.InvalidArgument($"{where}: destination {error}");
            destination = parsed;
        }
        IPAddress? gateway = null;
        if (route.Gateway.Length > 0)
        {
            if (!IpPrefix.TryParseAddress(route.Gateway, out IPAddress parsed, out string error)) throw AgentErrors.InvalidArgument($"{where}: gateway {error}");
            gateway = parsed;
        }
        IPAddress? source = null;
        if (route.Source.Length > 0)
        {
            if (!IpPrefix.TryParseAddress(route.Source, out IPAddress parsed, out string error)) throw AgentErrors.InvalidArgument($"{where}: source {error}");
            source = parsed;
        }
        if (route.Scope > 255) throw AgentErrors.InvalidArgument($"{where}: scope {route.Scope} is out of range (0 universe, 253 link, 254 host)");
        byte[] families = new[] { destination?.Address, gateway, source }.OfType<IPAddress>().Select(IpPrefix.FamilyOf).Distinct().ToArray();
        if (families.Length > 1) throw AgentErrors.InvalidArgument($"{where}: destination, gateway and source mix IPv4 and IPv6");
        return (index, route, families.Length == 1 ? families[0] : Rtnetlink.AF_INET, destination, gateway, source);
    }

    private static string Describe(Route route) =>
        $"{(route.Destination.Length > 0 ? route.Destination : "default")}{(route.Gateway.Length > 0 ? " via " + route.Gateway : "")} dev {(route.Device.Length > 0 ? route.Device : "?")}";

    /// <summary>
    /// Gives the guest's network cards, in device order (interface index), the hardware addresses <paramref name="macs"/>.
    /// A VM cloned from a template starts with the template's placeholder addresses; the host then names each card by
    /// the address it gave it (UpdateInterface finds a card by it). The cards are still down, so the kernel takes any
    /// address.
    /// </summary>
    public void SetCardAddresses(IReadOnlyList<string> macs)
    {
        var wanted = new List<byte[]>();
        foreach (string mac in macs)
        {
            var bytes = mac.Split(':').Select(part => byte.TryParse(part, System.Globalization.NumberStyles.HexNumber, null, out byte b) ? (byte?)b : null).ToArray();
            if (bytes.Length != 6 || bytes.Any(b => b is null) || (bytes[0]!.Value & 1) != 0)
                throw AgentErrors.InvalidArgument($"network card address '{mac}' is not a unicast MAC such as 02:42:0a:58:00:05");
            wanted.Add(bytes.Select(b => b!.Value).ToArray());
        }
        using var netlink = NetlinkSocket.Open();
        // cards are the links backed by a device (virtio-net); the kernel's own (lo, dummy, tunnels) have none
        List<LinkInfo> cards = ListLinks(netlink).Where(l => l.Mac.Length == 6 && Directory.Exists($"/sys/class/net/{l.Name}/device"))
            .OrderBy(l => l.Index).ToList();
        if (cards.Count < wanted.Count)
            throw AgentErrors.FailedPrecondition($"{wanted.Count} network card address(es) given, but the guest has {cards.Count} card(s): {DescribeLinks(cards)}");
        for (int i = 0; i < wanted.Count; i++)
        {
            if (cards[i].Mac.AsSpan().SequenceEqual(wanted[i]))
                continue;
            try
            {
                netlink.Execute(Rtnetlink.SetLink(netlink.NextSequence(), cards[i].Index, 0, 0, address: wanted[i]));
            }
            catch (NetlinkException e)
            {
                throw new NetlinkException(e.Errno, e.KernelMessage, $"set the address of {cards[i].Name} to {macs[i]}: {e.Message}");
            }
        }
    }

    private static async Task<LinkInfo> FindByMacAsync(NetlinkSocket netlink, InterfacePlan plan, CancellationToken cancellationToken)
    {
        // The driver probes the device while modprobe runs; the wait covers a device that shows up a little later.
        DateTime giveUp = DateTime.UtcNow + InterfaceAppearTimeout;
        while (true)
        {
            List<LinkInfo> links = ListLinks(netlink);
            LinkInfo? match = links.FirstOrDefault(l => l.Mac.AsSpan().SequenceEqual(plan.Mac));
            if (match != null) return match;
            if (DateTime.UtcNow >= giveUp)
                throw AgentErrors.NotFound($"configure interface {plan.Describe}: no guest interface has MAC {plan.MacText}; present: {DescribeLinks(links)} (is the VM started with a virtio-net device with mac={plan.MacText}?)");
            await Task.Delay(50, cancellationToken);
        }
    }

    private static void Configure(NetlinkSocket netlink, InterfacePlan plan, LinkInfo link, List<LinkInfo> links)
    {
        string step = "";
        try
        {
            bool rename = plan.Name.Length > 0 && plan.Name != link.Name;
            if (rename)
            {
                if (links.FirstOrDefault(l => l.Name == plan.Name && l.Index != link.Index) is { } other)
                    throw AgentErrors.FailedPrecondition($"configure interface {plan.Describe}: the name {plan.Name} is taken by the interface with MAC {other.MacText}");
                // The kernel renames only an interface that is down.
                if (link.IsUp)
                {
                    step = $"set {link.Name} down for the rename";
                    netlink.Execute(Rtnetlink.SetLink(netlink.NextSequence(), link.Index, 0, Rtnetlink.IFF_UP));
                }
                step = $"rename {link.Name} to {plan.Name}";
                netlink.Execute(Rtnetlink.SetLink(netlink.NextSequence(), link.Index, 0, 0, name: plan.Name));
            }
            if (plan.Mtu != 0 && plan.Mtu != link.Mtu)
            {
                step = $"set MTU {plan.Mtu}";
                netlink.Execute(Rtnetlink.SetLink(netlink.NextSequence(), link.Index, 0, 0, mtu: plan.Mtu));
            }

            step = "list addresses";
            List<AddressInfo> present = ListAddresses(netlink).Where(a => a.Index == link.Index).ToList();
            foreach (AddressInfo old in present)
            {
                // Keep the requested ones and the kernel's link-local (IPv6 fe80::/64) addresses.
                if (old.Scope >= Rtnetlink.RT_SCOPE_LINK) continue;
                if (plan.Addresses.Any(a => a.Address.Equals(old.Address) && a.PrefixLength == old.PrefixLength)) continue;
                step = $"delete old address {old}";
                netlink.Execute(Rtnetlink.DeleteAddress(netlink.NextSequence(), old));
            }
            foreach (IpPrefix address in plan.Addresses)
            {
                step = $"add address {address}";
                netlink.Execute(Rtnetlink.AddAddress(netlink.NextSequence(), link.Index, address));
            }
            step = "set it up";
            netlink.Execute(Rtnetlink.SetLink(netlink.NextSequence(), link.Index, Rtnetlink.IFF_UP, Rtnetlink.IFF_UP));
        }
        catch (NetlinkException e)
        {
            throw new NetlinkException(e.Errno, e.KernelMessage, $"{step}: {e.Message}");
        }
    }

    private static void BringLoopbackUp(NetlinkSocket netlink, List<LinkInfo> links)
    {
        LinkInfo? lo = links.FirstOrDefault(l => l.Name == LoopbackName);
        if (lo == null || lo.IsUp) return;
        netlink.Execute(Rtnetlink.SetLink(netlink.NextSequence(), lo.Index, Rtnetlink.IFF_UP, Rtnetlink.IFF_UP));
    }

    private static List<LinkInfo> ListLinks(NetlinkSocket netlink) =>
        netlink.Dump(Rtnetlink.GetLinks(netlink.NextSequence()), Rtnetlink.RTM_NEWLINK).Select(Rtnetlink.ParseLink).ToList();

    /// <summary>An on-link route whose destination is the prefix of an address on its device (what the kernel adds by itself).</summary>
    public static bool IsConnectedRoute(RouteInfo route, IEnumerable<AddressInfo> addresses) =>
        route.Gateway == null && route.Destination != null && addresses.Any(a =>
            a.Index == route.OutputInterface && a.Family == route.Family && a.PrefixLength == route.DestinationLength
            && IpPrefix.Masked(a.Address, a.PrefixLength).Equals(route.Destination));

    private static List<AddressInfo> ListAddresses(NetlinkSocket netlink) =>
        netlink.Dump(Rtnetlink.GetAddresses(netlink.NextSequence()), Rtnetlink.RTM_NEWADDR).Select(Rtnetlink.ParseAddress).ToList();

    private static List<RouteInfo> ListRoutes(NetlinkSocket netlink) =>
        netlink.Dump(Rtnetlink.GetRoutes(netlink.NextSequence()), Rtnetlink.RTM_NEWROUTE).Select(Rtnetlink.ParseRoute).ToList();

    private static string DescribeLinks(List<LinkInfo> links) =>
        links.Count == 0 ? "none" : string.Join(", ", links.Select(l => $"{l.Name} ({(l.Mac.Length > 0 ? l.MacText : "no MAC")})"));
}

/// <summary>A validated UpdateInterface request.</summary>
public sealed record InterfacePlan(string Name, byte[] Mac, string MacText, uint Mtu, IReadOnlyList<IpPrefix> Addresses)
{
    public string Describe => Name.Length > 0 ? $"{Name} (MAC {MacText})" : $"with MAC {MacText}";

    /// <summary>Checks every field; InvalidArgument names the field. Nothing is changed in the guest.</summary>
    public static InterfacePlan Validate(NetworkInterface? request)
    {
        if (request == null) throw AgentErrors.InvalidArgument("UpdateInterface: interface is missing");
        string name = request.Name;
        string where = $"interface {(name.Length > 0 ? name : "(no name)")}";
        if (!TryParseMac(request.Mac, out byte[] mac))
            throw AgentErrors.InvalidArgument($"{where}: mac '{request.Mac}' is not a MAC address like aa:bb:cc:dd:ee:ff");
        if (name.Length > 15 || name is "." or ".." || name.Any(c => c is '/' or ':' || char.IsWhiteSpace(c) || c > 0x7e || c < 0x21))
            throw AgentErrors.InvalidArgument($"{where}: name '{name}' is not a valid interface name (1-15 characters, no '/', ':' or spaces)");
        if (request.Mtu != 0 && (request.Mtu < 68 || request.Mtu > 65535))
            throw AgentErrors.InvalidArgument($"{where}: mtu {request.Mtu} is out of range (68-65535, or 0 to leave it)");
        var addresses = new List<IpPrefix>();
        foreach (IpAddress address in request.Addresses)
        {
            if (!IpPrefix.TryCreate(address.Address, address.PrefixLength, out IpPrefix prefix, out string error))
                throw AgentErrors.InvalidArgument($"{where}: address {error}");
            addresses.Add(prefix);
        }
        return new InterfacePlan(name, mac, string.Join(':', mac.Select(b => b.ToString("x2"))), request.Mtu, addresses);
    }

    public static bool TryParseMac(string text, out byte[] mac)
    {
        mac = [];
        string[] parts = text.Split(':');
        if (parts.Length != 6) return false;
        var bytes = new byte[6];
        for (int i = 0; i < 6; i++)
        {
            if (parts[i].Length != 2 || !byte.TryParse(parts[i], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out bytes[i])) return false;
        }
        mac = bytes;
        return true;
    }
}
