using Sandbox.Native;
using Tmds.Linux;
using static Sandbox.Native.LibCSupplement;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent.Network;

/// <summary>The kernel refused a netlink request: errno and, when it sent one, its extended-ack message.</summary>
public sealed class NetlinkException(int errno, string? kernelMessage, string text) : Exception(text)
{
    public int Errno => errno;
    public string? KernelMessage => kernelMessage;
}

/// <summary>
/// A NETLINK_ROUTE socket for one batch of requests. The kernel handles a route request synchronously inside
/// sendto, so the answer is already queued when recv runs; a receive timeout (5 s) guards against a lost answer.
/// Extended acknowledgements are on, so refusals carry the kernel's own explanation.
/// </summary>
public sealed unsafe class NetlinkSocket : IDisposable
{
    private const int ReceiveBufferSize = 64 * 1024;
    private int _fd;
    private uint _sequence;

    private NetlinkSocket(int fd) => _fd = fd;

    public static NetlinkSocket Open()
    {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0) throw new IOException($"socket(AF_NETLINK, NETLINK_ROUTE) failed: {Errno.DescribeLast()}");
        try
        {
            int on = 1;
            setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof(int)); // best effort: older kernels lack it
            var timeout = new timeval { tv_sec = 5 };
            if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeval)) != 0)
                throw new IOException($"setsockopt(SO_RCVTIMEO) on the netlink socket failed: {Errno.DescribeLast()}");
            var local = new sockaddr_nl { nl_family = (ushort)(int)AF_NETLINK };
            if (bind(fd, (sockaddr*)&local, sizeof(sockaddr_nl)) != 0)
                throw new IOException($"bind of the netlink socket failed: {Errno.DescribeLast()}");
            return new NetlinkSocket(fd);
        }
        catch
        {
            close(fd);
            throw;
        }
    }

    public uint NextSequence() => ++_sequence;

    /// <summary>Sends a request built with NLM_F_ACK and waits for its acknowledgement; throws <see cref="NetlinkException"/> on a refusal.</summary>
    public void Execute(byte[] request)
    {
        uint sequence = Send(request);
        while (true)
        {
            foreach (NetlinkMessage message in Receive())
            {
                if (message.Sequence != sequence || message.Type != Rtnetlink.NLMSG_ERROR) continue;
                var (errno, kernelMessage) = Rtnetlink.ParseError(message);
                if (errno == 0) return;
                throw Refused(errno, kernelMessage);
            }
        }
    }

    /// <summary>Sends a dump request and returns the payloads of its answers of type <paramref name="answerType"/>.</summary>
    public List<byte[]> Dump(byte[] request, ushort answerType)
    {
        uint sequence = Send(request);
        var payloads = new List<byte[]>();
        while (true)
        {
            foreach (NetlinkMessage message in Receive())
            {
                if (message.Sequence != sequence) continue;
                if (message.Type == Rtnetlink.NLMSG_DONE) return payloads;
                if (message.Type == Rtnetlink.NLMSG_ERROR)
                {
                    var (errno, kernelMessage) = Rtnetlink.ParseError(message);
                    if (errno != 0) throw Refused(errno, kernelMessage);
                    return payloads;
                }
                if (message.Type == answerType) payloads.Add(message.Payload);
            }
        }
    }

    private uint Send(byte[] request)
    {
        ObjectDisposedException.ThrowIf(_fd < 0, this);
        uint sequence = BitConverter.ToUInt32(request, 8);
        var kernel = new sockaddr_nl { nl_family = (ushort)(int)AF_NETLINK };
        fixed (byte* p = request)
        {
            while (true)
            {
                long sent = sendto(_fd, p, request.Length, 0, (sockaddr*)&kernel, sizeof(sockaddr_nl));
                if (sent == request.Length) return sequence;
                int errno = Errno.Last;
                if (sent < 0 && errno == EINTR) continue;
                throw new IOException(sent < 0 ? $"sendto on the netlink socket failed: {Errno.Describe(errno)}" : $"netlink sendto sent {sent} of {request.Length} bytes");
            }
        }
    }

    private List<NetlinkMessage> Receive()
    {
        byte[] buffer = new byte[ReceiveBufferSize];
        fixed (byte* p = buffer)
        {
            while (true)
            {
                long received = recv(_fd, p, buffer.Length, 0);
                if (received >= 0) return NetlinkMessage.ParseAll(buffer.AsSpan(0, (int)received));
                int errno = Errno.Last;
                if (errno == EINTR) continue;
                if (errno == EAGAIN) throw new IOException("the kernel did not answer the netlink request within 5 s");
                throw new IOException($"recv on the netlink socket failed: {Errno.Describe(errno)}");
            }
        }
    }

    private static NetlinkException Refused(int errno, string? kernelMessage) =>
        new(errno, kernelMessage, Errno.Describe(errno) + (string.IsNullOrEmpty(kernelMessage) ? "" : $": {kernelMessage}"));

    public void Dispose()
    {
        if (_fd >= 0) close(_fd);
        _fd = -1;
    }
}
