using System.Net.Sockets;
using Sandbox.Native;
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
        return FileDescriptorPassing.Receive((int)connection.Handle, "runc");
    }

    public void Dispose() => _listener.Dispose(); // also removes the socket file
}
