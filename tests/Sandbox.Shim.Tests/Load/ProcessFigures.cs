namespace Sandbox.Shim.Tests.Load;

/// <summary>One process's resident memory, open descriptors and threads, read from /proc.</summary>
public sealed record ProcessFigures(long RssKiB, int Descriptors, int Threads)
{
    public static ProcessFigures? Of(int pid)
    {
        try
        {
            long rss = 0;
            int threads = 0;
            foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    rss = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
                else if (line.StartsWith("Threads:", StringComparison.Ordinal))
                    threads = int.Parse(line.Split('\t', ' ', StringSplitOptions.RemoveEmptyEntries)[1]);
            }
            return new ProcessFigures(rss, Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length, threads);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // exited meanwhile
        }
    }
}

/// <summary>The least-squares slope of a series against its index (growth per step).</summary>
public static class Slope
{
    public static double Of(IReadOnlyList<double> values)
    {
        int n = values.Count;
        if (n < 2)
            return 0;
        double meanX = (n - 1) / 2.0, meanY = values.Average();
        double covariance = 0, variance = 0;
        for (int i = 0; i < n; i++)
        {
            covariance += (i - meanX) * (values[i] - meanY);
            variance += (i - meanX) * (i - meanX);
        }
        return covariance / variance;
    }
}
