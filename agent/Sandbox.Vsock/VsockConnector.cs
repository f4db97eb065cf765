using System.Net.Sockets;
using System.Runtime.InteropServices;

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
        int fd = VsockNative.Socket(VsockNative.AF_VSOCK, VsockNative.SOCK_STREAM | VsockNative.SOCK_CLOEXEC | VsockNative.SOCK_NONBLOCK, 0);
        if (fd < 0) throw new VsockException("socket", cid, port, Marshal.GetLastPInvokeError());

        var addr = VsockNative.Address(cid, port);
        if (VsockNative.Connect(fd, &addr, (uint)sizeof(VsockNative.SockaddrVm)) == 0)
            return Task.FromResult(Wrap(fd));
        int errno = Marshal.GetLastPInvokeError();
        if (errno != VsockNative.EINPROGRESS)
        {
            VsockNative.Close(fd);
            throw new VsockException("connect", cid, port, errno);
        }
        // The connect is in progress: wait for writability (or cancellation) on a dedicated thread.
        return Task.Factory.StartNew(() => CompleteConnect(fd, cid, port, cancellationToken),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private static Socket CompleteConnect(int fd, uint cid, uint port, CancellationToken cancellationToken)
    {
        int cancelFd = VsockNative.EventFd(0, VsockNative.EFD_CLOEXEC | VsockNative.EFD_NONBLOCK);
        if (cancelFd < 0)
        {
            int e = Marshal.GetLastPInvokeError();
            VsockNative.Close(fd);
            throw new VsockException("eventfd for connect", cid, port, e);
        }
        try
        {
            using (cancellationToken.Register(() => VsockNative.Signal(cancelFd)))
            {
                var fds = stackalloc VsockNative.PollFd[2];
                while (true)
                {
                    fds[0] = new VsockNative.PollFd { Fd = fd, Events = VsockNative.POLLOUT };
                    fds[1] = new VsockNative.PollFd { Fd = cancelFd, Events = VsockNative.POLLIN };
                    int ready = VsockNative.Poll(fds, 2, -1);
                    if (ready < 0)
                    {
                        int errno = Marshal.GetLastPInvokeError();
                        if (errno == VsockNative.EINTR) continue;
                        throw new VsockException("poll during connect", cid, port, errno);
                    }
                    if (fds[1].Revents != 0)
                        throw new OperationCanceledException($"vsock connect to cid {cid} port {port} was cancelled", cancellationToken);
                    if (fds[0].Revents != 0) break;
                }
                int soError = 0;
                uint len = sizeof(int);
                if (VsockNative.GetSockOpt(fd, VsockNative.SOL_SOCKET, VsockNative.SO_ERROR, &soError, &len) != 0)
                    throw new VsockException("getsockopt(SO_ERROR)", cid, port, Marshal.GetLastPInvokeError());
                if (soError != 0) throw new VsockException("connect", cid, port, soError);
            }
            Socket socket = Wrap(fd);
            fd = -1;
            return socket;
        }
        finally
        {
            if (fd >= 0) VsockNative.Close(fd);
            VsockNative.Close(cancelFd);
        }
    }

    private static Socket Wrap(int fd)
    {
        // Hand .NET a blocking fd, as a freshly created socket would be; it switches to non-blocking for async I/O itself.
        VsockNative.SetBlocking(fd, blocking: true);
        return new Socket(new SafeSocketHandle(fd, ownsHandle: true));
    }
}
