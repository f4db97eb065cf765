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

    /// <summary>PSS and size in KiB of the mappings of <paramref name="pid"/> whose name contains
    /// <paramref name="name"/> (/proc/PID/smaps), e.g. QEMU's guest RAM ("memory-backend-memfd").</summary>
    public static (long PssKiB, long SizeKiB) MappingKiB(int pid, string name)
    {
        long pss = 0, size = 0;
        bool inside = false;
        foreach (var line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            if (line.Length > 0 && char.IsAsciiHexDigit(line[0]) && line.Contains('-'))
                inside = line.Contains(name, StringComparison.Ordinal);
            else if (inside && line.StartsWith("Pss:", StringComparison.Ordinal))
                pss += long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
            else if (inside && line.StartsWith("Size:", StringComparison.Ordinal))
                size += long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        }
        return (pss, size);
    }

    private static long StatusField(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith(field, StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        throw new InvalidOperationException($"/proc/{pid}/status has no {field} line");
    }
}
