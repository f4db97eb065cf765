using System.Text.RegularExpressions;
using CliWrap;
using CliWrap.Buffered;

namespace Sandbox.Hypervisors.HostDetection;

/// <summary>Result of <see cref="QemuProbe"/>.</summary>
/// <param name="Path">Full path of the QEMU binary, or null when not found.</param>
/// <param name="Version">Parsed version ("7.2.22"), or null.</param>
/// <param name="VersionLine">First line of `--version`, or null.</param>
/// <param name="Reason">One sentence for `sandboxctl check` and error messages.</param>
public sealed record QemuProbeResult(string? Path, Version? Version, string? VersionLine, string Reason)
{
    public bool Usable => Path is not null && Version is not null;
}

/// <summary>Finds qemu-system-x86_64 and asks it for its version.</summary>
public sealed partial class QemuProbe
{
    public const string BinaryName = "qemu-system-x86_64";
    private static readonly TimeSpan VersionTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Where QEMU is: <paramref name="explicitPath"/> when given (must be executable), else PATH.
    /// Null with <paramref name="reason"/> when not found.</summary>
    public static string? Locate(string? explicitPath, out string reason, string? searchPath = null)
    {
        if (explicitPath is not null)
        {
            var ok = ExecutableSearch.IsExecutableFile(explicitPath);
            reason = ok ? $"{explicitPath} (configured)" : $"{explicitPath} (configured VMM path) is not an executable file";
            return ok ? explicitPath : null;
        }
        var found = ExecutableSearch.Find(BinaryName, searchPath);
        reason = found is not null ? $"{found} (from PATH)" : $"{BinaryName} is not on PATH (apt-get install qemu-system-x86)";
        return found;
    }

    /// <summary>Locates QEMU and runs `--version` (with a timeout).</summary>
    public async Task<QemuProbeResult> ProbeAsync(string? explicitPath, CancellationToken cancellationToken)
    {
        var path = Locate(explicitPath, out var reason);
        if (path is null)
            return new QemuProbeResult(null, null, null, reason);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(VersionTimeout);
        BufferedCommandResult result;
        try
        {
            result = await Cli.Wrap(path).WithArguments(["--version"])
                .WithValidation(CommandResultValidation.None)
                .ExecuteBufferedAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new QemuProbeResult(path, null, null, $"`{path} --version` did not finish within {VersionTimeout.TotalSeconds} s");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return new QemuProbeResult(path, null, null, $"`{path} --version` could not run: {e.Message}");
        }
        var firstLine = result.StandardOutput.Split('\n', 2)[0].Trim();
        var version = ParseVersion(result.StandardOutput);
        if (result.ExitCode != 0 || version is null)
            return new QemuProbeResult(path, null, firstLine,
                $"`{path} --version` exited with {result.ExitCode} and printed no QEMU version: {firstLine} {result.StandardError.Trim()}");
        return new QemuProbeResult(path, version, firstLine, $"{path}: {firstLine}");
    }

    /// <summary>"QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)" → 7.2.22.</summary>
    public static Version? ParseVersion(string versionOutput)
    {
        var match = VersionLine().Match(versionOutput);
        if (!match.Success)
            return null;
        var micro = match.Groups["micro"].Success ? int.Parse(match.Groups["micro"].Value) : 0;
        return new Version(int.Parse(match.Groups["major"].Value), int.Parse(match.Groups["minor"].Value), micro);
    }

    [GeneratedRegex(@"QEMU emulator version (?<major>[0-9]+)\.(?<minor>[0-9]+)(\.(?<micro>[0-9]+))?")]
    private static partial Regex VersionLine();
}
