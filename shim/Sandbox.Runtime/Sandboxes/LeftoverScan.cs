using Sandbox.Hypervisors.Processes;

namespace Sandbox.Runtime.Sandboxes;

/// <summary>A dead sandbox and what it left: its state directory, VM processes and mounts below it.</summary>
public sealed record DeadSandbox(SandboxStateDirectory State, SandboxOwner? Owner, IReadOnlyList<LeftoverProcess> Processes,
    IReadOnlyList<string> Mounts);

/// <summary>A VM process (QEMU, vhost-device-vsock) whose command line names a state directory that no longer exists.</summary>
public sealed record OrphanProcess(LeftoverProcess Process, string StateDirectory);

/// <summary>What <see cref="LeftoverScan"/> found under one state root.</summary>
public sealed record LeftoverReport(string StateRoot, IReadOnlyList<DeadSandbox> DeadSandboxes, IReadOnlyList<OrphanProcess> Orphans,
    IReadOnlyList<string> LiveSandboxes, IReadOnlyList<string> StartingSandboxes, IReadOnlyList<string> AbandonedRemovals)
{
    public bool IsClean => DeadSandboxes.Count == 0 && Orphans.Count == 0 && AbandonedRemovals.Count == 0;
}

/// <summary>
/// Finds what dead sandboxes left on this host, for `sandboxctl gc`: state directories whose owner is gone
/// (<see cref="SandboxOwnership"/>) with their processes and mounts, and VM processes whose state directory is gone
/// altogether. Read-only: removing is <see cref="SandboxStateRemoval"/>'s and gc's job.
/// </summary>
public static class LeftoverScan
{
    /// <summary>Executable names (as /proc/pid/comm shows them, at most 15 bytes) of the processes a VM runs. Only
    /// these are ever taken for orphans, whatever else names a state directory on its command line.</summary>
    public static readonly IReadOnlyList<string> VmProcessNames = ["qemu-system-", "vhost-device-vs"];

    public static LeftoverReport Scan(string stateRoot, DateTime utcNow, string procRoot = "/proc")
    {
        var dead = new List<DeadSandbox>();
        var live = new List<string>();
        var starting = new List<string>();
        foreach (var state in SandboxStateDirectory.List(stateRoot))
        {
            switch (SandboxOwnership.Of(state, utcNow))
            {
                case SandboxLiveness.Live:
                    live.Add(state.SandboxId);
                    break;
                case SandboxLiveness.Starting:
                    starting.Add(state.SandboxId);
                    break;
                default:
                    dead.Add(new DeadSandbox(state, SandboxOwnerFile.Recorded(state.Path),
                        LeftoverVmProcesses.Find(state.Path, procRoot), MountTable.MountPointsBelow(state.Path)));
                    break;
            }
        }
        return new LeftoverReport(stateRoot, dead, FindOrphans(stateRoot, procRoot), live, starting,
            SandboxStateDirectory.AbandonedRemovals(stateRoot));
    }

    private static List<OrphanProcess> FindOrphans(string stateRoot, string procRoot)
    {
        var orphans = new List<OrphanProcess>();
        if (!Directory.Exists(procRoot))
            return orphans;
        foreach (var dir in Directory.EnumerateDirectories(procRoot))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
                continue;
            string comm, commandLine;
            try
            {
                comm = File.ReadAllText(Path.Combine(dir, "comm")).TrimEnd('\n');
                if (!VmProcessNames.Any(name => comm.StartsWith(name, StringComparison.Ordinal)))
                    continue;
                commandLine = File.ReadAllText(Path.Combine(dir, "cmdline")).TrimEnd('\0').Replace('\0', ' ');
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // exited meanwhile
            }
            if (StateDirectoryNamedBy(commandLine, stateRoot) is { } stateDirectory && !Directory.Exists(stateDirectory))
                orphans.Add(new OrphanProcess(new LeftoverProcess(pid, commandLine), stateDirectory));
        }
        return orphans;
    }

    /// <summary>The first <c>&lt;stateRoot&gt;/&lt;id&gt;</c> that <paramref name="commandLine"/> names a path inside, or null.</summary>
    public static string? StateDirectoryNamedBy(string commandLine, string stateRoot)
    {
        var prefix = Path.TrimEndingDirectorySeparator(Path.GetFullPath(stateRoot)) + "/";
        int at = commandLine.IndexOf(prefix, StringComparison.Ordinal);
        while (at >= 0)
        {
            // The root must start a path (beginning, after a space, '=' or ','), and be followed by "<id>/".
            bool starts = at == 0 || commandLine[at - 1] is ' ' or '=' or ',';
            int idStart = at + prefix.Length;
            int idEnd = commandLine.IndexOf('/', idStart);
            int separator = commandLine.IndexOfAny([' ', ','], idStart);
            if (starts && idEnd > idStart && (separator < 0 || idEnd < separator))
                return prefix + commandLine[idStart..idEnd];
            at = commandLine.IndexOf(prefix, at + 1, StringComparison.Ordinal);
        }
        return null;
    }
}
