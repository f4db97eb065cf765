namespace Sandbox.Hypervisors.Processes;

/// <summary>A process found by <see cref="LeftoverVmProcesses"/>.</summary>
public sealed record LeftoverProcess(int Pid, string CommandLine);

/// <summary>
/// VMM processes (QEMU, vhost-device-vsock) left running for a state directory after the process that owned them died
/// without stopping them (a SIGKILLed shim). They are recognised by their command line, which names files in the
/// state directory, so a recycled pid is never mistaken for them. For `sandboxctl` and the shim's cleanup.
/// </summary>
public static class LeftoverVmProcesses
{
    /// <summary>Processes whose command line mentions a path inside <paramref name="stateDirectory"/>.</summary>
    public static IReadOnlyList<LeftoverProcess> Find(string stateDirectory, string procRoot = "/proc")
    {
        var marker = Path.TrimEndingDirectorySeparator(Path.GetFullPath(stateDirectory)) + "/";
        var found = new List<LeftoverProcess>();
        foreach (var dir in Directory.EnumerateDirectories(procRoot))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
                continue;
            string commandLine;
            try
            {
                commandLine = File.ReadAllText(Path.Combine(dir, "cmdline")).TrimEnd('\0').Replace('\0', ' ');
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // exited meanwhile
            }
            if (commandLine.Contains(marker, StringComparison.Ordinal))
                found.Add(new LeftoverProcess(pid, commandLine));
        }
        return found;
    }

    /// <summary>SIGKILLs every leftover process of <paramref name="stateDirectory"/> and waits (bounded by
    /// <paramref name="cancellationToken"/>) until they are gone. Returns what was killed.</summary>
    public static async Task<IReadOnlyList<LeftoverProcess>> KillAsync(string stateDirectory, CancellationToken cancellationToken)
    {
        var leftovers = Find(stateDirectory);
        foreach (var process in leftovers)
            PosixSignal.Send(process.Pid, PosixSignal.SigKill);
        // They are not our children, so there is no exit to await: poll until /proc forgets them (or they are zombies
        // of a parent that is gone, which init reaps).
        while (leftovers.Any(p => IsRunning(p.Pid)))
            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        return leftovers;
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            // Field 3 of /proc/pid/stat is the state; "Z" is a zombie that only waits to be reaped.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
            return state != "Z";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
