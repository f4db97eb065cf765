using System.Globalization;

namespace Sandbox.Agent;

/// <summary>Facts read from /proc: uptime, boot id, kernel release, the agent's RSS, the guest's memory.</summary>
public static class GuestFacts
{
    public static double UptimeSeconds()
    {
        string text = File.ReadAllText("/proc/uptime");
        int space = text.IndexOf(' ');
        return double.Parse(space < 0 ? text : text[..space], CultureInfo.InvariantCulture);
    }

    public static string BootId() => File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim();

    public static string KernelRelease() => File.ReadAllText("/proc/sys/kernel/osrelease").Trim();

    public static ulong RssBytes()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (!line.StartsWith("VmRSS:", StringComparison.Ordinal)) continue;
            string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return ulong.Parse(parts[1], CultureInfo.InvariantCulture) * 1024;
        }
        return 0;
    }

    /// <summary>A field of /proc/meminfo in bytes ("MemTotal", "MemAvailable", ...), 0 when absent.</summary>
    public static ulong MemInfoBytes(string field) => MemInfoBytes(File.ReadLines("/proc/meminfo"), field);

    public static ulong MemInfoBytes(IEnumerable<string> meminfoLines, string field)
    {
        foreach (string line in meminfoLines)
        {
            if (!line.StartsWith(field + ":", StringComparison.Ordinal)) continue;
            string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return parts.Length > 1 && ulong.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out ulong kib) ? kib * 1024 : 0;
        }
        return 0;
    }
}
