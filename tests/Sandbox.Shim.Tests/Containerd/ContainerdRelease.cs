using System.Text.RegularExpressions;

namespace Sandbox.Shim.Tests.Containerd;

/// <summary>
/// The containerd release the tests run against: the `containerd` first on PATH (tests/run-tests.sh puts one release of
/// the matrix there, /var/cache/sandbox/containerd/&lt;label&gt;/bin). Decides the config.toml format: `version = 2`
/// for 1.6 and 1.7, `version = 3` for 2.x.
/// </summary>
public sealed partial record ContainerdRelease(int Major, int Minor, string Text)
{
    /// <summary>The config.toml version this release is configured with.</summary>
    public int ConfigVersion => Major >= 2 ? 3 : 2;

    /// <summary>"1.6", "1.7", "2.1": how test output and bench figures name it.</summary>
    public string Label => $"{Major}.{Minor}";

    /// <summary>The bench suffix of this release: _c16, _c17, _c2.</summary>
    public string BenchSuffix => Major >= 2 ? "_c2" : $"_c{Major}{Minor}";

    public static async Task<ContainerdRelease> DetectAsync()
    {
        var result = await ExternalCommand.RunAsync("containerd", new[] { "--version" }, TimeSpan.FromSeconds(30));
        if (result.ExitCode != 0)
            throw new InvalidOperationException($"cannot tell the containerd release on PATH: {result}");
        return Parse(result.Stdout);
    }

    /// <summary>Parses `containerd --version` ("containerd github.com/containerd/containerd/v2 2.1.9+unknown ...").</summary>
    public static ContainerdRelease Parse(string versionOutput)
    {
        var match = VersionPattern().Match(versionOutput);
        if (!match.Success)
            throw new FormatException($"no containerd version in `containerd --version` output: '{versionOutput.Trim()}'");
        return new ContainerdRelease(int.Parse(match.Groups[1].Value), int.Parse(match.Groups[2].Value), match.Groups[0].Value);
    }

    public override string ToString() => $"containerd {Text}";

    [GeneratedRegex(@"\bv?(\d+)\.(\d+)\.\d+\S*")]
    private static partial Regex VersionPattern();
}
