using System.Net.Sockets;

namespace Sandbox.Runtime.Agent;

/// <summary>
/// Dials the agent's virtio-serial port (a VM from a template): QEMU's chardev Unix socket, which is the stream. It
/// serves one client at a time, so the channel must not open a second connection (see
/// <see cref="IAgentDialer.SingleConnection"/>).
/// </summary>
public sealed class VirtioSerialDialer(string socketPath) : IAgentDialer
{
    public string Description => $"virtio-serial port through {socketPath}";

    public bool SingleConnection => true;

    public async Task<Stream> DialAsync(CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
