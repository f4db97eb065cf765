using System.Globalization;

namespace Sandbox.Shim.SandboxApi;

/// <summary>
/// What one host process costs: CPU time (user and kernel, from /proc/PID/stat) and resident memory (VmRSS from
/// /proc/PID/status). For a sandbox that is its VM's QEMU: the host's view of the whole pod.
/// </summary>
internal sealed record HostProcessUsage(ulong UserNanoseconds, ulong KernelNanoseconds, ulong ResidentBytes)
{
    /// <summary>USER_HZ: the unit of utime and stime in /proc/PID/stat on Linux.</summary>
    private const ulong ClockTicksPerSecond = 100;

    public static HostProcessUsage Read(int pid, string procRoot = "/proc")
    {
        string stat = File.ReadAllText(Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture), "stat"));
        string status = File.ReadAllText(Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture), "status"));
        return Parse(stat, status);
    }

    /// <summary>From the texts of /proc/PID/stat and /proc/PID/status.</summary>
    public static HostProcessUsage Parse(string stat, string status)
    {
        // the command name (field 2) is in parentheses and may contain spaces: count fields after its last ')'
        int end = stat.LastIndexOf(')');
        if (end < 0)
            throw new FormatException("/proc/PID/stat has no ')' after the command name");
        var fields = stat[(end + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 13)
            throw new FormatException($"/proc/PID/stat has {fields.Length} fields after the command name, utime and stime need 13");
        ulong utime = ulong.Parse(fields[11], CultureInfo.InvariantCulture); // field 14
        ulong stime = ulong.Parse(fields[12], CultureInfo.InvariantCulture); // field 15
        ulong rssKiB = 0;
        foreach (var line in status.Split('\n'))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                rssKiB = ulong.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        }
        const ulong nanosecondsPerTick = 1_000_000_000 / ClockTicksPerSecond;
        return new HostProcessUsage(utime * nanosecondsPerTick, stime * nanosecondsPerTick, rssKiB * 1024);
    }
}
