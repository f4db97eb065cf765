using System.Net.Sockets;
using Sandbox.Native;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Sandbox.Vsock;

/// <summary>Connects AF_VSOCK stream sockets (non-blocking connect + poll, so cancellation is honoured).</summary>
public static unsafe class VsockConnector
{
    /// <summary>
    /// Connects to (cid, port) and returns the connected socket. Throws <see cref="VsockException"/> with the errno text
    /// (ECONNREFUSED when nothing listens, ETIMEDOUT, ENODEV when the host has no vsock transport) or
    /// <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> fires first.
    /// </summary>
    public static Task<Socket> ConnectAsync(uint cid, uint port, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) throw new VsockException("socket", cid, port, Errno.Last);

        var addr = VsockAddress.Of(cid, port);
        if (connect(fd, (sockaddr*)&addr, VsockAddress.Length) == 0)
            return Task.FromResult(Wrap(fd));
        int errno = Errno.Last;
        if (errno != EINPROGRESS)
        {
            close(fd);
            throw new VsockException("connect", cid, port, errno);
        }
        // The connect is in progress: wait for writability (or cancellation) on a dedicated thread.
        return Task.Factory.StartNew(() => CompleteConnect(fd, cid, port, cancellationToken),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private static Socket CompleteConnect(int fd, uint cid, uint port, CancellationToken cancellationToken)
    {
        int cancelFd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (cancelFd < 0)
        {
            int e = Errno.Last;
            close(fd);
            throw new VsockException("eventfd for connect", cid, port, e);
        }
        try
        {
            using (cancellationToken.Register(() => FileDescriptors.SignalEventFd(cancelFd)))
            {
                var fds = stackalloc pollfd[2];
                while (true)
                {
                    fds[0] = new pollfd { fd = fd, events = POLLOUT };
                    fds[1] = new pollfd { fd = cancelFd, events = POLLIN };
                    int ready = poll(fds, 2, -1);
                    if (ready < 0)
                    {
                        int errno = Errno.Last;
                        if (errno == EINTR) continue;
                        throw new VsockException("poll during connect", cid, port, errno);
                    }
                    if (fds[1].revents != 0)
                        throw new OperationCanceledException($"vsock connect to cid {cid} port {port} was cancelled", cancellationToken);
                    if (fds[0].revents != 0) break;
                }
                int soError = 0;
                socklen_t len = sizeof(int);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len) != 0)
                    throw new VsockException("getsockopt(SO_ERROR)", cid, port, Errno.Last);
                if (soError != 0) throw new VsockException("connect", cid, port, soError);
            }
            Socket socket = Wrap(fd);
            fd = -1;
            return socket;
        }
        finally
        {
            if (fd >= 0) close(fd);
            close(cancelFd);
        }
    }

    private static Socket Wrap(int fd)
    {
        // Hand .NET a blocking fd, as a freshly created socket would be; it switches to non-blocking for async I/O itself.
        FileDescriptors.SetNonBlocking(fd, false);
        return new Socket(new SafeSocketHandle(fd, ownsHandle: true));
    }
}
