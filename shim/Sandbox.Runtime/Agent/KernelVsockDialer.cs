using System.Net.Sockets;
using Sandbox.Vsock;

namespace Sandbox.Runtime.Agent;

/// <summary>Dials a guest vsock port with AF_VSOCK through the kernel's vhost-vsock.</summary>
public sealed class KernelVsockDialer(uint cid, uint port) : IAgentDialer
{
    public string Description => $"vsock cid {cid} port {port}";

    public async Task<Stream> DialAsync(CancellationToken cancellationToken)
    {
        Socket socket = await VsockConnector.ConnectAsync(cid, port, cancellationToken);
        return new NetworkStream(socket, ownsSocket: true);
    }
}
