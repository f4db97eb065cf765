using System.Text.Json;

namespace Sandbox.Runtime.Network;

/// <summary>
/// Reads the JSON that iproute2 prints with -j: `ip -d -j addr show`, `ip -j route show`, `tc -j qdisc show`,
/// `tc -j filter show dev X ingress`. Pure; a malformed document throws <see cref="FormatException"/> naming what
/// was expected.
/// </summary>
public static class IpJsonParser
{
    /// <summary>`ip -d -j addr show`: every interface with its kind (from -d), MAC, MTU, state and addresses.</summary>
    public static IReadOnlyList<NetnsLink> ParseLinks(string json)
    {
        var links = new List<NetnsLink>();
        foreach (var link in RootArray(json, "ip -d -j addr show"))
        {
            var addresses = new List<NetnsAddress>();
            if (link.TryGetProperty("addr_info", out var addrInfo))
            {
                foreach (var address in addrInfo.EnumerateArray())
                {
                    var family = String(address, "family");
                    // Entries without "local" exist (e.g. only a peer or a label); they carry no address to move.
                    if (family is not ("inet" or "inet6") || String(address, "local") is not { Length: > 0 } local)
                        continue;
                    addresses.Add(new NetnsAddress(local, Int(address, "prefixlen"), family == "inet6", String(address, "scope") ?? "global"));
                }
            }
            var kind = link.TryGetProperty("linkinfo", out var linkInfo) ? String(linkInfo, "info_kind") : null;
            var flags = link.TryGetProperty("flags", out var flagArray)
                ? flagArray.EnumerateArray().Select(f => f.GetString()).ToList()
                : [];
            links.Add(new NetnsLink(
                Int(link, "ifindex"),
                String(link, "ifname") ?? throw new FormatException("an interface in `ip -j addr` output has no ifname"),
                kind,
                (String(link, "address") ?? "").ToLowerInvariant(),
                Int(link, "mtu"),
                flags.Contains("UP"),
                addresses));
        }
        return links;
    }

    /// <summary>`ip -j [-4|-6] route show table main`.</summary>
    public static IReadOnlyList<NetnsRoute> ParseRoutes(string json, bool ipv6)
    {
        var routes = new List<NetnsRoute>();
        foreach (var route in RootArray(json, "ip -j route show"))
        {
            var dst = String(route, "dst") ?? throw new FormatException("a route in `ip -j route` output has no dst");
            var destination = dst == "default" ? "" : dst.Contains('/') ? dst : dst + (ipv6 ? "/128" : "/32");
            routes.Add(new NetnsRoute(
                destination,
                String(route, "gateway") ?? "",
                String(route, "dev") ?? "",
                String(route, "prefsrc") ?? "",
                Scope(String(route, "scope")),
                String(route, "type") ?? "unicast",
                ipv6));
        }
        return routes;
    }

    /// <summary>`tc -j qdisc show`: the devices that have an ingress qdisc.</summary>
    public static IReadOnlyList<string> ParseIngressQdiscDevices(string json) =>
        RootArray(json, "tc -j qdisc show")
            .Where(q => String(q, "kind") == "ingress")
            .Select(q => String(q, "dev") ?? throw new FormatException("a qdisc in `tc -j qdisc` output has no dev"))
            .ToList();

    /// <summary>`tc -j filter show dev X ingress`: where its mirred actions redirect to, and how many other actions
    /// there are. (A u32 filter is listed as several entries; only the ones with "actions" do anything.)</summary>
    public static NetnsIngress ParseIngressFilters(string device, string json)
    {
        var targets = new List<string>();
        var other = 0;
        foreach (var filter in RootArray(json, "tc -j filter show"))
        {
            if (!filter.TryGetProperty("options", out var options) || !options.TryGetProperty("actions", out var actions))
                continue;
            foreach (var action in actions.EnumerateArray())
            {
                if (String(action, "kind") == "mirred" && String(action, "mirred_action") == "redirect" && String(action, "to_dev") is { } to)
                    targets.Add(to);
                else
                    other++;
            }
        }
        return new NetnsIngress(device, targets, other);
    }

    /// <summary>rtnetlink scope number for iproute2's scope name.</summary>
    public static uint Scope(string? name) => name switch
    {
        null or "global" or "universe" => 0,
        "site" => 200,
        "link" => 253,
        "host" => 254,
        "nowhere" => 255,
        _ when uint.TryParse(name, out var number) => number,
        _ => throw new FormatException($"unknown route scope '{name}'"),
    };

    private static List<JsonElement> RootArray(string json, string command)
    {
        // iproute2 prints nothing at all (not "[]") for some empty listings.
        if (string.IsNullOrWhiteSpace(json))
            return [];
        try
        {
            using var document = JsonDocument.Parse(json);
            if (document.RootElement.ValueKind != JsonValueKind.Array)
                throw new FormatException($"`{command}` printed JSON that is not an array");
            return document.RootElement.EnumerateArray().Select(e => e.Clone()).ToList();
        }
        catch (JsonException e)
        {
            throw new FormatException($"`{command}` printed invalid JSON: {e.Message}", e);
        }
    }

    private static string? String(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static int Int(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number)
            ? number
            : throw new FormatException($"expected a number '{name}' in iproute2 JSON: {element.GetRawText()[..Math.Min(200, element.GetRawText().Length)]}");
}
