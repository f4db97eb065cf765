using System.Net;
using System.Text.Json.Nodes;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Cri.Tests.Fixture;

/// <summary>
/// The pod network CRI sets up through CNI: Debian's plugins (/usr/lib/cni) `bridge` + `host-local`, a bridge and a
/// 10.x.y.0/24 unique to this test run (checked against this machine's routes and addresses), gateway .1 on the
/// bridge, no masquerade, IPAM state in the private directory instead of /var/lib/cni. CNI DEL (run by CRI on
/// StopPodSandbox) removes a pod's veth and address; <see cref="DisposeAsync"/> removes the bridge.
/// </summary>
public sealed class CniBridgeNetwork : IAsyncDisposable
{
    public const string PluginDirectory = "/usr/lib/cni";
    private static readonly string[] RequiredPlugins = { "bridge", "host-local", "loopback" };

    private CniBridgeNetwork(string name, string bridge, IPAddress subnet, string configDirectory, string ipamDirectory)
    {
        Name = name;
        Bridge = bridge;
        Subnet = subnet;
        ConfigDirectory = configDirectory;
        IpamDirectory = ipamDirectory;
    }

    /// <summary>The CNI network name (also the IPAM state's subdirectory).</summary>
    public string Name { get; }

    public string Bridge { get; }

    /// <summary>The network address of the /24.</summary>
    public IPAddress Subnet { get; }

    public string Cidr => $"{Subnet}/24";

    public string Gateway => Offset(1).ToString();

    /// <summary>CRI's cni.conf_dir: holds the one conflist.</summary>
    public string ConfigDirectory { get; }

    /// <summary>host-local's dataDir: one file per leased address, named by the address.</summary>
    public string IpamDirectory { get; }

    public static void EnsurePluginsInstalled()
    {
        var missing = RequiredPlugins.Where(p => !File.Exists(Path.Combine(PluginDirectory, p))).ToArray();
        if (missing.Length > 0)
            throw new InvalidOperationException($"CNI plugins {string.Join(", ", missing)} are missing in {PluginDirectory}: install containernetworking-plugins (images/setup-host.sh does)");
    }

    /// <summary>Picks an unused bridge name and subnet and writes the conflist under <paramref name="directory"/>.</summary>
    public static async Task<CniBridgeNetwork> CreateAsync(string directory)
    {
        EnsurePluginsInstalled();
        string suffix = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray())[..6];
        var subnet = await PickUnusedSubnetAsync();
        var network = new CniBridgeNetwork("sbx-cri-" + suffix, "sbx" + suffix, subnet,
            Directory.CreateDirectory(Path.Combine(directory, "net.d")).FullName,
            Directory.CreateDirectory(Path.Combine(directory, "ipam")).FullName);
        var conflist = new JsonObject
        {
            ["cniVersion"] = "1.0.0",
            ["name"] = network.Name,
            ["plugins"] = new JsonArray(new JsonObject
            {
                ["type"] = "bridge",
                ["bridge"] = network.Bridge,
                ["isGateway"] = true,
                ["ipMasq"] = false,
                ["ipam"] = new JsonObject
                {
                    ["type"] = "host-local",
                    ["ranges"] = new JsonArray(new JsonArray(new JsonObject { ["subnet"] = network.Cidr })),
                    ["routes"] = new JsonArray(new JsonObject { ["dst"] = "0.0.0.0/0" }),
                    ["dataDir"] = network.IpamDirectory,
                },
            }),
        };
        await File.WriteAllTextAsync(Path.Combine(network.ConfigDirectory, "10-sbx-cri.conflist"), conflist.ToJsonString());
        return network;
    }

    public bool Contains(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        var net = Subnet.GetAddressBytes();
        return bytes.Length == 4 && bytes[0] == net[0] && bytes[1] == net[1] && bytes[2] == net[2];
    }

    /// <summary>Addresses host-local has leased (its files named by address).</summary>
    public IReadOnlyList<string> LeasedAddresses()
    {
        string leases = Path.Combine(IpamDirectory, Name);
        return Directory.Exists(leases)
            ? Directory.GetFiles(leases).Select(f => Path.GetFileName(f)).Where(n => IPAddress.TryParse(n, out _)).ToArray()
            : Array.Empty<string>();
    }

    /// <summary>Host interfaces enslaved to the bridge (one veth per pod with a network).</summary>
    public async Task<IReadOnlyList<string>> PortsAsync()
    {
        if (!Directory.Exists("/sys/class/net/" + Bridge))
            return Array.Empty<string>();
        var result = await RunIpAsync("-j", "link", "show", "master", Bridge);
        return JsonNode.Parse(result.Stdout)!.AsArray().Select(link => (string)link!["ifname"]!).ToArray();
    }

    public async ValueTask DisposeAsync()
    {
        if (Directory.Exists("/sys/class/net/" + Bridge))
            await RunIpAsync("link", "delete", Bridge);
    }

    private IPAddress Offset(int host)
    {
        var bytes = Subnet.GetAddressBytes();
        bytes[3] = (byte)host;
        return new IPAddress(bytes);
    }

    /// <summary>10.200-249.y.0/24, avoiding 10.213/16 (other tests' namespaces) and anything routed or addressed here.</summary>
    private static async Task<IPAddress> PickUnusedSubnetAsync()
    {
        var routes = (await RunIpAsync("-4", "-o", "route", "show", "table", "all")).Stdout;
        var addresses = (await RunIpAsync("-4", "-o", "addr")).Stdout;
        var taken = routes.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .SelectMany(words => words.Take(2)) // "10.1.2.0/24 dev …" or "local 10.1.2.3 dev …"
            .Concat(addresses.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .SelectMany(words => words.SkipWhile(w => w != "inet").Skip(1).Take(1)))
            .Select(ParsePrefix).Where(p => p is not null).Select(p => p!.Value).ToArray();
        for (int attempt = 0; attempt < 100; attempt++)
        {
            int second = Random.Shared.Next(200, 250);
            if (second == 213)
                continue;
            var candidate = new IPAddress(new byte[] { 10, (byte)second, (byte)Random.Shared.Next(0, 256), 0 });
            uint network = ToUInt(candidate);
            if (!taken.Any(t => Overlaps(network, 24, t.Network, t.Length)))
                return candidate;
        }
        throw new InvalidOperationException("no unused 10.200-249.y.0/24 found for the test pod network (see `ip route show table all`)");
    }

    private static (uint Network, int Length)? ParsePrefix(string text)
    {
        var parts = text.Split('/');
        if (!IPAddress.TryParse(parts[0], out var address) || address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            return null;
        int length = parts.Length > 1 && int.TryParse(parts[1], out int l) ? l : 32;
        return (ToUInt(address), length);
    }

    private static bool Overlaps(uint a, int aLength, uint b, int bLength)
    {
        int shortest = Math.Min(aLength, bLength);
        uint mask = shortest == 0 ? 0 : uint.MaxValue << (32 - shortest);
        return (a & mask) == (b & mask);
    }

    private static uint ToUInt(IPAddress address)
    {
        var b = address.GetAddressBytes();
        return (uint)(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]);
    }

    private static async Task<CommandResult> RunIpAsync(params string[] arguments)
    {
        var result = await ExternalCommand.RunAsync("ip", arguments, TimeSpan.FromSeconds(30));
        if (result.ExitCode != 0)
            throw new InvalidOperationException(result.ToString());
        return result;
    }
}
