using System.Text.Json.Nodes;
using Sandbox.Cri.Tests.Fixture;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Conformance;

/// <summary>
/// Stand-ins for the images critest pulls, built from this host's busybox-static (no download): each is pushed to the
/// <see cref="LocalRegistry"/> under the name critest pulls with `-registry-prefix` (the path of the original name,
/// tag latest), and imported into containerd's k8s.io namespace under the original name, which critest's
/// CreateContainer then uses.
/// </summary>
public static class ConformanceImages
{
    /// <summary>One stand-in: the name critest knows, and what its entrypoint runs (null: busybox's `sh`).</summary>
    public sealed record StandIn(string OriginalName, string? ServeOnPort)
    {
        /// <summary>"e2e-test-images/busybox:latest": what `-registry-prefix HOST` makes critest pull.</summary>
        public string RegistryPath
        {
            get
            {
                string withoutTag = OriginalName.Contains(':', StringComparison.Ordinal) ? OriginalName[..OriginalName.LastIndexOf(':')] : OriginalName;
                return withoutTag[(withoutTag.IndexOf('/') + 1)..] + ":latest";
            }
        }
    }

    /// <summary>Every applet: the specs run pgrep, top, nc, ps...</summary>
    public static readonly StandIn Busybox = new("registry.k8s.io/e2e-test-images/busybox:1.29-2", null);

    /// <summary>Web servers: critest only checks for HTTP 200 on the port.</summary>
    public static readonly IReadOnlyList<StandIn> WebServers =
    [
        new("registry.k8s.io/e2e-test-images/nginx:1.14-2", "80"),
        new("registry.k8s.io/e2e-test-images/httpd:2.4.39-4", "80"),
        new("gcr.io/k8s-staging-cri-tools/hostnet-nginx-amd64:latest", "12003"),
    ];

    /// <summary>Builds each stand-in in <paramref name="directory"/>, pushes it and imports it into k8s.io.</summary>
    public static async Task PublishAsync(string directory, LocalRegistry registry, PrivateContainerd containerd, CancellationToken cancellation)
    {
        string busybox = Path.Combine(directory, "busybox-all-applets.tar");
        BusyboxOciImage.Build(busybox, Busybox.OriginalName, applets: BusyboxOciImage.AllApplets());
        await PublishOneAsync(busybox, Busybox);
        foreach (var server in WebServers)
        {
            string tar = Path.Combine(directory, Path.GetFileName(server.RegistryPath).Replace(':', '-') + ".tar");
            DerivedOciImage.Write(busybox, tar, server.OriginalName, process => ServeAPage(process, server.ServeOnPort!));
            await PublishOneAsync(tar, server);
        }

        async Task PublishOneAsync(string tar, StandIn image)
        {
            await registry.PushAsync(tar, image.RegistryPath, cancellation);
            await containerd.ImportImageAsync(tar, "k8s.io");
        }
    }

    /// <summary>busybox httpd in the foreground on PORT, serving an index.html (HTTP 200 on /).</summary>
    private static void ServeAPage(JsonObject process, string port)
    {
        process["Cmd"] = DerivedOciImage.StringArray(
            ["sh", "-c", $"mkdir -p /www && echo stand-in-web-server > /www/index.html && exec httpd -f -p {port} -h /www"]);
        process["ExposedPorts"] = new JsonObject { [$"{port}/tcp"] = new JsonObject() };
    }
}
