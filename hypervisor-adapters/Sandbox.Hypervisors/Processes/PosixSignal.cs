namespace Sandbox.Hypervisors.Processes;

/// <summary>kill(2), for SIGTERM (.NET's Process.Kill only sends SIGKILL).</summary>
public static class PosixSignal
{
    public const int SigTerm = 15;
    public const int SigKill = 9;

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false if the process is gone (ESRCH) or
    /// the signal was refused.</summary>
    public static bool Send(int pid, int signal) => pid > 0 && Tmds.Linux.LibC.kill(pid, signal) == 0;
}
