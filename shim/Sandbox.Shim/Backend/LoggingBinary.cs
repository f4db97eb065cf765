using Sandbox.Native;
using Sandbox.Shim.Native;
using Sandbox.Ttrpc;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Sandbox.Shim.Backend;

/// <summary>
/// A <c>binary://</c> log destination (<c>ctr run --log-uri binary:///path?name=value</c>), with containerd's logging
/// binary protocol as its runc shim speaks it: the binary gets the read ends of a stdout pipe as fd 3 and a stderr pipe
/// as fd 4, and fd 5, which it closes (or writes a byte to) once it is ready; CONTAINER_ID and CONTAINER_NAMESPACE in
/// its environment; the query's names and values as arguments. The process's output goes into the pipes' write ends
/// (<see cref="Stdout"/>, <see cref="Stderr"/>, owned by whoever copies into them); once both are closed the binary
/// reads end of file and exits (<see cref="Exited"/>). One that does not exit within
/// <see cref="ExitTimeout"/> after <see cref="Release"/> is killed, as containerd does.
/// </summary>
internal sealed class LoggingBinary
{
    public static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(12);

    private readonly int _pid;
    private readonly string _description;
    private readonly Action<string> _log;

    private LoggingBinary(int pid, string description, OutputDestination stdout, OutputDestination stderr, Action<string> log)
    {
        _pid = pid;
        _description = description;
        _log = log;
        Stdout = stdout;
        Stderr = stderr;
        Exited = ChildProcessExit.WaitAsync(pid, CancellationToken.None);
    }

    public OutputDestination Stdout { get; }

    public OutputDestination Stderr { get; }

    /// <summary>The binary's exit status, once it has read everything and exited.</summary>
    public Task<uint> Exited { get; }

    /// <summary>Starts the binary and waits until it says it is ready (at most <see cref="ReadyTimeout"/>).</summary>
    public static unsafe LoggingBinary Start(StdioPath uri, string containerId, string containerdNamespace, string owner, Action<string> log)
    {
        string description = $"logging binary {uri.Path} of {owner}";
        var opened = new List<int>();
        try
        {
            var (stdoutRead, stdoutWrite) = Pipe(description, "stdout", opened);
            var (stderrRead, stderrWrite) = Pipe(description, "stderr", opened);
            var (readyRead, readyWrite) = Pipe(description, "ready", opened);
            int pid;
            try
            {
                pid = ProcessSpawner.Spawn(new SpawnRequest
                {
                    Path = uri.Path,
                    Arguments = uri.Arguments,
                    ExtraEnvironment = new Dictionary<string, string>
                    {
                        ["CONTAINER_ID"] = containerId,
                        ["CONTAINER_NAMESPACE"] = containerdNamespace,
                    },
                    ExtraFds = new[] { (stdoutRead, 3), (stderrRead, 4), (readyWrite, 5) },
                });
            }
            catch (IOException e)
            {
                throw new SandboxBackendException(TtrpcStatusCode.InvalidArgument,
                    $"{owner}: cannot start the {description}: {e.Message}; check that the path is an executable file");
            }
            foreach (int fd in new[] { stdoutRead, stderrRead, readyWrite })
            {
                close(fd);
                opened.Remove(fd);
            }
            string? notReady = WaitUntilReady(readyRead);
            close(readyRead);
            opened.Remove(readyRead);
            var binary = new LoggingBinary(pid, description, new OutputDestination(stdoutWrite, IsFifo: false),
                new OutputDestination(stderrWrite, IsFifo: false), log);
            opened.Clear();
            if (notReady is not null)
            {
                close(stdoutWrite);
                close(stderrWrite);
                kill(pid, SIGKILL);
                throw new SandboxBackendException(TtrpcStatusCode.Unavailable,
                    $"{owner}: the {description} {notReady}; a logging binary must close fd 5 once it is ready");
            }
            log($"{owner}: output goes to the {description} (pid {pid})");
            return binary;
        }
        finally
        {
            foreach (int fd in opened)
                close(fd);
        }
    }

    /// <summary>
    /// The output is complete (or abandoned): its pipes are closed by now, so the binary should exit by itself; kill it
    /// if it has not after <see cref="ExitTimeout"/>.
    /// </summary>
    public void Release() => _ = KillIfStillRunningAsync();

    private async Task KillIfStillRunningAsync()
    {
        try
        {
            await Exited.WaitAsync(ExitTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _log($"the {_description} (pid {_pid}) did not exit within {ExitTimeout.TotalSeconds} s after its output ended: killing it");
            kill(_pid, SIGKILL);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            _log($"waiting for the {_description} (pid {_pid}) failed: {e.Message}");
        }
    }

    /// <summary>Null once the binary closed fd 5 or wrote to it; else why not.</summary>
    private static unsafe string? WaitUntilReady(int readyRead)
    {
        var deadline = DateTime.UtcNow + ReadyTimeout;
        var readable = new pollfd { fd = readyRead, events = POLLIN };
        while (true)
        {
            int left = (int)Math.Max(0, (deadline - DateTime.UtcNow).TotalMilliseconds);
            int n = poll(&readable, 1, left);
            if (n > 0)
                return null; // a byte, or end of file (closed, or the binary exited): containerd takes both as ready
            if (n == 0)
                return $"did not signal ready within {ReadyTimeout.TotalSeconds} s";
            if (Errno.Last != EINTR)
                return $"could not be waited for: poll failed: {Errno.DescribeLast()}";
        }
    }

    private static unsafe (int Read, int Write) Pipe(string description, string name, List<int> opened)
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, O_CLOEXEC) != 0)
            throw new SandboxBackendException(TtrpcStatusCode.Unavailable,
                $"cannot create the {name} pipe of the {description}: {Errno.DescribeLast()}");
        opened.Add(fds[0]);
        opened.Add(fds[1]);
        return (fds[0], fds[1]);
    }
}
