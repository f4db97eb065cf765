namespace Sandbox.Runtime.Network;

/// <summary>
/// Takes a <see cref="NetnsSnapshot"/> of a network namespace with iproute2's JSON output: `ip -d -j addr show`,
/// `ip -j -4 route show table main`, `ip -j -6 route show table main`, `tc -j qdisc show`, and
/// `tc -j filter show dev X ingress` for each device with an ingress qdisc.
/// </summary>
public sealed class NetnsInspector
{
    private readonly NetnsCommandRunner _runner;
    private readonly string _sandboxId;

    public NetnsInspector(string sandboxId, NetnsCommandRunner runner)
    {
        _sandboxId = sandboxId;
        _runner = runner;
    }

    public async Task<NetnsSnapshot> InspectAsync(CancellationToken cancellationToken)
    {
        var links = Parse(IpJsonParser.ParseLinks, await _runner.RunAsync(NetnsCommand.Ip("-d", "-j", "addr", "show"), cancellationToken));
        var routes = new List<NetnsRoute>();
        routes.AddRange(Parse(json => IpJsonParser.ParseRoutes(json, ipv6: false),
            await _runner.RunAsync(NetnsCommand.Ip("-j", "-4", "route", "show", "table", "main"), cancellationToken)));
        routes.AddRange(Parse(json => IpJsonParser.ParseRoutes(json, ipv6: true),
            await _runner.RunAsync(NetnsCommand.Ip("-j", "-6", "route", "show", "table", "main"), cancellationToken)));
        var ingressDevices = Parse(IpJsonParser.ParseIngressQdiscDevices,
            await _runner.RunAsync(NetnsCommand.Tc("-j", "qdisc", "show"), cancellationToken));
        var ingresses = new List<NetnsIngress>();
        foreach (var device in ingressDevices)
        {
            var filters = await _runner.RunAsync(NetnsCommand.Tc("-j", "filter", "show", "dev", device, "ingress"), cancellationToken);
            ingresses.Add(Parse(json => IpJsonParser.ParseIngressFilters(device, json), filters));
        }
        return new NetnsSnapshot(links, routes, ingresses);
    }

    private T Parse<T>(Func<string, T> parse, string json)
    {
        try
        {
            return parse(json);
        }
        catch (FormatException e)
        {
            throw new PodNetworkException(_sandboxId, _runner.NetworkNamespacePath,
                $"cannot read iproute2's output ({e.Message}); is iproute2 older than the JSON output it is expected to print?", e);
        }
    }
}
