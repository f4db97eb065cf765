using System.Globalization;

namespace Sandbox.Ctl.Metrics;

/// <summary>One host process's memory and CPU, read from /proc: RSS and PSS (smaps_rollup), user + system CPU time.</summary>
public sealed record ProcessSample(int Pid, string Name, long RssBytes, long PssBytes, double CpuSeconds)
{
    /// <summary>Clock ticks per second of /proc/pid/stat's times (sysconf(_SC_CLK_TCK): 100 on every Linux ABI we run on).</summary>
    private const double ClockTicksPerSecond = 100;

    /// <summary>The sample of <paramref name="pid"/>, or null when it is gone.</summary>
    public static ProcessSample? Read(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            string name = stat[(stat.IndexOf('(') + 1)..stat.LastIndexOf(')')];
            // fields after "(comm) " start at field 3; utime and stime are fields 14 and 15
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            double cpu = (double.Parse(fields[11], CultureInfo.InvariantCulture) + double.Parse(fields[12], CultureInfo.InvariantCulture))
                         / ClockTicksPerSecond;
            long rss = 0, pss = 0;
            foreach (string line in File.ReadLines($"/proc/{pid}/smaps_rollup"))
            {
                if (line.StartsWith("Rss:", StringComparison.Ordinal))
                    rss = KiBField(line) * 1024;
                else if (line.StartsWith("Pss:", StringComparison.Ordinal))
                    pss = KiBField(line) * 1024;
            }
            return new ProcessSample(pid, name, rss, pss, cpu);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException
                                       or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    private static long KiBField(string line) =>
        long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
}
