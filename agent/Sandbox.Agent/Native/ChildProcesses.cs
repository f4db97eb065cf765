using System.Runtime.InteropServices;
using System.Text;

namespace Sandbox.Agent.Native;

/// <summary>How a child ended, as waitpid reported it.</summary>
public readonly record struct ChildExit(int RawStatus, DateTime ExitedAt)
{
    /// <summary>The exit code, or 128+signal when a signal ended the process (what runc and shells report).</summary>
    public int ExitStatus => ExitStatusOf(RawStatus);

    public static int ExitStatusOf(int rawStatus)
    {
        int termSignal = rawStatus & 0x7f;
        if (termSignal == 0) return (rawStatus >> 8) & 0xff; // WIFEXITED -> WEXITSTATUS
        if (termSignal != 0x7f) return 128 + termSignal;     // WIFSIGNALED -> 128 + WTERMSIG
        return 128 + ((rawStatus >> 8) & 0xff);               // stopped (not requested with waitpid flags; defensive)
    }
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
        if (LibC.GetPid() != 1) LibC.Prctl(LibC.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        LibC.Signal(LibC.SIGCHLD, 0 /* SIG_DFL */);
        new Thread(ReapLoop) { IsBackground = true, Name = "child-reaper" }.Start();
    }

    /// <summary>
    /// Starts <paramref name="path"/> with <paramref name="args"/> (args[0] included) and the given fds as stdin, stdout
    /// and stderr, in a new session, with default signal dispositions and an empty signal mask (and, in the guest, a
    /// fixed address layout: <see cref="HelperAddressLayout"/>). Returns its pid and a task that completes when it has
    /// been reaped.
    /// </summary>
    public (int Pid, Task<ChildExit> Exited) Spawn(string path, IReadOnlyList<string> args, int stdin, int stdout, int stderr)
    {
        byte* actions = stackalloc byte[LibC.SpawnFileActionsSize];
        byte* attr = stackalloc byte[LibC.SpawnAttrSize];
        byte* allSignals = stackalloc byte[LibC.SigSetSize];
        byte* noSignals = stackalloc byte[LibC.SigSetSize];
        LibC.SpawnFileActionsInit(actions);
        LibC.SpawnAttrInit(attr);
        var strings = new List<IntPtr>();
        try
        {
            LibC.SpawnFileActionsAddDup2(actions, stdin, 0);
            LibC.SpawnFileActionsAddDup2(actions, stdout, 1);
            LibC.SpawnFileActionsAddDup2(actions, stderr, 2);
            LibC.SigFillSet(allSignals);
            LibC.SigEmptySet(noSignals);
            LibC.SpawnAttrSetSigDefault(attr, allSignals);
            LibC.SpawnAttrSetSigMask(attr, noSignals);
            LibC.SpawnAttrSetFlags(attr, (short)(LibC.POSIX_SPAWN_SETSIGDEF | LibC.POSIX_SPAWN_SETSIGMASK | LibC.POSIX_SPAWN_SETSID));

            byte** argv = ToNullTerminated(args, strings);
            var environment = new List<string>();
            foreach (System.Collections.DictionaryEntry entry in Environment.GetEnvironmentVariables())
                environment.Add($"{entry.Key}={entry.Value}");
            byte** envp = ToNullTerminated(environment, strings);

            var exited = new TaskCompletionSource<ChildExit>(TaskCreationOptions.RunContinuationsAsynchronously);
            HelperAddressLayout.ApplyToCallingThread();
            int pid;
            lock (_lock)
            {
                int error = LibC.PosixSpawn(&pid, path, actions, attr, argv, envp);
                if (error != 0) throw new IOException($"cannot start {path}: {LibC.ErrorText(error)}");
                _waiting[pid] = exited;
            }
            _spawned.Release();
            return (pid, exited.Task);
        }
        finally
        {
            foreach (IntPtr p in strings) NativeMemory.Free((void*)p);
            LibC.SpawnAttrDestroy(attr);
            LibC.SpawnFileActionsDestroy(actions);
        }
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
            if (!_waiting.ContainsKey(pid)) return LibC.ESRCH;
            return LibC.Kill(pid, signal) == 0 ? 0 : LibC.LastError;
        }
    }

    private void ReapLoop()
    {
        byte* info = stackalloc byte[LibC.SiginfoSize];
        while (true)
        {
            new Span<byte>(info, LibC.SiginfoSize).Clear();
            // Blocks until some child has exited, without reaping it.
            if (LibC.WaitId(LibC.P_ALL, 0, info, LibC.WEXITED | LibC.WNOWAIT) != 0)
            {
                int errno = LibC.LastError;
                if (errno == LibC.ECHILD) _spawned.Wait(TimeSpan.FromSeconds(1)); // no children yet
                continue;
            }
            int exitedPid = *(int*)(info + LibC.SiginfoPidOffset);
            if (exitedPid <= 0) continue;
            TaskCompletionSource<ChildExit>? waiter;
            ChildExit exit;
            lock (_lock)
            {
                int status;
                int pid = LibC.WaitPid(exitedPid, &status, LibC.WNOHANG);
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

    private static byte** ToNullTerminated(IReadOnlyList<string> values, List<IntPtr> allocations)
    {
        var array = (byte**)NativeMemory.Alloc((nuint)(values.Count + 1), (nuint)sizeof(byte*));
        allocations.Add((IntPtr)array);
        for (int i = 0; i < values.Count; i++)
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(values[i]);
            var s = (byte*)NativeMemory.Alloc((nuint)utf8.Length + 1);
            allocations.Add((IntPtr)s);
            utf8.AsSpan().CopyTo(new Span<byte>(s, utf8.Length));
            s[utf8.Length] = 0;
            array[i] = s;
        }
        array[values.Count] = null;
        return array;
    }
}
