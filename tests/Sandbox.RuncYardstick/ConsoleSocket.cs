using System.Net.Sockets;
using System.Runtime.InteropServices;
using Sandbox.Shim.Native;
using Sandbox.Ttrpc;

namespace Sandbox.RuncYardstick;

/// <summary>
/// runc's --console-socket: a Unix socket on which runc sends the master end of the container's new pseudo-terminal
/// (SCM_RIGHTS) when a process is created with terminal=true.
/// </summary>
internal sealed class ConsoleSocket : IDisposable
{
    private readonly Socket _listener;

    private ConsoleSocket(string path, Socket listener)
    {
        Path = path;
        _listener = listener;
    }

    public string Path { get; }

    /// <summary>A listening socket in the temporary directory (short: bundle paths can exceed the socket path limit).</summary>
    public static ConsoleSocket Create()
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"sbx-console-{Guid.NewGuid():N}.sock");
        return new ConsoleSocket(path, TtrpcServer.ListenUnix(path, backlog: 1));
    }

    /// <summary>Accepts runc's connection and returns the pty master fd it sends.</summary>
    public async Task<int> ReceiveMasterAsync(CancellationToken cancellationToken)
    {
        using var connection = await _listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
        await connection.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken).ConfigureAwait(false); // wait for the message
        return ReceiveFd((int)connection.Handle);
    }

    public void Dispose() => _listener.Dispose(); // also removes the socket file

    private static unsafe int ReceiveFd(int fd)
    {
        byte* data = stackalloc byte[4096];
        const int controlSize = 64;
        byte* control = stackalloc byte[controlSize];
        var iov = new LibC.IoVec { Base = data, Length = 4096 };
        var message = new LibC.MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = controlSize };
        nint received;
        do
        {
            received = LibC.recvmsg(fd, &message, LibC.MSG_CMSG_CLOEXEC);
        }
        while (received < 0 && Marshal.GetLastPInvokeError() == LibC.EINTR);
        if (received < 0)
            throw new IOException($"receiving the terminal from runc failed: {LibC.Describe(Marshal.GetLastPInvokeError())}");

        var header = (LibC.CmsgHdr*)control;
        if (message.ControlLength < (nuint)sizeof(LibC.CmsgHdr) || header->Level != LibC.SOL_SOCKET || header->Type != LibC.SCM_RIGHTS)
            throw new IOException("runc connected to the console socket but sent no terminal file descriptor");
        return *(int*)(control + sizeof(LibC.CmsgHdr));
    }
}
