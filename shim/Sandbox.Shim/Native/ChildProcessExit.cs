using Sandbox.Native;

namespace Sandbox.Shim.Native;

/// <summary>
/// Waits for a child this process spawned itself (with <see cref="ProcessSpawner"/>), whichever backend runs: through
/// the <see cref="ChildProcessReaper"/> when it runs (the runc backend), else by polling waitpid on that pid (the VM
/// backend, where .NET's Process reaps only the children it started).
/// </summary>
internal static class ChildProcessExit
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>The exit status (code, or 128 + signal) of child <paramref name="pid"/>.</summary>
    public static async Task<uint> WaitAsync(int pid, CancellationToken cancellationToken)
    {
        if (ChildProcessReaper.IsRunning)
            return await ChildProcessReaper.Shared.WaitForExitAsync(pid, cancellationToken).ConfigureAwait(false);
        while (true)
        {
            if (ChildProcessReaper.TryReap(pid) is { } status)
                return status;
            await Task.Delay(PollInterval, cancellationToken).ConfigureAwait(false);
        }
    }
}
