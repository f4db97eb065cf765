using System.Diagnostics;

namespace Sandbox.IntegrationTests.Support;

/// <summary>
/// A pod-like network namespace made the way CNI's bridge plugin leaves it, without CNI: `ip netns add sbxtest-…`, a
/// veth pair with eth0 inside (10.213.N.2/24, default route via .1) and the host end outside (10.213.N.1/24 when
/// asked for; optionally IPv6 fd21:3:N::/64 as well). 10.213.0.0/16 and fd21:3::/48 are unused on this machine; these addresses exist only in these namespaces. Dispose
/// deletes the namespace, which deletes the veth pair.
/// </summary>
public sealed class TestPodNamespace : IAsyncDisposable
{
    private TestPodNamespace(string name, string hostVeth, int subnet)
    {
        Name = name;
        HostVeth = hostVeth;
        Subnet = subnet;
    }

    public string Name { get; }
    public string Path => "/var/run/netns/" + Name;
    public string HostVeth { get; }
    public int Subnet { get; }
    public string PodAddress => $"10.213.{Subnet}.2";
    public string HostAddress => $"10.213.{Subnet}.1";
    /// <summary>With ipv6: fd21:3:N::2/64 inside, fd21:3:N::1/64 on the host end (when it gets an address).</summary>
    public string PodAddress6 => System.Net.IPAddress.Parse($"fd21:3:{Subnet}::2").ToString(); // canonical, as ip prints it
    public string HostAddress6 => System.Net.IPAddress.Parse($"fd21:3:{Subnet}::1").ToString();

    public static async Task<TestPodNamespace> CreateAsync(int subnet, bool hostAddress, bool ipv6 = false, int mtu = 1500)
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var pod = new TestPodNamespace("sbxtest-" + suffix, "sbxh" + suffix, subnet);
        try
        {
            await RunAsync("ip", "netns", "add", pod.Name);
            await RunAsync("ip", "link", "add", pod.HostVeth, "mtu", mtu.ToString(), "type", "veth", "peer", "name", "eth0", "mtu", mtu.ToString(), "netns", pod.Name);
            await pod.InsideAsync("ip", "link", "set", "lo", "up");
            await pod.InsideAsync("ip", "addr", "add", $"{pod.PodAddress}/24", "dev", "eth0");
            if (ipv6)
                await pod.InsideAsync("ip", "-6", "addr", "add", $"{pod.PodAddress6}/64", "dev", "eth0", "nodad");
            await pod.InsideAsync("ip", "link", "set", "eth0", "up");
            await pod.InsideAsync("ip", "route", "add", "default", "via", pod.HostAddress);
            if (hostAddress)
                await RunAsync("ip", "addr", "add", $"{pod.HostAddress}/24", "dev", pod.HostVeth);
            if (hostAddress && ipv6)
                await RunAsync("ip", "-6", "addr", "add", $"{pod.HostAddress6}/64", "dev", pod.HostVeth, "nodad");
            await RunAsync("ip", "link", "set", pod.HostVeth, "up");
            return pod;
        }
        catch
        {
            await pod.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs a command inside the namespace; returns stdout.</summary>
    public Task<string> InsideAsync(params string[] command) => RunAsync("nsenter", ["--net=" + Path, "--", .. command]);

    public bool HostVethExists() => Directory.Exists("/sys/class/net/" + HostVeth);

    public async ValueTask DisposeAsync()
    {
        if (File.Exists(Path))
            await RunAsync("ip", "netns", "delete", Name);
        // The kernel destroys the namespace's devices (and so the veth pair) asynchronously.
        for (var i = 0; i < 100 && HostVethExists(); i++)
            await Task.Delay(50);
    }

    public static async Task<string> RunAsync(string program, params string[] args)
    {
        var startInfo = new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(startInfo)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} failed with exit code {process.ExitCode}: {await stderr}");
        return await stdout;
    }
}
