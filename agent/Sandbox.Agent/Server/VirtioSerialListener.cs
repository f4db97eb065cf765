using System.Net.Sockets;
using Sandbox.Native;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent.Server;

/// <summary>
/// Accepts host connections on a virtio-serial port, one at a time, and hands each to Kestrel as a socket: a socket
/// pair whose other end a <see cref="VirtioSerialBridge"/> joins to the port. A port has no accept: it opens once, and
/// the host is "connected" while a client holds QEMU's chardev socket (the port polls POLLHUP until then). The listener
/// waits for the kernel's SIGIO on the port (<see cref="VirtioSerialHostSignal"/>), and looks again every
/// <see cref="HostPollInterval"/> in case a signal never comes. When the host disconnects, reads give end-of-file, the
/// bridge ends, Kestrel's connection ends, and the port is opened again for the next.
/// </summary>
public sealed class VirtioSerialListener(VirtioSerialEndPoint endPoint, Action<string> log)
{
    /// <summary>How often a port without a host is looked at again when no SIGIO came. A clone's shim connects right
    /// after the restore: with a 10 ms timer as the only wake-up (before the signal), its first call waited 5 ms on
    /// average for the agent to notice, and every idle VM woke each 10 ms for each port no host held.</summary>
    public static readonly TimeSpan HostPollInterval = TimeSpan.FromSeconds(1);

    /// <summary>How soon a port that the last connection's bridge still holds (EBUSY) is opened again.</summary>
    private static readonly TimeSpan BusyRetryInterval = TimeSpan.FromMilliseconds(10);

    /// <summary>Logged each time the port waits for a host again (the shim's TemplateBuilder looks for it).</summary>
    public const string WaitingForHostMessage = "waiting for the host to connect";

    private Task _previous = Task.CompletedTask;
    private readonly VirtioSerialBridge _bridge = new(endPoint.ToString(), log);

    public VirtioSerialEndPoint EndPoint => endPoint;

    /// <summary>The next host connection as Kestrel's end of a socket pair, or null once <paramref name="cancellationToken"/> fires.</summary>
    public async ValueTask<Socket?> AcceptAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _previous.WaitAsync(cancellationToken); // the port opens once at a time
            int port = await OpenWhenHostConnectedAsync(cancellationToken);
            var (kestrelEnd, bridgeEnd) = CreateSocketPair(port);
            _previous = _bridge.RunAsync(port, bridgeEnd);
            return new Socket(new SafeSocketHandle(kestrelEnd, ownsHandle: true));
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    private async Task<int> OpenWhenHostConnectedAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            int fd = LibCStrings.open(endPoint.DevicePath, O_RDWR | O_CLOEXEC | O_NONBLOCK);
            if (fd < 0)
            {
                int errno = Errno.Last;
                // EBUSY: the last connection's bridge has not closed it yet
                if (errno != EBUSY)
                    throw new IOException($"cannot open the agent's virtio-serial port {endPoint}: {Errno.Describe(errno)}");
            }
            else
            {
                // the template builder waits for this line before it saves the VM: the port is then idle
                log($"{endPoint}: {WaitingForHostMessage}");
                if (!VirtioSerialHostSignal.Enable(fd))
                    log($"{endPoint}: no SIGIO for the host's connection ({Errno.DescribeLast()}); looking every {HostPollInterval.TotalSeconds:0} s");
                while (true)
                {
                    var signal = VirtioSerialHostSignal.Next();
                    if (HostConnected(fd))
                    {
                        VirtioSerialHostSignal.Disable(fd); // the port also signals each arrival of data
                        return fd;
                    }
                    using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    await Task.WhenAny(signal, Task.Delay(HostPollInterval, timer.Token));
                    timer.Cancel();
                    cancellationToken.ThrowIfCancellationRequested();
                }
            }
            await Task.Delay(BusyRetryInterval, cancellationToken);
        }
    }

    /// <summary>A port polls POLLHUP while no host holds its chardev.</summary>
    private static unsafe bool HostConnected(int fd)
    {
        var entry = new pollfd { fd = fd, events = POLLIN };
        return poll(&entry, 1, 0) >= 0 && (entry.revents & POLLHUP) == 0;
    }

    private static unsafe (int KestrelEnd, int BridgeEnd) CreateSocketPair(int portToCloseOnFailure)
    {
        int* fds = stackalloc int[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        {
            string error = Errno.DescribeLast();
            FileDescriptors.CloseQuietly(portToCloseOnFailure);
            throw new IOException($"socketpair for the agent's virtio-serial connection failed: {error}");
        }
        return (fds[0], fds[1]);
    }
}
