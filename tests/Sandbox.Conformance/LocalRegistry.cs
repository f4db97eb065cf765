using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Conformance;

/// <summary>
/// A private image registry on 127.0.0.1 (Debian's docker-registry, the CNCF distribution registry), plain HTTP, its
/// storage in a directory of its own; images are pushed with skopeo. critest pulls its test images from here
/// (`-registry-prefix`), and containerd's CRI reaches it through a hosts.toml (<see cref="WriteHostsDirectory"/>).
/// </summary>
public sealed class LocalRegistry : IAsyncDisposable
{
    private readonly Process _process;

    private LocalRegistry(string directory, int port, Process process)
    {
        Directory = directory;
        Port = port;
        _process = process;
    }

    public string Directory { get; }

    public int Port { get; }

    /// <summary>"127.0.0.1:PORT": the registry prefix of pushed and pulled names.</summary>
    public string Host => $"127.0.0.1:{Port}";

    public static async Task<LocalRegistry> StartAsync(string directory, CancellationToken cancellation)
    {
        const string binary = "/usr/bin/docker-registry";
        if (!File.Exists(binary))
            throw new InvalidOperationException($"{binary} is missing: install Debian's docker-registry package (images/setup-host.sh does)");
        int port = FreeLoopbackPort();
        string config = Path.Combine(directory, "registry.yml");
        await File.WriteAllTextAsync(config, $"""
            version: 0.1
            log:
              level: warn
            storage:
              filesystem:
                rootdirectory: {Path.Combine(directory, "storage")}
            http:
              addr: 127.0.0.1:{port}
            """, cancellation);
        var process = Process.Start(new ProcessStartInfo(binary, ["serve", config])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        }) ?? throw new InvalidOperationException($"{binary} did not start");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var registry = new LocalRegistry(directory, port, process);
        try
        {
            await registry.WaitUntilServingAsync(cancellation);
            return registry;
        }
        catch
        {
            await registry.DisposeAsync();
            throw;
        }
    }

    /// <summary>skopeo copy of an OCI layout tar to NAME:TAG in this registry ("e2e-test-images/busybox:latest").</summary>
    public async Task PushAsync(string layoutTar, string nameAndTag, CancellationToken cancellation)
    {
        var result = await ExternalCommand.RunAsync("skopeo",
            ["copy", "--quiet", "--insecure-policy", "--dest-tls-verify=false", $"oci-archive:{layoutTar}", $"docker://{Host}/{nameAndTag}"],
            TimeSpan.FromMinutes(2));
        if (result.ExitCode != 0)
            throw new InvalidOperationException($"pushing {layoutTar} to {Host}/{nameAndTag} failed: skopeo exited with {result.ExitCode}: {result.Stderr.Trim()}");
    }

    /// <summary>
    /// containerd's registry hosts directory for this registry: &lt;dir&gt;/127.0.0.1:PORT/hosts.toml, plain HTTP.
    /// </summary>
    public string WriteHostsDirectory(string directory)
    {
        string host = System.IO.Directory.CreateDirectory(Path.Combine(directory, Host)).FullName;
        File.WriteAllText(Path.Combine(host, "hosts.toml"), $"""
            server = "http://{Host}"

            [host."http://{Host}"]
              capabilities = ["pull", "resolve"]
            """);
        return directory;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    private async Task WaitUntilServingAsync(CancellationToken cancellation)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"docker-registry exited with {_process.ExitCode} right after it started (port {Port})");
            try
            {
                using var response = await http.GetAsync($"http://{Host}/v2/", cancellation);
                if (response.IsSuccessStatusCode)
                    return;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) when (!cancellation.IsCancellationRequested) { }
            await Task.Delay(100, cancellation);
        }
        throw new TimeoutException($"docker-registry did not answer http://{Host}/v2/ within 30 s");
    }

    private static int FreeLoopbackPort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}
