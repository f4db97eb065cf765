using System.Net.Sockets;
using Sandbox.Agent.Native;

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

    public static ProcessStdio CreatePipes(bool stdin)
    {
        var stdio = new ProcessStdio();
        try
        {
            if (stdin)
            {
                var (r, w) = LibC.CreatePipe();
                stdio._childStdin = r;
                stdio.Stdin = new InputStream(w, closeMeansEof: true);
            }
            else
            {
                stdio._childStdin = LibC.OpenDevNull();
            }
            var (outR, outW) = LibC.CreatePipe();
            stdio._childStdout = outW;
            stdio.Stdout = new OutputStream(outR);
            var (errR, errW) = LibC.CreatePipe();
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
            stdio._childStdin = LibC.OpenDevNull();
            stdio._childStdout = LibC.OpenDevNull();
            stdio._childStderr = LibC.OpenDevNull();
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

    /// <summary>Accepts crun's connection on the console socket and takes the pty master fd it sends.</summary>
    public async Task ReceiveTerminalAsync(CancellationToken cancellationToken)
    {
        if (_consoleListener == null) throw new InvalidOperationException("not a terminal");
        using Socket connection = await _consoleListener.AcceptAsync(cancellationToken);
        int master = await Task.Factory.StartNew(() => ConsoleSocket.ReceiveFd(connection), cancellationToken,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
        _ptyMaster = master;
        int writeFd = LibC.Dup(master);
        if (writeFd < 0) throw new IOException($"dup of the pty master failed: {LibC.ErrorText(LibC.LastError)}");
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
        var size = new LibC.WinSize { Rows = (ushort)rows, Columns = (ushort)columns };
        if (LibC.Ioctl(_ptyMaster, LibC.TIOCSWINSZ, &size) != 0)
            throw new IOException($"TIOCSWINSZ failed: {LibC.ErrorText(LibC.LastError)}");
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
        if (Stdout == null && _ptyMaster >= 0) LibC.Close(_ptyMaster);
        _ptyMaster = -1;
    }

    private static void CloseFd(ref int fd)
    {
        if (fd >= 0) LibC.Close(fd);
        fd = -1;
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

/// <summary>Receives one fd passed with SCM_RIGHTS (what crun does with --console-socket).</summary>
internal static unsafe class ConsoleSocket
{
    public static int ReceiveFd(Socket connection)
    {
        int fd = (int)connection.SafeHandle.DangerousGetHandle();
        byte* data = stackalloc byte[4096]; // crun sends the pty name as the data
        byte* control = stackalloc byte[64];
        var iov = new LibC.IoVec { Base = data, Length = 4096 };
        var msg = new LibC.MsgHdr { Iov = &iov, IovLen = 1, Control = control, ControlLen = 64 };
        // the connection socket is non-blocking once .NET used it asynchronously: wait for data with poll in recvmsg's stead
        connection.Blocking = true;
        nint n;
        do n = LibC.RecvMsg(fd, &msg, 0x40000000 /* MSG_CMSG_CLOEXEC */);
        while (n < 0 && LibC.LastError == LibC.EINTR);
        if (n < 0) throw new IOException($"recvmsg on the console socket failed: {LibC.ErrorText(LibC.LastError)}");
        // struct cmsghdr { size_t len; int level; int type; } followed by the fd
        if (msg.ControlLen < 20) throw new IOException("crun sent no file descriptor on the console socket");
        nuint cmsgLen = *(nuint*)control;
        int level = *(int*)(control + 8);
        int type = *(int*)(control + 12);
        if (level != LibC.SOL_SOCKET || type != LibC.SCM_RIGHTS || cmsgLen < 20)
            throw new IOException($"unexpected control message on the console socket (level {level}, type {type})");
        return *(int*)(control + 16);
    }
}
