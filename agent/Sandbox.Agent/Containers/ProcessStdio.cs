using System.Net.Sockets;
using Sandbox.Native;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent.Containers;

/// <summary>
/// The stdio of one container process. Pipes: the child (crun, then the container process) gets the pipe ends
/// (stdin is /dev/null unless requested); the agent keeps the other ends. Terminal: crun creates the pty and sends
/// its master fd over a Unix socket (--console-socket, SCM_RIGHTS); stdout carries all output, stderr is empty.
/// </summary>
public sealed class ProcessStdio : IDisposable
{
    private int _childStdin = -1, _childStdout = -1, _childStderr = -1;
    private Socket? _consoleListener;
    private int _ptyMaster = -1;

    private ProcessStdio() { }

    public OutputStream? Stdout { get; private set; }
    public OutputStream? Stderr { get; private set; }
    public InputStream? Stdin { get; private set; }
    public bool Terminal { get; private set; }
    public string? ConsoleSocketPath { get; private set; }

    public int ChildStdin => _childStdin;
    public int ChildStdout => _childStdout;
    public int ChildStderr => _childStderr;

    /// <summary>
    /// The buffer of the stdout and stderr pipes: 1 MiB instead of Linux's 64 KiB, so that a process that writes fast
    /// keeps writing while the agent sends what it read, and each read hands the agent a large chunk (one gRPC message
    /// per chunk; under TCG the per-message cost, not the copying, limited stdout to 14 MiB/s).
    /// </summary>
    public const int OutputPipeCapacity = 1024 * 1024;

    public static ProcessStdio CreatePipes(bool stdin)
    {
        var stdio = new ProcessStdio();
        try
        {
            if (stdin)
            {
                var (r, w) = FileDescriptors.CreatePipe();
                stdio._childStdin = r;
                stdio.Stdin = new InputStream(w, closeMeansEof: true);
            }
            else
            {
                stdio._childStdin = FileDescriptors.OpenDevNull();
            }
            var (outR, outW) = FileDescriptors.CreatePipe();
            FileDescriptors.TrySetPipeCapacity(outR, OutputPipeCapacity);
            stdio._childStdout = outW;
            stdio.Stdout = new OutputStream(outR);
            var (errR, errW) = FileDescriptors.CreatePipe();
            FileDescriptors.TrySetPipeCapacity(errR, OutputPipeCapacity);
            stdio._childStderr = errW;
            stdio.Stderr = new OutputStream(errR);
            return stdio;
        }
        catch
        {
            stdio.Dispose();
            throw;
        }
    }

    /// <summary>Listens on <paramref name="consoleSocketPath"/> for crun's pty master.</summary>
    public static ProcessStdio CreateTerminal(string consoleSocketPath)
    {
        var stdio = new ProcessStdio { Terminal = true, ConsoleSocketPath = consoleSocketPath };
        try
        {
            stdio._childStdin = FileDescriptors.OpenDevNull();
            stdio._childStdout = FileDescriptors.OpenDevNull();
            stdio._childStderr = FileDescriptors.OpenDevNull();
            if (File.Exists(consoleSocketPath)) File.Delete(consoleSocketPath);
            var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            stdio._consoleListener = listener;
            listener.Bind(new UnixDomainSocketEndPoint(consoleSocketPath));
            listener.Listen(1);
            return stdio;
        }
        catch
        {
            stdio.Dispose();
            throw;
        }
    }

    /// <summary>TIOCGPTPEER: opens the pty's other end from the master fd (Linux 4.13), so no /dev/pts path is looked up.</summary>
    private const int TIOCGPTPEER = 0x5441;
    private const int TIOCSPTLCK = 0x40045431;

