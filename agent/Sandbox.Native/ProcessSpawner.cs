using System.Collections;
using System.Runtime.InteropServices;
using Tmds.Linux;
using static Sandbox.Native.LibCSupplement;
using static Tmds.Linux.LibC;

namespace Sandbox.Native;

/// <summary>What to start: argv, environment, the child's fds 0-2 (and extra fds), session and directory.</summary>
public sealed class SpawnRequest
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
/// Starts child processes with posix_spawn. The shim's own launches (the daemon, the logging binary) and the agent's
/// (crun, modprobe) never use System.Diagnostics.Process: a process that reaps its children itself (the agent as PID 1,
/// the runc yardstick) would race with it, and Process cannot pass extra fds or start a new session. (QEMU is a
/// Process started by the QEMU adapter; that daemon runs no reaper.) Signal dispositions and the signal mask are reset
/// to defaults in the child.
/// </summary>
public static unsafe class ProcessSpawner
{
    /// <summary>Starts the process and returns its pid. Throws <see cref="IOException"/> when it cannot be started.</summary>
    public static int Spawn(SpawnRequest request)
    {
        var argv = new List<string> { request.Path };
        argv.AddRange(request.Arguments);
        var environment = BuildEnvironment(request.ExtraEnvironment);

        posix_spawn_file_actions_t actionsBuffer = default;
        posix_spawnattr_t attributesBuffer = default;
        sigset_t signalsBuffer = default;
        posix_spawn_file_actions_t* actions = &actionsBuffer;
        posix_spawnattr_t* attributes = &attributesBuffer;
        sigset_t* signals = &signalsBuffer;
        byte** argvBlock = null;
        byte** envBlock = null;
        try
        {
            Check(posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init");
            Check(posix_spawnattr_init(attributes), "posix_spawnattr_init");
            try
            {
                // Move every source fd above the target range first, so that one dup2 cannot clobber another's source.
                var sources = new List<int>();
                try
                {
                    int Lift(int fd)
                    {
                        int lifted = fcntl(fd, F_DUPFD_CLOEXEC, 100);
                        if (lifted < 0)
                            throw new IOException($"cannot duplicate fd {fd} for {request.Path}: {Errno.DescribeLast()}");
                        sources.Add(lifted);
                        return lifted;
                    }

                    AddStdio(actions, 0, request.StdinFd < 0 ? -1 : Lift(request.StdinFd), O_RDONLY);
                    AddStdio(actions, 1, request.StdoutFd < 0 ? -1 : Lift(request.StdoutFd), O_WRONLY);
                    AddStdio(actions, 2, request.StderrFd < 0 ? -1 : Lift(request.StderrFd), O_WRONLY);
                    foreach (var (source, target) in request.ExtraFds)
                        Check(posix_spawn_file_actions_adddup2(actions, Lift(source), target), "posix_spawn_file_actions_adddup2");
                    if (request.WorkingDirectory is not null)
                        Check(posix_spawn_file_actions_addchdir_np(actions, request.WorkingDirectory), "posix_spawn_file_actions_addchdir_np");

                    short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
                    if (request.NewSession)
                        flags |= POSIX_SPAWN_SETSID;
                    sigfillset(signals);
                    Check(posix_spawnattr_setsigdefault(attributes, signals), "posix_spawnattr_setsigdefault");
                    sigemptyset(signals);
                    Check(posix_spawnattr_setsigmask(attributes, signals), "posix_spawnattr_setsigmask");
                    Check(posix_spawnattr_setflags(attributes, flags), "posix_spawnattr_setflags");

                    argvBlock = ToNativeStringArray(argv);
                    envBlock = ToNativeStringArray(environment);
                    int pid;
                    int error = posix_spawn(&pid, request.Path, actions, attributes, argvBlock, envBlock);
                    if (error != 0)
                        throw new IOException($"cannot start {request.Path}: {Errno.Describe(error)}");
                    return pid;
                }
                finally
                {
                    foreach (int fd in sources)
                        close(fd);
                }
            }
            finally
            {
                posix_spawn_file_actions_destroy(actions);
                posix_spawnattr_destroy(attributes);
            }
        }
        finally
        {
            FreeNativeStringArray(argvBlock);
            FreeNativeStringArray(envBlock);
        }
    }

    private static void AddStdio(posix_spawn_file_actions_t* actions, int target, int source, int nullFlags)
    {
        if (source < 0)
            Check(posix_spawn_file_actions_addopen(actions, target, "/dev/null", nullFlags, 0), "posix_spawn_file_actions_addopen");
        else
            Check(posix_spawn_file_actions_adddup2(actions, source, target), "posix_spawn_file_actions_adddup2");
    }

    private static List<string> BuildEnvironment(IReadOnlyDictionary<string, string> extra)
    {
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
            variables[(string)entry.Key] = (string?)entry.Value ?? "";
        foreach (var pair in extra)
            variables[pair.Key] = pair.Value;
        var environment = new List<string>(variables.Count);
        foreach (var pair in variables)
            environment.Add(pair.Key + "=" + pair.Value);
        return environment;
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
            throw new IOException($"{call} failed: {Errno.Describe(error)}");
    }
}
