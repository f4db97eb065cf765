namespace Sandbox.Native;

/// <summary>The status word that waitpid(2) fills in.</summary>
public static class WaitStatus
{
    /// <summary>The exit code, or 128 + signal when a signal ended the process: what runc, shells and containerd report.</summary>
    public static int ExitStatus(int rawStatus)
    {
        int termSignal = rawStatus & 0x7f;
        if (termSignal == 0) return (rawStatus >> 8) & 0xff; // WIFEXITED -> WEXITSTATUS
        if (termSignal != 0x7f) return 128 + termSignal;     // WIFSIGNALED -> 128 + WTERMSIG
        return 128 + ((rawStatus >> 8) & 0xff);               // stopped (not asked for with WUNTRACED; defensive)
    }
}
