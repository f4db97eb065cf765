using System.Globalization;
using Sandbox.Hypervisors.Jail;
using Xunit;

namespace Sandbox.Shim.Tests.Confinement;

/// <summary>What /proc says about how a running process is confined (issue 11): its seccomp mode and filters,
/// no_new_privs, uid, effective and bounding capabilities, whether its mount namespace is the host's, its core-dump
/// limit, and which host paths exist in its root.</summary>
public sealed record ProcessConfinement(
    int Pid, int SeccompMode, int SeccompFilters, bool NoNewPrivs, int Uid, ulong EffectiveCapabilities,
    ulong BoundingCapabilities, bool OwnMountNamespace, string CoreLimit)
{
    public static ProcessConfinement Read(int pid)
    {
        var status = File.ReadAllLines($"/proc/{pid}/status")
            .Select(l => l.Split(':', 2))
            .Where(p => p.Length == 2)
            .ToDictionary(p => p[0], p => p[1].Trim());
        string core = File.ReadAllLines($"/proc/{pid}/limits").Single(l => l.StartsWith("Max core file size", StringComparison.Ordinal));
        return new ProcessConfinement(
            pid,
            int.Parse(status["Seccomp"], CultureInfo.InvariantCulture),
            status.TryGetValue("Seccomp_filters", out var filters) ? int.Parse(filters, CultureInfo.InvariantCulture) : -1,
            status["NoNewPrivs"] == "1",
            int.Parse(status["Uid"].Split('\t')[0], CultureInfo.InvariantCulture),
            ulong.Parse(status["CapEff"], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            ulong.Parse(status["CapBnd"], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            new FileInfo($"/proc/{pid}/ns/mnt").LinkTarget != new FileInfo("/proc/self/ns/mnt").LinkTarget,
            string.Join(' ', core.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(4).Take(2)));
    }

    public IReadOnlyList<string> EffectiveCapabilityNames => LinuxCapability.NamesOf(EffectiveCapabilities);

    /// <summary>Whether <paramref name="hostPath"/> exists in the process's root (through /proc/PID/root).</summary>
    public bool Sees(string hostPath) => Path.Exists($"/proc/{Pid}/root{hostPath}");

    /// <summary>The names at the top of the process's root.</summary>
    public IReadOnlyList<string> RootEntries() =>
        Directory.EnumerateFileSystemEntries($"/proc/{Pid}/root").Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToArray();

    /// <summary>What every jailed process has: a seccomp filter of its own, no_new_privs, uid 0 with exactly
    /// <paramref name="capabilities"/> (also the bounding set), its own mount namespace, no core dumps, and none of the
    /// host's secrets or containerd's files in its root.</summary>
    public void AssertJailed(IReadOnlyList<string> capabilities, IEnumerable<string> hostPathsItMustNotSee)
    {
        Assert.Equal(2, SeccompMode);
        Assert.True(NoNewPrivs, $"pid {Pid}: NoNewPrivs is not 1");
        Assert.Equal(0, Uid);
        Assert.Equal(capabilities.Order(StringComparer.Ordinal), EffectiveCapabilityNames.Order(StringComparer.Ordinal));
        Assert.Equal(EffectiveCapabilities, BoundingCapabilities);
        Assert.True(OwnMountNamespace, $"pid {Pid} runs in the host's mount namespace");
        Assert.Equal("0 0", CoreLimit);
        foreach (var path in new[] { "/etc/shadow", "/etc/passwd", "/root", "/home", "/var/lib/containerd", "/usr/bin/sh", "/bin/sh", "/usr/sbin" }
                     .Concat(hostPathsItMustNotSee))
            Assert.False(Sees(path), $"pid {Pid} sees the host's {path}; its root holds: {string.Join(", ", RootEntries())}");
    }
}
