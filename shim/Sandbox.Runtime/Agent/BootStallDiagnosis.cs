using System.Globalization;

namespace Sandbox.Runtime.Agent;

/// <summary>
/// What a boot that timed out looked like from the host, for the error: whether the VMM still runs, how much CPU it
/// got, how much the guest wrote to its console, and the host's load. An empty console can mean a starved VM on a
/// loaded host (little CPU time) or a guest that never reached its console (CPU time used, nothing written).
/// </summary>
public static class BootStallDiagnosis
{
    public static string Describe(int? vmmPid, string consoleLog, TimeSpan waited)
    {
        long consoleBytes = File.Exists(consoleLog) ? new FileInfo(consoleLog).Length : -1;
        double? cpu = vmmPid is { } pid ? CpuSecondsOf(pid) : null;
        string load = LoadAverage();
        string vmm = vmmPid is null ? "the VMM has no pid"
            : cpu is null ? $"the VMM (pid {vmmPid}) is gone"
            : $"the VMM (pid {vmmPid}) runs and used {cpu.Value.ToString("F1", CultureInfo.InvariantCulture)} s of CPU in {waited.TotalSeconds:0} s";
        string console = consoleBytes < 0 ? "no console log" : $"the console log has {consoleBytes} bytes";
        string cause = (cpu, consoleBytes) switch
        {
            (not null, <= 0) when cpu.Value < waited.TotalSeconds * 0.2 =>
                "The VM got little CPU time and printed nothing: the host is overloaded (too many VMs booting at once under TCG?). Raise [agent] ready_timeout or start fewer pods at once.",
            (not null, <= 0) =>
                "The VM ran but printed nothing: the kernel never reached its console. Check the kernel and initrd paths and the machine type in the configuration, and `sandboxctl check`.",
            (not null, > 0) =>
                "The guest printed but its agent did not come up: read the console lines above.",
            _ => "",
        };
        return $"Boot diagnosis: {vmm}; {console}; host load average {load} on {Environment.ProcessorCount} CPU(s). {cause}".TrimEnd();
    }

    /// <summary>utime + stime of /proc/PID/stat in seconds, or null when the process is gone.</summary>
    public static double? CpuSecondsOf(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            // fields after the command (which may hold spaces) in parentheses: state is field 3, utime 14, stime 15
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            long ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            return ticks / 100.0; // USER_HZ is 100 on Linux
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "?";
        }
    }
}
