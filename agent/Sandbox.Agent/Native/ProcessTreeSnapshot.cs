using System.Globalization;

namespace Sandbox.Agent.Native;

/// <summary>
/// What a process and its descendants are doing right now, read from /proc, for the log line of a child that hangs:
/// "pid 412 crun S wchan do_wait, pid 415 crun D wchan p9_client_rpc" (state as /proc/PID/stat gives it, the kernel
/// function a sleeping process waits in). Descendants come from /proc/PID/task/TID/children; a process that exits
/// meanwhile is left out.
/// </summary>
public static class ProcessTreeSnapshot
{
    /// <summary>At most this many processes are described (a fork bomb's tree is not a log line).</summary>
    public const int MaxProcesses = 16;

    public static string Describe(int rootPid, string procRoot = "/proc")
    {
        var described = new List<string>();
        var pending = new Queue<int>([rootPid]);
        while (pending.Count > 0 && described.Count < MaxProcesses)
        {
            int pid = pending.Dequeue();
            string directory = Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture));
            string? stat = ReadOrNull(Path.Combine(directory, "stat"));
            // "412 (crun) S 1 ...": the name may hold spaces and parentheses, the state follows the last ')'
            int open = stat?.IndexOf('(') ?? -1, close = stat?.LastIndexOf(')') ?? -1;
            if (stat is null || open < 0 || close < open || close + 2 >= stat.Length)
                continue;
            string wchan = ReadOrNull(Path.Combine(directory, "wchan"))?.Trim() is { Length: > 0 } name && name != "0" ? name : "-";
            described.Add($"pid {pid} {stat[(open + 1)..close]} {stat[close + 2]} wchan {wchan}");
            foreach (int child in Children(directory))
                pending.Enqueue(child);
        }
        return described.Count == 0 ? $"pid {rootPid} is gone" : string.Join(", ", described);
    }

    private static IEnumerable<int> Children(string processDirectory)
    {
        string[] tasks;
        try
        {
            tasks = Directory.GetDirectories(Path.Combine(processDirectory, "task"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            yield break;
        }
        foreach (string task in tasks)
        {
            foreach (string child in (ReadOrNull(Path.Combine(task, "children")) ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                if (int.TryParse(child, NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
                    yield return pid;
            }
        }
    }

    private static string? ReadOrNull(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
