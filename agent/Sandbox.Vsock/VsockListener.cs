using System.Net.Sockets;
using System.Threading.Channels;
using Sandbox.Native;
using Tmds.Linux;
using static Sandbox.Native.LibCSupplement;
using static Tmds.Linux.LibC;

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
        int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) throw new VsockException("socket", cid, port, Errno.Last);
        try
        {
            var addr = VsockAddress.Of(cid, port);
            if (bind(fd, (sockaddr*)&addr, VsockAddress.Length) != 0)
                throw new VsockException("bind", cid, port, Errno.Last);
            if (listen(fd, backlog) != 0)
                throw new VsockException("listen", cid, port, Errno.Last);
            uint actualPort = port;
            var bound = default(sockaddr_vm);
            socklen_t len = VsockAddress.Length;
            if (getsockname(fd, (sockaddr*)&bound, &len) == 0) actualPort = bound.svm_port;
            int stopFd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            if (stopFd < 0) throw new VsockException("eventfd for listener", cid, port, Errno.Last);
            return new VsockListener(fd, stopFd, new VsockEndPoint(cid, actualPort));
        }
        catch
        {
            close(fd);
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
        var fds = stackalloc pollfd[2];
        try
        {
            while (true)
            {
                fds[0] = new pollfd { fd = _listenFd, events = POLLIN };
                fds[1] = new pollfd { fd = _stopFd, events = POLLIN };
                int ready = poll(fds, 2, -1);
                if (ready < 0)
                {
                    int errno = Errno.Last;
                    if (errno == EINTR) continue;
                    AcceptFailed?.Invoke(new VsockException("poll", EndPoint.Cid, EndPoint.Port, errno));
                    return;
                }
                if (fds[1].revents != 0) return;
                if ((fds[0].revents & POLLIN) == 0) continue;

                var peer = default(sockaddr_vm);
                socklen_t len = VsockAddress.Length;
                int fd = accept4(_listenFd, (sockaddr*)&peer, &len, SOCK_CLOEXEC);
                if (fd < 0)
                {
                    int errno = Errno.Last;
                    if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) continue;
                    AcceptFailed?.Invoke(new VsockException("accept4", EndPoint.Cid, EndPoint.Port, errno));
                    Thread.Sleep(10); // e.g. EMFILE: do not spin
                    continue;
                }
                var socket = new Socket(new SafeSocketHandle(fd, ownsHandle: true));
                if (!_accepted.Writer.TryWrite(new VsockAcceptedConnection(socket, new VsockEndPoint(peer.svm_cid, peer.svm_port))))
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
        FileDescriptors.SignalEventFd(_stopFd);
        if (Thread.CurrentThread != _acceptThread) _acceptThread.Join();
        close(_listenFd);
        close(_stopFd);
        while (_accepted.Reader.TryRead(out var pending)) pending.Socket.Dispose();
    }
}
