using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Core;
using Sandbox.Agent.Containers;
using Sandbox.Agent.Protocol;

namespace Sandbox.Agent.Network;

/// <summary>
/// The guest end of CRI PortForward: one ForwardPort call is one TCP connection to localhost:PORT in the guest (the
/// pod's network namespace: the containers share the VM's). Request chunks go to the connection; what the
/// connection sends comes back as response chunks. The end of the request stream shuts down the sending side
/// (the client may still read the answer); the call ends when the guest side closes.
/// </summary>
public static class LoopbackPortForward
{
    private const int ChunkSize = 32 * 1024;

    public static async Task RunAsync(IAsyncStreamReader<PortForwardChunk> requests, IServerStreamWriter<PortForwardChunk> responses,
        CancellationToken cancellationToken)
    {
        if (!await requests.MoveNext(cancellationToken))
            throw AgentErrors.InvalidArgument("ForwardPort: the stream carried no message (the first one names the port)");
        var first = requests.Current;
        if (first.Port is 0 or > 65535)
            throw AgentErrors.InvalidArgument($"ForwardPort: port {first.Port} is not a TCP port (1-65535)");
        int port = (int)first.Port;

        using var socket = await ConnectAsync(port, cancellationToken);
        await responses.WriteAsync(new PortForwardChunk(), cancellationToken); // connected
        if (first.Data.Length > 0)
            await socket.SendAsync(first.Data.Memory, SocketFlags.None, cancellationToken);

        using var end = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var toGuest = CopyRequestsToSocketAsync(requests, socket, end.Token);
        try
        {
            var buffer = new byte[ChunkSize];
            while (true)
            {
                int read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
                if (read == 0)
                    break;
                await responses.WriteAsync(new PortForwardChunk { Data = ByteString.CopyFrom(buffer, 0, read) }, cancellationToken);
            }
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown)
        {
            // the guest side reset the connection: the same end as a close
        }
        finally
        {
            end.Cancel();
            try
            {
                await toGuest;
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or RpcException)
            {
                // the call is over: what the client still sends has nowhere to go
            }
        }
    }

    private static async Task<Socket> ConnectAsync(int port, CancellationToken cancellationToken)
    {
        var errors = new List<string>();
        foreach (var address in new[] { IPAddress.Loopback, IPAddress.IPv6Loopback })
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(TimeSpan.FromSeconds(10));
                await socket.ConnectAsync(new IPEndPoint(address, port), timeout.Token);
                return socket;
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                socket.Dispose();
                errors.Add($"{(address.AddressFamily == AddressFamily.InterNetwork ? "127.0.0.1" : "[::1]")}:{port}: {(e is SocketException s ? s.SocketErrorCode.ToString() : "no answer within 10 s")}");
            }
        }
        throw new RpcException(new Status(StatusCode.Unavailable,
            $"ForwardPort: nothing in the pod's VM accepts connections on localhost port {port} ({string.Join("; ", errors)}); check that a container of the pod listens on that port"));
    }

    private static async Task CopyRequestsToSocketAsync(IAsyncStreamReader<PortForwardChunk> requests, Socket socket, CancellationToken cancellationToken)
    {
        while (await requests.MoveNext(cancellationToken))
        {
            if (requests.Current.Data.Length > 0)
                await socket.SendAsync(requests.Current.Data.Memory, SocketFlags.None, cancellationToken);
        }
        socket.Shutdown(SocketShutdown.Send);
    }
}
