using System.Collections;
using System.Runtime.InteropServices;

namespace Sandbox.Shim.Native;

/// <summary>What to start: argv, environment, the child's fds 0-2 (and extra fds), session and directory.</summary>
internal sealed class SpawnRequest
{
    public required string Path { get; init; }

    /// <summary>argv[1..]; argv[0] is <see cref="Path"/>.</summary>
    public IReadOnlyList<string> Arguments { get; init; } = Array.Empty<string>();

    /// <summary>Variables set or replaced on top of this process's environment.</summary>
    public IReadOnlyDictionary<string, string> ExtraEnvironment { get; init; } = new Dictionary<string, string>();

    /// <summary>fd to become the child's stdin, stdout, stderr; -1 means /dev/null.</summary>
    public int StdinFd { get; init; } = -1;

    public int StdoutFd { get; init; } = -1;

    public int StderrFd { get; init; } = -1;

    /// <summary>(fd in this process, fd number in the child), e.g. a listening socket as fd 3.</summary>
    public IReadOnlyList<(int Source, int Target)> ExtraFds { get; init; } = Array.Empty<(int, int)>();

    /// <summary>Start the child in a new session (setsid), so that it is in its own session and process group.</summary>
    public bool NewSession { get; init; }

    public string? WorkingDirectory { get; init; }
}

/// <summary>
/// Starts child processes with posix_spawn. The shim's own launches (the daemon, runc) never use
/// System.Diagnostics.Process: with the runc backend it reaps children itself (<see cref="ChildProcessReaper"/>), which
/// Process would race with, and Process cannot pass extra fds or start a new session. (The VM backend's QEMU is a
/// Process started by the QEMU adapter; that daemon runs no reaper.) Signal dispositions and the signal mask are reset
/// to defaults in the child.
/// </summary>
internal static unsafe class ProcessSpawner
{
    private const int SpawnStructSize = 1024; // larger than glibc's posix_spawnattr_t (336) and file actions (80)

    /// <summary>Starts the process and returns its pid. Throws <see cref="IOException"/> when it cannot be started.</summary>
    public static int Spawn(SpawnRequest request)
    {
        var argv = new List<string> { request.Path };
        argv.AddRange(request.Arguments);
        var environment = BuildEnvironment(request.ExtraEnvironment);

        void* actions = NativeMemory.AllocZeroed(SpawnStructSize);
        void* attributes = NativeMemory.AllocZeroed(SpawnStructSize);
        void* signals = NativeMemory.AllocZeroed(128);
        byte** argvBlock = null;
        byte** envBlock = null;
        try
        {
            Check(LibC.posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init");
            Check(LibC.posix_spawnattr_init(attributes), "posix_spawnattr_init");
            try
            {
                // Move every source fd above the target range first, so that one dup2 cannot clobber another's source.
                var sources = new List<int>();
                try
                {
                    int Lift(int fd)
                    {
                        int lifted = LibC.fcntl(fd, LibC.F_DUPFD_CLOEXEC, 100);
                        if (lifted < 0)
                            throw new IOException($"cannot duplicate fd {fd} for {request.Path}: {LibC.Describe(Marshal.GetLastPInvokeError())}");
                        sources.Add(lifted);
                        return lifted;
                    }

                    AddStdio(actions, 0, request.StdinFd < 0 ? -1 : Lift(request.StdinFd), LibC.O_RDONLY);
                    AddStdio(actions, 1, request.StdoutFd < 0 ? -1 : Lift(request.StdoutFd), LibC.O_WRONLY);
                    AddStdio(actions, 2, request.StderrFd < 0 ? -1 : Lift(request.StderrFd), LibC.O_WRONLY);
                    foreach (var (source, target) in request.ExtraFds)
                        Check(LibC.posix_spawn_file_actions_adddup2(actions, Lift(source), target), "posix_spawn_file_actions_adddup2");
                    if (request.WorkingDirectory is not null)
                        Check(LibC.posix_spawn_file_actions_addchdir_np(actions, request.WorkingDirectory), "posix_spawn_file_actions_addchdir_np");

                    short flags = LibC.POSIX_SPAWN_SETSIGDEF | LibC.POSIX_SPAWN_SETSIGMASK;
                    if (request.NewSession)
                        flags |= LibC.POSIX_SPAWN_SETSID;
                    LibC.sigfillset(signals);
                    Check(LibC.posix_spawnattr_setsigdefault(attributes, signals), "posix_spawnattr_setsigdefault");
                    LibC.sigemptyset(signals);
                    Check(LibC.posix_spawnattr_setsigmask(attributes, signals), "posix_spawnattr_setsigmask");
                    Check(LibC.posix_spawnattr_setflags(attributes, flags), "posix_spawnattr_setflags");

                    argvBlock = ToNativeStringArray(argv);
                    envBlock = ToNativeStringArray(environment);
                    int pid;
                    int error = LibC.posix_spawn(&pid, request.Path, actions, attributes, argvBlock, envBlock);
                    if (error != 0)
                        throw new IOException($"cannot start {request.Path}: {LibC.Describe(error)}");
                    return pid;
                }
                finally
                {
                    foreach (int fd in sources)
                        LibC.close(fd);
                }
            }
            finally
            {
                LibC.posix_spawn_file_actions_destroy(actions);
                LibC.posix_spawnattr_destroy(attributes);
            }
        }
        finally
        {
            FreeNativeStringArray(argvBlock);
            FreeNativeStringArray(envBlock);
            NativeMemory.Free(actions);
            NativeMemory.Free(attributes);
            NativeMemory.Free(signals);
        }
    }

    private static void AddStdio(void* actions, int target, int source, int nullFlags)
    {
        if (source < 0)
            Check(LibC.posix_spawn_file_actions_addopen(actions, target, "/dev/null", nullFlags, 0), "posix_spawn_file_actions_addopen");
        else
            Check(LibC.posix_spawn_file_actions_adddup2(actions, source, target), "posix_spawn_file_actions_adddup2");
    }

    private static List<string> BuildEnvironment(IReadOnlyDictionary<string, string> extra)
    {
        var variables = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
            variables[(string)entry.Key] = (string?)entry.Value ?? "";
        foreach (var pair in extra)
            variables[pair.Key] = pair.Value;
        return variables.Select(p => p.Key + "=" + p.Value).ToList();
    }

    private static byte** ToNativeStringArray(IReadOnlyList<string> strings)
    {
        var block = (byte**)NativeMemory.AllocZeroed((nuint)(strings.Count + 1), (nuint)sizeof(byte*));
        for (int i = 0; i < strings.Count; i++)
            block[i] = (byte*)Marshal.StringToCoTaskMemUTF8(strings[i]);
        return block;
    }

    private static void FreeNativeStringArray(byte** block)
    {
        if (block == null)
            return;
        for (int i = 0; block[i] != null; i++)
            Marshal.FreeCoTaskMem((nint)block[i]);
        NativeMemory.Free(block);
    }

    private static void Check(int error, string call)
    {
        if (error != 0)
            throw new IOException($"{call} failed: {LibC.Describe(error)}");
    }
}
