namespace Sandbox.Shim.Tests.Containerd;

/// <summary>
/// The containerd releases of the test matrix (images/setup-host.sh: /var/cache/sandbox/containerd/manifest.txt, one
/// "LABEL RELEASE PACKAGE VERSION ..." line each, binaries in &lt;label&gt;/bin). <see cref="Use"/> puts one release's
/// containerd, ctr and runc shim first on PATH for what the bench or the soak starts next, as tests/run-tests.sh does for the tests.
/// SANDBOX_CONTAINERD_MATRIX ("1.6 2") runs only those labels.
/// </summary>
public sealed record ContainerdMatrix(string Label, string PackageVersion, string BinDirectory)
{
    private const string Manifest = "/var/cache/sandbox/containerd/manifest.txt";

    public static IReadOnlyList<ContainerdMatrix> Load()
    {
        if (!File.Exists(Manifest))
            throw new InvalidOperationException($"{Manifest} is missing: run images/setup-host.sh (make setup), which extracts the containerd releases");
        var wanted = Environment.GetEnvironmentVariable("SANDBOX_CONTAINERD_MATRIX")?.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return File.ReadAllLines(Manifest)
            .Where(line => line.Length > 0 && !line.StartsWith('#'))
            .Select(line => line.Split(' '))
            .Select(f => new ContainerdMatrix(f[0], f[3], Path.Combine(Path.GetDirectoryName(Manifest)!, f[0], "bin")))
            .Where(release => wanted is null || wanted.Contains(release.Label))
            .ToList();
    }

    /// <summary>The suffix of this release's figures: _c16, _c17, _c2.</summary>
    public string Suffix => "_c" + Label.Replace(".", "");

    /// <summary>Puts this release first on PATH until disposed.</summary>
    public IDisposable Use()
    {
        string previous = Environment.GetEnvironmentVariable("PATH") ?? "";
        Environment.SetEnvironmentVariable("PATH", BinDirectory + ":" + previous);
        return new PathRestore(previous);
    }

    private sealed class PathRestore(string previous) : IDisposable
    {
        public void Dispose() => Environment.SetEnvironmentVariable("PATH", previous);
    }
}
