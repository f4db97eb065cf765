using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Threading.Channels;

namespace Sandbox.Vsock;

/// <summary>A connection accepted by <see cref="VsockListener"/>: the socket and the peer's address.</summary>
public sealed record VsockAcceptedConnection(Socket Socket, VsockEndPoint Peer);

/// <summary>
/// A listening AF_VSOCK socket. A dedicated thread polls the listen fd together with an eventfd and accepts
/// connections; <see cref="Dispose"/> wakes it through the eventfd, joins it and closes the listen fd.
/// Accepted fds are wrapped in <see cref="Socket"/> so managed Send/Receive (epoll-backed) work on them.
/// </summary>
public sealed class VsockListener : IDisposable
{
    private readonly int _listenFd;
    private readonly int _stopFd;
    private readonly Thread _acceptThread;
    private readonly Channel<VsockAcceptedConnection> _accepted =
        Channel.CreateUnbounded<VsockAcceptedConnection>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = true });
    private int _disposed;

    private VsockListener(int listenFd, int stopFd, VsockEndPoint endPoint)
    {
        _listenFd = listenFd;
        _stopFd = stopFd;
        EndPoint = endPoint;
        _acceptThread = new Thread(AcceptLoop) { IsBackground = true, Name = $"vsock-accept-{endPoint.Port}" };
        _acceptThread.Start();
    }

    public VsockEndPoint EndPoint { get; }

    /// <summary>Called when accept4 fails in the accept thread (other than EAGAIN/EINTR/ECONNABORTED).</summary>
    public event Action<VsockException>? AcceptFailed;

    /// <summary>socket + bind + listen on (cid, port). Use <see cref="VsockEndPoint.AnyCid"/> to accept on every cid.</summary>
    public static unsafe VsockListener Bind(uint cid, uint port, int backlog = 128)
    {
        int fd = VsockNative.Socket(VsockNative.AF_VSOCK, VsockNative.SOCK_STREAM | VsockNative.SOCK_CLOEXEC | VsockNative.SOCK_NONBLOCK, 0);
        if (fd < 0) throw new VsockException("socket", cid, port, Marshal.GetLastPInvokeError());
        try
        {
            var addr = VsockNative.Address(cid, port);
            if (VsockNative.Bind(fd, &addr, (uint)sizeof(VsockNative.SockaddrVm)) != 0)
                throw new VsockException("bind", cid, port, Marshal.GetLastPInvokeError());
            if (VsockNative.Listen(fd, backlog) != 0)
                throw new VsockException("listen", cid, port, Marshal.GetLastPInvokeError());
            uint actualPort = port;
            var bound = default(VsockNative.SockaddrVm);
            uint len = (uint)sizeof(VsockNative.SockaddrVm);
            if (VsockNative.GetSockName(fd, &bound, &len) == 0) actualPort = bound.Port;
            int stopFd = VsockNative.EventFd(0, VsockNative.EFD_CLOEXEC | VsockNative.EFD_NONBLOCK);
            if (stopFd < 0) throw new VsockException("eventfd for listener", cid, port, Marshal.GetLastPInvokeError());
            return new VsockListener(fd, stopFd, new VsockEndPoint(cid, actualPort));
        }
        catch
        {
            VsockNative.Close(fd);
            throw;
        }
    }

    /// <summary>The next accepted connection, or null once the listener is disposed.</summary>
    public async ValueTask<VsockAcceptedConnection?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return await _accepted.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            return null;
        }
    }

    private unsafe void AcceptLoop()
    {
        var fds = stackalloc VsockNative.PollFd[2];
        try
        {
            while (true)
            {
                fds[0] = new VsockNative.PollFd { Fd = _listenFd, Events = VsockNative.POLLIN };
                fds[1] = new VsockNative.PollFd { Fd = _stopFd, Events = VsockNative.POLLIN };
                int ready = VsockNative.Poll(fds, 2, -1);
                if (ready < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == VsockNative.EINTR) continue;
                    AcceptFailed?.Invoke(new VsockException("poll", EndPoint.Cid, EndPoint.Port, errno));
                    return;
                }
                if (fds[1].Revents != 0) return;
                if ((fds[0].Revents & VsockNative.POLLIN) == 0) continue;

                var peer = default(VsockNative.SockaddrVm);
                uint len = (uint)sizeof(VsockNative.SockaddrVm);
                int fd = VsockNative.Accept4(_listenFd, &peer, &len, VsockNative.SOCK_CLOEXEC);
                if (fd < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno is VsockNative.EAGAIN or VsockNative.EINTR or VsockNative.ECONNABORTED) continue;
                    AcceptFailed?.Invoke(new VsockException("accept4", EndPoint.Cid, EndPoint.Port, errno));
                    Thread.Sleep(10); // e.g. EMFILE: do not spin
                    continue;
                }
                var socket = new Socket(new SafeSocketHandle(fd, ownsHandle: true));
                if (!_accepted.Writer.TryWrite(new VsockAcceptedConnection(socket, new VsockEndPoint(peer.Cid, peer.Port))))
                    socket.Dispose();
            }
        }
        finally
        {
            _accepted.Writer.TryComplete();
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        VsockNative.Signal(_stopFd);
        if (Thread.CurrentThread != _acceptThread) _acceptThread.Join();
        VsockNative.Close(_listenFd);
        VsockNative.Close(_stopFd);
        while (_accepted.Reader.TryRead(out var pending)) pending.Socket.Dispose();
    }
}
