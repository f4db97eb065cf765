using Sandbox.Native;
using Sandbox.Shim.Backend;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Sandbox.RuncYardstick;

/// <summary>
/// Connects one process's stdio to containerd's stdio paths: the process gets pipes, and one thread per stream copies
/// between each pipe and the FIFO (or file) containerd named (opened by <see cref="ContainerdStdioDestination"/>;
/// stdin through a <see cref="ContainerdStdinPump"/>). Output is copied until the pipe reaches end of file (every
/// writer gone); once the FIFO's reader has taken everything (<see cref="ContainerdFifoDrain"/>) the FIFO is closed,
/// so that the reader sees end of file too.
/// </summary>
internal sealed class StdioRelay : IDisposable
{
    private readonly string _owner;
    private readonly Action<string> _log;
    private readonly List<int> _childEnds = new();
    private readonly TaskCompletionSource _stdoutDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stderrDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ContainerdStdinPump? _stdinPump;
    private ProcessStdio? _terminal;
    /// <summary>The terminal's output destination until <see cref="AttachTerminal"/> takes it.</summary>
    private OutputDestination? _terminalOutput;
    private LoggingBinary? _logger;
    private readonly CancellationTokenSource _disposed = new();
    private readonly object _masterGate = new();
    private int _master = -1;

    private StdioRelay(string owner, Action<string> log)
    {
        _owner = owner;
        _log = log;
    }

    /// <summary>fd the child must get as stdin (-1: /dev/null).</summary>
    public int ChildStdin { get; private set; } = -1;

    public int ChildStdout { get; private set; } = -1;

    public int ChildStderr { get; private set; } = -1;

    /// <summary>
    /// Completes when all output was copied (both streams at end of file) and containerd's reader took it (or stopped
    /// reading), and the destinations are closed.
    /// </summary>
    public Task OutputCompleted => _logger is null
        ? Task.WhenAll(_stdoutDone.Task, _stderrDone.Task)
        : Task.WhenAll(_stdoutDone.Task, _stderrDone.Task, _logger.Exited);

    /// <summary>
    /// Opens the destinations (<see cref="ContainerdOutputs"/>: FIFOs, files or a logging binary, which is told
    /// <paramref name="containerId"/> and <paramref name="containerdNamespace"/>) and pipes. <paramref name="owner"/>
    /// names the process in errors and thread names. For a terminal no pipes are made: the process gets a pty from
    /// runc, and <see cref="AttachTerminal"/> connects its master once runc has sent it.
    /// </summary>
    public static StdioRelay Open(ProcessStdio stdio, string containerId, string containerdNamespace, string owner, Action<string> log)
    {
        var relay = new StdioRelay(owner, log);
        var outputs = ContainerdOutputs.Open(stdio, containerId, containerdNamespace, owner, log);
        relay._logger = outputs.Logger;
        if (stdio.Terminal)
        {
            relay._terminal = stdio;
            relay._terminalOutput = outputs.Stdout;
            return relay;
        }
        try
        {
            relay.OpenStdin(stdio.Stdin);
        }
        catch
        {
            foreach (var opened in new[] { outputs.Stdout, outputs.Stderr })
            {
                if (opened is { } destination)
                    close(destination.Fd);
            }
            relay.Dispose();
            throw;
        }
        try
        {
            relay.ChildStdout = relay.StartOutput(outputs.Stdout, "stdout", relay._stdoutDone);
            relay.ChildStderr = relay.StartOutput(outputs.Stderr, "stderr", relay._stderrDone);
            return relay;
        }
        catch
        {
            if (relay.ChildStdout < 0 && outputs.Stderr is { } notStarted)
                close(notStarted.Fd); // stdout's pipe failed before stderr's copy took its destination
            relay.ReleaseChildEnds();
            relay.Dispose();
            throw;
        }
    }

    /// <summary>Closes this process's copies of the child's pipe ends; call once the child has been started.</summary>
    public void ReleaseChildEnds()
    {
        lock (_childEnds)
        {
            foreach (int fd in _childEnds)
                close(fd);
            _childEnds.Clear();
        }
    }

    public bool IsTerminal => _terminal is not null;

    /// <summary>
    /// Connects the pty master to containerd's stdin and stdout (a terminal has no separate stderr). The relay owns
    /// <paramref name="masterFd"/> from now on.
    /// </summary>
    public void AttachTerminal(int masterFd)
    {
        var terminal = _terminal ?? throw new InvalidOperationException($"{_owner} has no terminal");
        _master = masterFd;
        _stderrDone.TrySetResult();
        int stdin = terminal.Stdin.Length > 0 ? ContainerdStdioDestination.OpenStdin(terminal.Stdin, _owner) : -1;
        var destination = _terminalOutput
            ?? new OutputDestination(LibCStrings.open("/dev/null", O_WRONLY | O_CLOEXEC, 0), IsFifo: false);
        _terminalOutput = null;
        if (stdin >= 0)
            _stdinPump = ContainerdStdinPump.Start(stdin, fcntl(masterFd, F_DUPFD_CLOEXEC, 0), _owner);
        StartThread("tty-out", () =>
        {
            try
            {
                // EIO once the last process holding the pty's slave side is gone: the terminal's end of file
                ReportEarlyEnd("tty output", CopyOutput(masterFd, destination.Fd, endOnEio: true));
            }
            finally
            {
                lock (_masterGate)
                {
                    _master = -1;
                    close(masterFd);
                }
                _ = CloseWhenReadAsync("tty output", destination, _stdoutDone);
            }
        });
    }

