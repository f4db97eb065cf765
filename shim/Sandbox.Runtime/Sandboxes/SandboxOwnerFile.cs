using System.Globalization;

namespace Sandbox.Runtime.Sandboxes;

/// <summary>Who owns a sandbox: a process, named by pid and start time (field 22 of /proc/pid/stat), so that a
/// recycled pid is never taken for the owner.</summary>
public sealed record SandboxOwner(int Pid, string StartTime)
{
    /// <summary>True while that very process runs (not a zombie, not a newer process with the same pid).</summary>
    public bool IsAlive => SandboxOwnerFile.StartTimeOf(Pid) is { } startTime && startTime == StartTime;
}

/// <summary>
/// <c>&lt;state&gt;/shim.pid</c>: which process owns a sandbox VM (the shim daemon that booted it), as "pid start-time".
/// <see cref="SandboxVm.BootAsync"/> writes it right after it creates the state directory. The shim's `delete`
/// subcommand reads it to tell a daemon that is still stopping its VM from one that died, and `sandboxctl list` and
/// `gc` read it to tell a live sandbox from a dead one's leftovers.
/// </summary>
public static class SandboxOwnerFile
{
    public const string FileName = "shim.pid";

    /// <summary>Records the calling process as the owner of the sandbox in <paramref name="stateDirectory"/>.</summary>
    public static void WriteSelf(string stateDirectory)
    {
        int pid = Environment.ProcessId;
        string path = Path.Combine(stateDirectory, FileName);
        File.WriteAllText(path + ".tmp", $"{pid} {StartTimeOf(pid)}\n");
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>The recorded owner, or null when there is no readable, well-formed record.</summary>
    public static SandboxOwner? Recorded(string stateDirectory)
    {
        string[] fields;
        try
        {
            fields = File.ReadAllText(Path.Combine(stateDirectory, FileName))
                .Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        if (fields.Length != 2 || !int.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
            return null;
        return new SandboxOwner(pid, fields[1]);
    }

    /// <summary>The pid of the owner if it still runs and is not the calling process, else null (no file, unreadable,
    /// or the process is gone). For the shim's `delete`, which must not wait for itself.</summary>
    public static int? LiveOwner(string stateDirectory) =>
        Recorded(stateDirectory) is { IsAlive: true } owner && owner.Pid != Environment.ProcessId ? owner.Pid : null;

    /// <summary>Field 22 (starttime) of /proc/pid/stat, or null when the process is gone or a zombie.</summary>
    public static string? StartTimeOf(int pid)
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
