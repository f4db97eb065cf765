using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Core;
using Sandbox.Agent.Protocol;
using AgentClient = Sandbox.Agent.Protocol.Agent.AgentClient;

namespace Sandbox.Runtime.Network;

/// <summary>
/// CRI PortForward into the pod's VM. containerd's CRI serves `kubectl port-forward` by dialing localhost:PORT inside
/// the pod's network namespace on the host; <see cref="LoopbackRedirectRule"/> sends those connections to this
/// forwarder's listener in that namespace, which reads the port they were meant for (SO_ORIGINAL_DST) and carries each
/// connection to localhost:PORT in the guest over one agent ForwardPort call. A port nothing in the guest listens on
/// ends the connection at once (the client sees it closed), and the shim's log says why.
/// </summary>
public sealed class PodPortForwarder : IAsyncDisposable
{
    private const int SolIp = 0;
    private const int SoOriginalDst = 80;
    private const int ChunkSize = 32 * 1024;

    private readonly string _sandboxId;
    private readonly Socket _listener;
    private readonly AgentClient _agent;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private int _disposed;

    private PodPortForwarder(string sandboxId, Socket listener, AgentClient agent)
    {
        _sandboxId = sandboxId;
        _listener = listener;
        _agent = agent;
        _acceptLoop = AcceptLoopAsync();
    }

    /// <summary>Adds the redirect rule in the namespace (unless it is there) and listens; throws
    /// <see cref="PodNetworkException"/> naming the sandbox and what failed.</summary>
    public static async Task<PodPortForwarder> StartAsync(string sandboxId, string networkNamespacePath, AgentClient agent, CancellationToken cancellationToken)
    {
        var runner = new NetnsCommandRunner(sandboxId, networkNamespacePath, PodNetwork.DefaultCommandTimeout);
        try
        {
            await runner.RunAsync(LoopbackRedirectRule.Check(), cancellationToken);
        }
        catch (PodNetworkException)
        {
            await runner.RunAsync(LoopbackRedirectRule.Add(), cancellationToken);
        }
        Socket listener;
        try
        {
            listener = await NetworkNamespaceListener.ListenAsync(networkNamespacePath, new IPEndPoint(IPAddress.Loopback, LoopbackRedirectRule.ListenerPort));
        }
        catch (Exception e) when (e is IOException or SocketException or UnauthorizedAccessException)
        {
            throw new PodNetworkException(sandboxId, networkNamespacePath,
                $"cannot listen on 127.0.0.1:{LoopbackRedirectRule.ListenerPort} in the pod's network namespace for port-forward: {e.Message}", e);
        }
        return new PodPortForwarder(sandboxId, listener, agent);
    }

    /// <summary>The port a redirected connection was meant for: SO_ORIGINAL_DST's sockaddr_in (port at bytes 2-3,
    /// network order).</summary>
    public static int OriginalPort(ReadOnlySpan<byte> sockaddrIn) => BinaryPrimitives.ReadUInt16BigEndian(sockaddrIn[2..4]);

    private async Task AcceptLoopAsync()
    {
        var connections = new List<Task>();
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var connection = await _listener.AcceptAsync(_stop.Token);
                connections.RemoveAll(t => t.IsCompleted);
                connections.Add(ForwardAsync(connection));
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException && _stop.IsCancellationRequested)
            {
                break;
            }
            catch (SocketException e)
            {
                // e.g. out of file descriptors: keep listening, the next connection may succeed
                Console.Error.WriteLine($"sandbox {_sandboxId}: port-forward: accepting a connection failed: {e.Message}");
                await Task.Delay(100);
            }
        }
        await Task.WhenAll(connections);
    }

    private async Task ForwardAsync(Socket connection)
    {
        int port = 0;
        using (connection)
        {
            try
            {
                var address = new byte[16];
                connection.GetRawSocketOption(SolIp, SoOriginalDst, address);
                port = OriginalPort(address);
                using var call = _agent.ForwardPort(cancellationToken: _stop.Token);
                await call.RequestStream.WriteAsync(new PortForwardChunk { Port = (uint)port }, _stop.Token);
                if (!await call.ResponseStream.MoveNext(_stop.Token)) // the agent's "connected"
                    return;
                var toGuest = CopyToGuestAsync(connection, call.RequestStream, _stop.Token);
                while (await call.ResponseStream.MoveNext(_stop.Token))
                {
                    var data = call.ResponseStream.Current.Data;
                    if (data.Length > 0)
                        await connection.SendAsync(data.Memory, SocketFlags.None, _stop.Token);
                }
                connection.Shutdown(SocketShutdown.Send);
                await toGuest;
            }
            catch (RpcException e) when (e.StatusCode != StatusCode.Cancelled)
            {
                Console.Error.WriteLine($"sandbox {_sandboxId}: port-forward to port {port} in the VM failed: {e.Status.Detail}");
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or RpcException)
            {
                // the client or the shim ended the connection
            }
        }
    }

    /// <summary>Client to guest; the client's close (or reset) ends the guest connection's sending side. Never throws:
    /// the guest side ending the call first is the normal end of a connection.</summary>
    private static async Task CopyToGuestAsync(Socket connection, IClientStreamWriter<PortForwardChunk> requests, CancellationToken cancellationToken)
    {
        var buffer = new byte[ChunkSize];
        try
        {
            while (true)
            {
                int read;
                try
                {
                    read = await connection.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
                }
                catch (SocketException)
                {
                    read = 0; // reset by the client: the same end as a close
                }
                if (read == 0)
                    break;
                await requests.WriteAsync(new PortForwardChunk { Data = ByteString.CopyFrom(buffer, 0, read) }, cancellationToken);
            }
            await requests.CompleteAsync();
        }
        catch (Exception e) when (e is OperationCanceledException or RpcException or InvalidOperationException or IOException)
        {
        }
    }

    /// <summary>Stops listening and ends every forwarded connection. The rule goes with the pod's namespace.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
            return;
        _stop.Cancel();
        _listener.Dispose();
        await _acceptLoop;
        _stop.Dispose();
    }
}