    /// <summary>ResizePty: sets the terminal size (no terminal: nothing to do).</summary>
    public unsafe void Resize(uint width, uint height)
    {
        var size = new winsize { ws_col = (ushort)width, ws_row = (ushort)height };
        lock (_masterGate)
        {
            if (_master < 0)
                return;
            if (ioctl(_master, TIOCSWINSZ, &size) != 0)
                throw new IOException($"{_owner}: resizing the terminal failed: {Errno.DescribeLast()}");
        }
    }

    /// <summary>containerd's CloseIO: deliver what is still in the stdin FIFO, then close the child's stdin.</summary>
    public void CloseStdin() => _stdinPump?.RequestClose();

    public void Dispose()
    {
        _stdinPump?.Stop();
        _disposed.Cancel();
        if (_terminalOutput is { } unattached)
        {
            _terminalOutput = null;
            close(unattached.Fd);
            _stdoutDone.TrySetResult();
        }
        _logger?.Release();
    }

    private void OpenStdin(string path)
    {
        if (path.Length == 0)
            return;
        int source = ContainerdStdioDestination.OpenStdin(path, _owner);
        var (readEnd, writeEnd) = CreatePipe("stdin");
        ChildStdin = readEnd;
        lock (_childEnds) _childEnds.Add(readEnd);
        _stdinPump = ContainerdStdinPump.Start(source, writeEnd, _owner);
    }

    /// <summary>A pipe for the child's <paramref name="stream"/> and the thread that copies it to its destination.</summary>
    private int StartOutput(OutputDestination? opened, string stream, TaskCompletionSource done)
    {
        if (opened is not { } destination)
        {
            done.TrySetResult();
            return -1;
        }
        int readEnd, writeEnd;
        try
        {
            (readEnd, writeEnd) = CreatePipe(stream);
        }
        catch
        {
            close(destination.Fd);
            throw;
        }
        lock (_childEnds) _childEnds.Add(writeEnd);
        StartThread(stream, () =>
        {
            try
            {
                ReportEarlyEnd(stream, CopyOutput(readEnd, destination.Fd, endOnEio: false));
            }
            finally
            {
                close(readEnd);
                _ = CloseWhenReadAsync(stream, destination, done);
            }
        });
        return writeEnd;
    }

    /// <summary>
    /// Closes a destination once its reader has taken everything in it (<see cref="ContainerdFifoDrain"/>: a client
    /// may stop reading as soon as it learns of the exit), then reports the stream complete.
    /// </summary>
    private async Task CloseWhenReadAsync(string stream, OutputDestination destination, TaskCompletionSource done)
    {
        try
        {
            if (await ContainerdFifoDrain.WaitUntilReadAsync(destination, _disposed.Token).ConfigureAwait(false) is { } problem)
                _log($"{_owner}: {stream}: {problem}; closing it anyway");
        }
        catch (OperationCanceledException)
        {
            // the process was deleted: nobody waits for its output any more
        }
        finally
        {
            close(destination.Fd);
            done.TrySetResult();
        }
    }

    private unsafe (int ReadEnd, int WriteEnd) CreatePipe(string stream)
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, O_CLOEXEC) != 0)
            throw new IOException($"{_owner}: cannot create the {stream} pipe: {Errno.DescribeLast()}");
        return (fds[0], fds[1]);
    }

    private void StartThread(string stream, Action body)
    {
        var thread = new Thread(() => body(), maxStackSize: 256 * 1024)
        {
            IsBackground = true,
            Name = $"stdio {stream}",
        };
        thread.Start();
    }

    /// <summary>An output copy that ended before end of file loses what followed: say why, with the byte count.</summary>
    private void ReportEarlyEnd(string stream, string? problem)
    {
        if (problem is not null)
            _log($"{_owner}: copying its {stream} to containerd stopped before end of file: {problem}");
    }

    /// <summary>Copies until end of file (or EIO, a pty's end, when <paramref name="endOnEio"/>). Returns null then, or
    /// what went wrong otherwise.</summary>
    private static unsafe string? CopyOutput(int from, int to, bool endOnEio)
    {
        byte* buffer = stackalloc byte[32 * 1024];
        long copied = 0;
        while (true)
        {
            int n = (int)read(from, buffer, 32 * 1024);
            if (n == 0)
                return null;
            if (n < 0)
            {
                int error = Errno.Last;
                if (error == EINTR)
                    continue;
                return endOnEio && error == EIO ? null : $"read from fd {from} failed after {copied} bytes: {Errno.Describe(error)}";
            }
            if (!FileDescriptors.WriteAll(to, buffer, n))
            {
                string problem = $"write to fd {to} failed after {copied} bytes: {Errno.DescribeLast()}";
                // nobody can take the output any more: keep draining so the process never blocks on a full pipe
                while ((long)read(from, buffer, 32 * 1024) is var m && (m > 0 || (m < 0 && Errno.Last == EINTR)))
                {
                }
                return problem;
            }
            copied += n;
        }
    }

    public override string ToString() => $"stdio of {_owner}";
}
