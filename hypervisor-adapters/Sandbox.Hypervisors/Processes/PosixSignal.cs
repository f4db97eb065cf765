using System.Runtime.InteropServices;

namespace Sandbox.Hypervisors.Processes;

/// <summary>kill(2), for SIGTERM (.NET's Process.Kill only sends SIGKILL).</summary>
public static partial class PosixSignal
{
    public const int SigTerm = 15;
    public const int SigKill = 9;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false if the process is gone (ESRCH) or
    /// the signal was refused.</summary>
    public static bool Send(int pid, int signal) => pid > 0 && kill(pid, signal) == 0;
}
