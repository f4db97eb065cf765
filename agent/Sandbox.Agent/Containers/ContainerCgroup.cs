using System.Globalization;
using Sandbox.Agent.Protocol;

namespace Sandbox.Agent.Containers;

/// <summary>
/// A container's cgroup v2 directory in the guest (where crun put its init, read from /proc/PID/cgroup once the
/// container is created) and what the kubelet wants from it: CPU, memory, pids, and the OOM kills in memory.events.
/// Plain file reads; no process is started per request. A file the kernel does not offer (a controller not enabled
/// for this cgroup) leaves its figures at 0.
/// </summary>
public sealed class ContainerCgroup(string directory)
{
    public string Directory => directory;

    /// <summary>The cgroup v2 directory of process <paramref name="pid"/> ("0::/path" in /proc/PID/cgroup), or null.</summary>
    public static ContainerCgroup? Of(int pid, string procRoot = "/proc", string cgroupRoot = "/sys/fs/cgroup")
    {
        try
        {
            foreach (string line in File.ReadLines($"{procRoot}/{pid}/cgroup"))
            {
                if (line.StartsWith("0::", StringComparison.Ordinal))
                    return new ContainerCgroup(cgroupRoot + line[3..].TrimEnd('/'));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return null;
    }

    public GetContainerStatsResponse ReadStats()
    {
        var stats = new GetContainerStatsResponse { Cgroup = directory };
        var cpu = ReadKeyedFile("cpu.stat");
        stats.CpuUsageUsec = cpu.GetValueOrDefault("usage_usec");
        stats.CpuUserUsec = cpu.GetValueOrDefault("user_usec");
        stats.CpuSystemUsec = cpu.GetValueOrDefault("system_usec");
        stats.CpuNrPeriods = cpu.GetValueOrDefault("nr_periods");
        stats.CpuNrThrottled = cpu.GetValueOrDefault("nr_throttled");
        stats.CpuThrottledUsec = cpu.GetValueOrDefault("throttled_usec");
        stats.MemoryCurrent = ReadNumber("memory.current");
        stats.MemoryMax = ReadNumber("memory.max");
        stats.MemorySwapCurrent = ReadNumber("memory.swap.current");
        stats.MemoryStat.Add(ReadKeyedFile("memory.stat"));
        stats.PidsCurrent = ReadNumber("pids.current");
        stats.PidsMax = ReadNumber("pids.max");
        stats.OomKills = OomKills();
        return stats;
    }

    /// <summary>Whether the cgroup is known to hold no process: "populated 0" in cgroup.events (which counts its
    /// descendants too). False when the file cannot be read: the caller then cannot rely on it being empty.</summary>
    public bool IsKnownEmpty() =>
        ReadFile("cgroup.events") is { } events && ParseKeyedLines(events).TryGetValue("populated", out ulong populated) && populated == 0;

    /// <summary>oom_kill of memory.events: how many processes of this cgroup the kernel killed for its memory limit.</summary>
    public ulong OomKills() => ReadKeyedFile("memory.events").GetValueOrDefault("oom_kill");

    /// <summary>A single number; "max" (no limit) and a missing file read as 0.</summary>
    private ulong ReadNumber(string file)
    {
        string? text = ReadFile(file)?.Trim();
        return text is not null && ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong value) ? value : 0;
    }

    /// <summary>"key value" lines (cpu.stat, memory.stat, memory.events); a missing file reads as empty.</summary>
    private Dictionary<string, ulong> ReadKeyedFile(string file) => ParseKeyedLines(ReadFile(file) ?? "");

    public static Dictionary<string, ulong> ParseKeyedLines(string text)
    {
        var values = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int space = line.IndexOf(' ');
            if (space > 0 && ulong.TryParse(line.AsSpan(space + 1).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out ulong value))
                values[line[..space]] = value;
        }
        return values;
    }

    private string? ReadFile(string file)
    {
        try
        {
            return File.ReadAllText(Path.Combine(directory, file));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
