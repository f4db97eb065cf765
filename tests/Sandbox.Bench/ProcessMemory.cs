namespace Sandbox.Bench;

/// <summary>Memory figures of host processes from /proc.</summary>
public static class ProcessMemory
{
    /// <summary>VmRSS in KiB.</summary>
    public static long RssKiB(int pid) => StatusField(pid, "VmRSS:");

    /// <summary>Proportional set size in KiB (/proc/PID/smaps_rollup): shared pages count once across processes.</summary>
    public static long PssKiB(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/smaps_rollup"))
            if (line.StartsWith("Pss:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        throw new InvalidOperationException($"/proc/{pid}/smaps_rollup has no Pss line");
    }

    private static long StatusField(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith(field, StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        throw new InvalidOperationException($"/proc/{pid}/status has no {field} line");
    }
}
