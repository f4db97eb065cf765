using System.Runtime.InteropServices;
using Sandbox.Native;
using static Sandbox.Native.LibCSupplement;
using static Tmds.Linux.LibC;

namespace Sandbox.Shim.Native;

/// <summary>
/// Reaps every child of this process (waitpid(-1) on SIGCHLD) and hands each exit status to whoever waits for that
/// pid. As a child subreaper the shim also becomes the parent of container processes that runc starts and leaves
/// behind; their exits arrive here too. An exit that nobody waits for yet is kept, because a short-lived process can
/// exit before its pid is known (runc writes it to a pid file).
/// One per process; never combine with System.Diagnostics.Process, which would reap the same children.
/// </summary>
internal sealed unsafe class ChildProcessReaper
{
    private const int MaxUnclaimedExits = 4096;

    private static readonly Lazy<ChildProcessReaper> SharedInstance = new(() => new ChildProcessReaper());

    private readonly object _gate = new();
    private readonly Dictionary<int, TaskCompletionSource<uint>> _waiters = new();
    private readonly Dictionary<int, uint> _unclaimed = new();
    private readonly Queue<int> _unclaimedOrder = new();
    private readonly PosixSignalRegistration _sigchld;

    private ChildProcessReaper()
    {
        _sigchld = PosixSignalRegistration.Create(PosixSignal.SIGCHLD, _ => ReapAll());
        ReapAll();
    }

    /// <summary>The process-wide reaper; created (and SIGCHLD handled) on first use.</summary>
    public static ChildProcessReaper Shared => SharedInstance.Value;

    /// <summary>Whether the reaper runs (the runc backend): then every child's exit arrives through it.</summary>
    public static bool IsRunning => SharedInstance.IsValueCreated;

    /// <summary>waitpid(pid, WNOHANG): the exit status if child <paramref name="pid"/> has exited, else null.</summary>
    public static uint? TryReap(int pid)
    {
        int status;
        int result;
        do
            result = waitpid(pid, &status, WNOHANG);
        while (result < 0 && Errno.Last == EINTR);
        if (result == pid)
            return (uint)WaitStatus.ExitStatus(status);
        if (result < 0)
            throw new IOException($"waitpid({pid}) failed: {Errno.DescribeLast()}");
        return null;
    }

    /// <summary>The exit status (code, or 128 + signal) of child <paramref name="pid"/>.</summary>
    public Task<uint> WaitForExitAsync(int pid, CancellationToken cancellationToken = default)
    {
        TaskCompletionSource<uint> waiter;
        lock (_gate)
        {
            if (_unclaimed.Remove(pid, out uint status))
                return Task.FromResult(status);
            if (!_waiters.TryGetValue(pid, out waiter!))
            {
                waiter = new TaskCompletionSource<uint>(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiters.Add(pid, waiter);
            }
        }
        ReapAll(); // the exit may have happened before the signal handler was in place
        return waiter.Task.WaitAsync(cancellationToken);
    }

    private void ReapAll()
    {
        while (true)
        {
            int status;
            int pid = waitpid(-1, &status, WNOHANG);
            if (pid > 0)
            {
                Deliver(pid, (uint)WaitStatus.ExitStatus(status));
                continue;
            }
            if (pid < 0 && Errno.Last == EINTR)
                continue;
            return; // 0: children left but none exited; ECHILD: no children
        }
    }

    private void Deliver(int pid, uint exitStatus)
    {
        TaskCompletionSource<uint>? waiter;
        lock (_gate)
        {
            if (_waiters.Remove(pid, out waiter))
            {
                // delivered below, outside the lock
            }
            else
            {
                _unclaimed[pid] = exitStatus;
                _unclaimedOrder.Enqueue(pid);
                while (_unclaimedOrder.Count > MaxUnclaimedExits)
                    _unclaimed.Remove(_unclaimedOrder.Dequeue());
            }
        }
        waiter?.TrySetResult(exitStatus);
    }
}
