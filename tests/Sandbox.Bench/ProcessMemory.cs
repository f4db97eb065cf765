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

    /// <summary>PSS in KiB of <paramref name="pid"/> and every process under it (parents read from /proc/PID/stat).
    /// A process that exits meanwhile counts as nothing.</summary>
    public static long TreePssKiB(int pid)
    {
        var children = new Dictionary<int, List<int>>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int child))
                continue;
            try
            {
                // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'
                string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                int parent = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
                if (!children.TryGetValue(parent, out var list))
                    children[parent] = list = [];
                list.Add(child);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        long total = 0;
        var pending = new Stack<int>([pid]);
        while (pending.TryPop(out int next))
        {
            try { total += PssKiB(next); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            foreach (int child in children.GetValueOrDefault(next) ?? [])
                pending.Push(child);
        }
        return total;
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
