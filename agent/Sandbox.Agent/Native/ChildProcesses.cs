using Sandbox.Native;
using Tmds.Linux;
using static Sandbox.Native.LibCSupplement;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent.Native;

/// <summary>How a child ended, as waitpid reported it.</summary>
public readonly record struct ChildExit(int RawStatus, DateTime ExitedAt)
{
    /// <summary>The exit code, or 128+signal when a signal ended the process (what runc and shells report).</summary>
    public int ExitStatus => WaitStatus.ExitStatus(RawStatus);
}

/// <summary>
/// Starts child processes (posix_spawn with an explicit stdio mapping) and reaps every child of the agent.
/// The agent is PID 1 in the guest (or a child subreaper on a host), so it also inherits the container processes
/// whose crun parent exited, and orphans. One dedicated thread blocks in waitid(P_ALL, WEXITED|WNOWAIT) and then
/// reaps the pid it names: a registered pid gets its exit delivered; an unregistered one is kept for a while in
/// case its registration is just about to happen (a process started by "crun exec --detach" may exit before the
/// agent reads its pid file); others are orphans.
/// SIGCHLD is set back to SIG_DFL: when the process is PID 1, the .NET runtime's own SIGCHLD handler reaps every
/// child with waitpid(-1) (to avoid zombies in containers) and the exit statuses would be lost.
/// </summary>
public sealed unsafe class ChildProcesses
{
    private const int UnclaimedLimit = 4096;
    private readonly object _lock = new();
    private readonly Dictionary<int, TaskCompletionSource<ChildExit>> _waiting = new();
    private readonly Dictionary<int, ChildExit> _unclaimed = new();
    private readonly Queue<int> _unclaimedOrder = new();
    private readonly SemaphoreSlim _spawned = new(0);

    public static ChildProcesses Shared => s_shared.Value;
    private static readonly Lazy<ChildProcesses> s_shared = new(() => new ChildProcesses());

    private ChildProcesses()
    {
        if (getpid() != 1) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        var defaultAction = new Tmds.Linux.sigaction { sa_handler = SIG_DFL };
        Tmds.Linux.LibC.sigaction(SIGCHLD, &defaultAction, null);
        new Thread(ReapLoop) { IsBackground = true, Name = "child-reaper" }.Start();
    }

    /// <summary>
    /// Starts <paramref name="path"/> with <paramref name="args"/> (args[0] included, replaced by the path) and the given fds as stdin, stdout
    /// and stderr, in a new session, with default signal dispositions and an empty signal mask (and, in the guest, a
    /// fixed address layout: <see cref="HelperAddressLayout"/>). Returns its pid and a task that completes when it has
    /// been reaped. With <paramref name="newSession"/> false it stays in the agent's session (for a child that calls
    /// setsid itself, which a session leader cannot).
    /// </summary>
    public (int Pid, Task<ChildExit> Exited) Spawn(string path, IReadOnlyList<string> args, int stdin, int stdout, int stderr,
        bool newSession = true, IReadOnlyDictionary<string, string>? environment = null)
    {
        var request = new SpawnRequest
        {
            Path = path,
            Arguments = args.Skip(1).ToArray(),
            StdinFd = stdin,
            StdoutFd = stdout,
            StderrFd = stderr,
            NewSession = newSession,
            ExtraEnvironment = environment ?? new Dictionary<string, string>(),
        };
        var exited = new TaskCompletionSource<ChildExit>(TaskCreationOptions.RunContinuationsAsynchronously);
        HelperAddressLayout.ApplyToCallingThread();
        int pid;
        lock (_lock)
        {
            pid = ProcessSpawner.Spawn(request);
            _waiting[pid] = exited;
        }
        _spawned.Release();
        return (pid, exited.Task);
    }

    /// <summary>
    /// Takes over the exit of a process that is not the agent's direct child but will be reaped by it (a container
    /// process whose crun parent exited). If it was already reaped, the task is already complete.
    /// </summary>
    /// <param name="notBefore">An exit reaped before this time belongs to an earlier process with the same pid.</param>
    public Task<ChildExit> Adopt(int pid, DateTime notBefore)
    {
        lock (_lock)
        {
            if (_unclaimed.Remove(pid, out ChildExit exit) && exit.ExitedAt >= notBefore) return Task.FromResult(exit);
            if (_waiting.TryGetValue(pid, out var existing)) return existing.Task;
            var exited = new TaskCompletionSource<ChildExit>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiting[pid] = exited;
            return exited.Task;
        }
    }

    /// <summary>
    /// Sends <paramref name="signal"/> to <paramref name="pid"/> only while it is known and not yet reaped (so a
    /// recycled pid is never signalled). Returns 0 or the errno.
    /// </summary>
    public int Signal(int pid, int signal)
    {
        lock (_lock)
        {
            if (!_waiting.ContainsKey(pid)) return ESRCH;
            return kill(pid, signal) == 0 ? 0 : Errno.Last;
        }
    }

    private void ReapLoop()
    {
        siginfo_t info;
        while (true)
        {
            info = default;
            // Blocks until some child has exited, without reaping it.
            if (waitid(P_ALL, 0, &info, WEXITED | WNOWAIT) != 0)
            {
                int errno = Errno.Last;
                if (errno == ECHILD) _spawned.Wait(TimeSpan.FromSeconds(1)); // no children yet
                continue;
            }
            int exitedPid = info.si_pid;
            if (exitedPid <= 0) continue;
            TaskCompletionSource<ChildExit>? waiter;
            ChildExit exit;
            lock (_lock)
            {
                int status;
                int pid = waitpid(exitedPid, &status, WNOHANG);
                if (pid <= 0) continue;
                exit = new ChildExit(status, DateTime.UtcNow);
                if (!_waiting.Remove(pid, out waiter))
                {
                    _unclaimed[pid] = exit;
                    _unclaimedOrder.Enqueue(pid);
                    while (_unclaimedOrder.Count > UnclaimedLimit) _unclaimed.Remove(_unclaimedOrder.Dequeue());
                }
            }
            waiter?.TrySetResult(exit);
        }
    }
}