    /// <summary>
    /// A pty of the agent's own, for a process the agent starts itself (`sandboxctl exec`'s debug console): the child
    /// gets the terminal end as stdin, stdout and stderr (it must make it its controlling terminal itself:
    /// `setsid -c`); the agent reads and writes the master.
    /// </summary>
    public static unsafe ProcessStdio CreateOwnTerminal(uint rows, uint columns)
    {
        var stdio = new ProcessStdio { Terminal = true };
        int master = LibCStrings.open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0) master = LibCStrings.open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0) throw new IOException($"opening /dev/pts/ptmx failed: {Errno.DescribeLast()} (is devpts mounted on /dev/pts?)");
        stdio._ptyMaster = master;
        try
        {
            int unlock = 0;
            if (ioctl(master, TIOCSPTLCK, &unlock) != 0) throw new IOException($"unlocking the pty failed: {Errno.DescribeLast()}");
            int terminal = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
            if (terminal < 0) throw new IOException($"opening the pty's terminal end failed: {Errno.DescribeLast()}");
            stdio._childStdin = terminal;
            stdio._childStdout = dup(terminal);
            stdio._childStderr = dup(terminal);
            if (stdio._childStdout < 0 || stdio._childStderr < 0) throw new IOException($"dup of the pty failed: {Errno.DescribeLast()}");
            int writeFd = dup(master);
            if (writeFd < 0) throw new IOException($"dup of the pty master failed: {Errno.DescribeLast()}");
            stdio.Stdout = new OutputStream(master);
            stdio.Stderr = new OutputStream(-1);
            stdio.Stdin = new InputStream(writeFd, closeMeansEof: false);
            if (rows > 0 && columns > 0) stdio.Resize(rows, columns);
            return stdio;
        }
        catch
        {
            stdio.Dispose(); // closes the master too
            throw;
        }
    }

    /// <summary>Accepts crun's connection on the console socket and takes the pty master fd it sends.</summary>
    public async Task ReceiveTerminalAsync(CancellationToken cancellationToken)
    {
        if (_consoleListener == null) throw new InvalidOperationException("not a terminal");
        using Socket connection = await _consoleListener.AcceptAsync(cancellationToken);
        int master = await Task.Factory.StartNew(() => ReceiveTerminalFd(connection), cancellationToken,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
        _ptyMaster = master;
        int writeFd = dup(master);
        if (writeFd < 0) throw new IOException($"dup of the pty master failed: {Errno.DescribeLast()}");
        Stdout = new OutputStream(master);
        Stderr = new OutputStream(-1);
        Stdin = new InputStream(writeFd, closeMeansEof: false);
        _consoleListener.Dispose();
        _consoleListener = null;
        TryDelete(ConsoleSocketPath);
    }

    public unsafe void Resize(uint rows, uint columns)
    {
        if (_ptyMaster < 0) throw new InvalidOperationException("the process has no terminal");
        var size = new winsize { ws_row = (ushort)rows, ws_col = (ushort)columns };
        if (ioctl(_ptyMaster, TIOCSWINSZ, &size) != 0)
            throw new IOException($"TIOCSWINSZ failed: {Errno.DescribeLast()}");
    }

    /// <summary>Closes the agent's copies of the child's ends (after crun started), so EOF arrives when the process ends.</summary>
    public void CloseChildEnds()
    {
        CloseFd(ref _childStdin);
        CloseFd(ref _childStdout);
        CloseFd(ref _childStderr);
    }

    public void Dispose()
    {
        CloseChildEnds();
        _consoleListener?.Dispose();
        _consoleListener = null;
        TryDelete(ConsoleSocketPath);
        Stdin?.Dispose();
        Stdout?.Dispose(); // closes the pty master too when Terminal
        Stderr?.Dispose();
        if (Stdout == null && _ptyMaster >= 0) close(_ptyMaster);
        _ptyMaster = -1;
    }

    private static void CloseFd(ref int fd)
    {
        if (fd >= 0) close(fd);
        fd = -1;
    }

    private static int ReceiveTerminalFd(Socket connection)
    {
        // the connection socket is non-blocking once .NET used it asynchronously: recvmsg blocks in poll's stead
        connection.Blocking = true;
        return FileDescriptorPassing.Receive((int)connection.SafeHandle.DangerousGetHandle(), "crun");
    }

    private static void TryDelete(string? path)
    {
        try
        {
            if (path != null) File.Delete(path);
        }
        catch (IOException) { }
    }
}
