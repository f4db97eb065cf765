using System.Diagnostics;

namespace Sandbox.IntegrationTests.Support;

/// <summary>
/// A pod namespace configured the way containerd's CRI does it: Debian's CNI plugins (/usr/lib/cni) `bridge` with
/// `host-local` IPAM, on a private bridge sbxbr… with 10.213.N.0/24 (no masquerade, no iptables), IPAM state in a temp
/// directory. Dispose runs CNI DEL, deletes the namespace, the bridge and the IPAM state.
/// </summary>
public sealed class TestCniNamespace : IAsyncDisposable
{
    public const string PluginDirectory = "/usr/lib/cni";

    private readonly string _config;
    private readonly string _ipamDirectory;

    private TestCniNamespace(string suffix, int subnet)
    {
        Name = "sbxtest-" + suffix;
        Bridge = "sbxbr" + suffix[..6];
        Subnet = subnet;
        _ipamDirectory = Directory.CreateTempSubdirectory("sbxcni-").FullName;
        _config = $$$"""
            {"cniVersion":"1.0.0","name":"sbxtest-{{{suffix}}}","type":"bridge","bridge":"{{{Bridge}}}","isGateway":true,"ipMasq":false,
             "ipam":{"type":"host-local","ranges":[[{"subnet":"10.213.{{{subnet}}}.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":"{{{_ipamDirectory}}}"}}
            """;
    }

    public string Name { get; }
    public string Path => "/var/run/netns/" + Name;
    public string Bridge { get; }
    public int Subnet { get; }
    public string Gateway => $"10.213.{Subnet}.1";

    public static bool PluginsInstalled => File.Exists(System.IO.Path.Combine(PluginDirectory, "bridge")) &&
                                           File.Exists(System.IO.Path.Combine(PluginDirectory, "host-local"));

    public static async Task<TestCniNamespace> CreateAsync(int subnet)
    {
        if (!PluginsInstalled)
            throw new InvalidOperationException($"the CNI plugins bridge and host-local are not in {PluginDirectory}: install containernetworking-plugins");
        var pod = new TestCniNamespace(Guid.NewGuid().ToString("N")[..8], subnet);
        try
        {
            await TestPodNamespace.RunAsync("ip", "netns", "add", pod.Name);
            await pod.BridgePluginAsync("ADD");
            return pod;
        }
        catch
        {
            await pod.DisposeAsync();
            throw;
        }
    }

    private async Task BridgePluginAsync(string command)
    {
        var startInfo = new ProcessStartInfo(System.IO.Path.Combine(PluginDirectory, "bridge"))
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        startInfo.Environment["CNI_COMMAND"] = command;
        startInfo.Environment["CNI_CONTAINERID"] = Name;
        startInfo.Environment["CNI_NETNS"] = Path;
        startInfo.Environment["CNI_IFNAME"] = "eth0";
        startInfo.Environment["CNI_PATH"] = PluginDirectory;
        using var process = Process.Start(startInfo)!;
        await process.StandardInput.WriteAsync(_config);
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"CNI bridge {command} failed with exit code {process.ExitCode}: {await stdout} {await stderr}");
    }

    public async ValueTask DisposeAsync()
    {
        if (File.Exists(Path))
        {
            await BridgePluginAsync("DEL");
            await TestPodNamespace.RunAsync("ip", "netns", "delete", Name);
        }
        if (Directory.Exists("/sys/class/net/" + Bridge))
            await TestPodNamespace.RunAsync("ip", "link", "delete", Bridge);
        Directory.Delete(_ipamDirectory, recursive: true);
    }
}
