using System.Globalization;

namespace Sandbox.Shim.Vm;

/// <summary>
/// <c>&lt;state&gt;/shim.pid</c>: which shim daemon owns a sandbox VM, as "pid start-time" (field 22 of
/// /proc/pid/stat, so that a recycled pid is never taken for the owner). The `delete` subcommand reads it to tell a
/// daemon that is still stopping its VM (leave it alone, wait for it) from one that died (clean up after it).
/// </summary>
internal static class ShimOwnerFile
{
    public const string FileName = "shim.pid";

    public static void WriteSelf(string stateDirectory)
    {
        int pid = Environment.ProcessId;
        string path = Path.Combine(stateDirectory, FileName);
        File.WriteAllText(path + ".tmp", $"{pid} {StartTimeOf(pid)}\n");
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>The pid of the owning daemon if it still runs, else null (no file, unreadable, or the process is gone).</summary>
    public static int? LiveOwner(string stateDirectory)
    {
        string[] fields;
        try
        {
            fields = File.ReadAllText(Path.Combine(stateDirectory, FileName)).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        if (fields.Length != 2 || !int.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
            return null;
        return StartTimeOf(pid) is { } startTime && startTime == fields[1] && pid != Environment.ProcessId ? pid : null;
    }

    /// <summary>Field 22 (starttime) of /proc/pid/stat, or null when the process is gone or a zombie.</summary>
    private static string? StartTimeOf(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        // "pid (comm) state ppid ..." where comm may contain spaces: fields after ')' start with field 3 (state)
        var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        if (rest.Length < 20 || rest[0] == "Z")
            return null;
        return rest[19];
    }
}
