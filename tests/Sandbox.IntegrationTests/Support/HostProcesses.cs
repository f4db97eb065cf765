namespace Sandbox.IntegrationTests.Support;

/// <summary>Looks at the host's processes through /proc.</summary>
public static class HostProcesses
{
    public static bool IsAlive(int pid)
    {
        // A zombie still has a /proc entry; it counts as gone.
        var stat = $"/proc/{pid}/stat";
        if (!File.Exists(stat))
            return false;
        try
        {
            var text = File.ReadAllText(stat);
            var state = text[(text.LastIndexOf(')') + 2)..].Split(' ')[0];
            return state != "Z";
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Live processes whose command line contains <paramref name="fragment"/> (other than this test process).</summary>
    public static IReadOnlyList<string> WithCommandLineContaining(string fragment)
    {
        var found = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid) || pid == Environment.ProcessId || !IsAlive(pid))
                continue;
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (cmdline.Contains(fragment))
                    found.Add($"{pid}: {cmdline}");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
        return found;
    }
}
