using System.Security.Cryptography;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Conformance;

/// <summary>
/// Finds critest: $CRITEST when set; otherwise the prebuilt one in shared/tools/cri-tools (next to the checkout, as
/// ../shared/tools/cri-tools, or at /work/shared/tools/cri-tools), unpacked from critest.xz into the cache after its
/// sha256 is checked against that folder's SHA256SUMS.
/// </summary>
public static class CritestBinary
{
    public static async Task<string> LocateAsync(string checkout, CancellationToken cancellation)
    {
        if (Environment.GetEnvironmentVariable("CRITEST") is { Length: > 0 } explicitPath)
        {
            return File.Exists(explicitPath) ? explicitPath
                : throw new FileNotFoundException($"$CRITEST names {explicitPath}, which does not exist");
        }
        string[] folders = [Path.GetFullPath(Path.Combine(checkout, "..", "shared", "tools", "cri-tools")), "/work/shared/tools/cri-tools"];
        string? folder = folders.FirstOrDefault(f => File.Exists(Path.Combine(f, "critest.xz")));
        if (folder is null)
            throw new FileNotFoundException($"critest not found: set $CRITEST to a critest binary, or provide critest.xz in {string.Join(" or ", folders)}");

        string sums = await File.ReadAllTextAsync(Path.Combine(folder, "SHA256SUMS"), cancellation);
        string? expected = sums.Split('\n').Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .FirstOrDefault(fields => fields.Length == 2 && fields[1].TrimStart('*') == "critest")?[0];
        if (expected is null)
            throw new InvalidDataException($"{folder}/SHA256SUMS has no line for critest");

        string cache = Directory.CreateDirectory(Path.Combine(Environment.GetEnvironmentVariable("SANDBOX_CACHE_DIR") ?? "/var/cache/sandbox", "cri-tools")).FullName;
        string binary = Path.Combine(cache, "critest");
        if (File.Exists(binary) && await Sha256Async(binary, cancellation) == expected)
            return binary;
        string unpacked = binary + ".tmp";
        var result = await ExternalCommand.RunAsync("sh", ["-c", $"xz -dc '{folder}/critest.xz' > '{unpacked}'"], TimeSpan.FromMinutes(2));
        if (result.ExitCode != 0)
            throw new InvalidOperationException($"unpacking {folder}/critest.xz failed: {result.Stderr.Trim()}");
        string actual = await Sha256Async(unpacked, cancellation);
        if (actual != expected)
            throw new InvalidDataException($"{folder}/critest.xz unpacks to sha256 {actual}, but SHA256SUMS says {expected}");
        File.SetUnixFileMode(unpacked, (UnixFileMode)0b111_101_101);
        File.Move(unpacked, binary, overwrite: true);
        return binary;
    }

    private static async Task<string> Sha256Async(string path, CancellationToken cancellation)
    {
        await using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellation));
    }
}
