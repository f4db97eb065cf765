using Sandbox.Agent.Native;

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
        int fd = LibC.Socket(LibC.AF_NETLINK, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, LibC.NETLINK_ROUTE);
        if (fd < 0) throw new IOException($"socket(AF_NETLINK, NETLINK_ROUTE) failed: {LibC.ErrorText(LibC.LastError)}");
        try
        {
            int on = 1;
            LibC.SetSockOpt(fd, LibC.SOL_NETLINK, LibC.NETLINK_EXT_ACK, &on, sizeof(int)); // best effort: older kernels lack it
            var timeout = new LibC.TimeVal { Seconds = 5 };
            if (LibC.SetSockOpt(fd, LibC.SOL_SOCKET, LibC.SO_RCVTIMEO, &timeout, (uint)sizeof(LibC.TimeVal)) != 0)
                throw new IOException($"setsockopt(SO_RCVTIMEO) on the netlink socket failed: {LibC.ErrorText(LibC.LastError)}");
            var local = new LibC.SockaddrNl { Family = LibC.AF_NETLINK };
            if (LibC.Bind(fd, &local, (uint)sizeof(LibC.SockaddrNl)) != 0)
                throw new IOException($"bind of the netlink socket failed: {LibC.ErrorText(LibC.LastError)}");
            return new NetlinkSocket(fd);
        }
        catch
        {
            LibC.Close(fd);
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
        var kernel = new LibC.SockaddrNl { Family = LibC.AF_NETLINK };
        fixed (byte* p = request)
        {
            while (true)
            {
                nint sent = LibC.SendTo(_fd, p, (nuint)request.Length, 0, &kernel, (uint)sizeof(LibC.SockaddrNl));
                if (sent == request.Length) return sequence;
                int errno = LibC.LastError;
                if (sent < 0 && errno == LibC.EINTR) continue;
                throw new IOException(sent < 0 ? $"sendto on the netlink socket failed: {LibC.ErrorText(errno)}" : $"netlink sendto sent {sent} of {request.Length} bytes");
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
                nint received = LibC.Recv(_fd, p, (nuint)buffer.Length, 0);
                if (received >= 0) return NetlinkMessage.ParseAll(buffer.AsSpan(0, (int)received));
                int errno = LibC.LastError;
                if (errno == LibC.EINTR) continue;
                if (errno == LibC.EAGAIN) throw new IOException("the kernel did not answer the netlink request within 5 s");
                throw new IOException($"recv on the netlink socket failed: {LibC.ErrorText(errno)}");
            }
        }
    }

    private static NetlinkException Refused(int errno, string? kernelMessage) =>
        new(errno, kernelMessage, LibC.ErrorText(errno) + (string.IsNullOrEmpty(kernelMessage) ? "" : $": {kernelMessage}"));

    public void Dispose()
    {
        if (_fd >= 0) LibC.Close(_fd);
        _fd = -1;
    }
}
