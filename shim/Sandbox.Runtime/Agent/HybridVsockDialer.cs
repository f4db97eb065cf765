using System.Net.Sockets;
using System.Text;

namespace Sandbox.Runtime.Agent;

/// <summary>
/// Dials a guest vsock port through a "hybrid vsock" Unix socket (vhost-device-vsock, Firecracker, Cloud Hypervisor):
/// connect, write "CONNECT &lt;port&gt;\n", read "OK &lt;n&gt;\n", then the stream belongs to the guest.
/// </summary>
public sealed class HybridVsockDialer(string socketPath, uint port) : IAgentDialer
{
    private const int MaxReplyLength = 64;

    public string Description => $"hybrid vsock {socketPath} port {port}";

    public async Task<Stream> DialAsync(CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
            await socket.SendAsync(Encoding.ASCII.GetBytes($"CONNECT {port}\n"), SocketFlags.None, cancellationToken);
            var reply = await ReadReplyLineAsync(socket, cancellationToken);
            if (!reply.StartsWith("OK ", StringComparison.Ordinal))
                throw new IOException($"{Description}: expected 'OK <n>' after CONNECT, got '{reply}'");
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException($"{Description}: {e.Message}", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Reads one byte at a time up to '\n' so that no byte of the stream behind the reply is consumed.</summary>
    private async Task<string> ReadReplyLineAsync(Socket socket, CancellationToken cancellationToken)
    {
        var line = new StringBuilder();
        var one = new byte[1];
        while (true)
        {
            int n = await socket.ReceiveAsync(one, SocketFlags.None, cancellationToken);
            if (n == 0)
                throw new IOException($"{Description}: connection closed during the CONNECT handshake (the guest is not listening yet?)");
            if (one[0] == (byte)'\n')
                return line.ToString();
            if (line.Length >= MaxReplyLength)
                throw new IOException($"{Description}: handshake reply longer than {MaxReplyLength} bytes");
            line.Append((char)one[0]);
        }
    }
}
