using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using Sandbox.Agent.Protocol;
using AgentClient = Sandbox.Agent.Protocol.Agent.AgentClient;

namespace Sandbox.Runtime.Agent;

/// <summary>
/// A gRPC channel to one sandbox's agent. HTTP/2 cleartext over whatever stream the dialer opens (vsock or hybrid
/// vsock). The channel reconnects by itself when a connection drops; each call should carry a deadline.
/// </summary>
public sealed class AgentConnection : IDisposable
{
    private readonly GrpcChannel _channel;

    public AgentConnection(IAgentDialer dialer, string sandboxId)
    {
        Dialer = dialer;
        SandboxId = sandboxId;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) => await dialer.DialAsync(cancellationToken),
            // a virtio-serial port serves one connection at a time; the agent allows 1000 streams on one
            EnableMultipleHttp2Connections = !dialer.SingleConnection,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            // No HTTP/2 keep-alive pings. They took a guest that did not answer one within 20 s for a dead connection
            // and failed the call in flight: a CI run of the 20-pods-at-once test lost a pod that way, its CreateContainer
            // failing with net_ping_request_timed_out while 20 TCG guests shared two cores. A connection does end when
            // the VM does (QEMU's or the vsock daemon's socket closes, or vhost-vsock resets it), the shim watches QEMU's
            // process, and every call that should end carries a deadline; a slow guest is not a dead one.
            KeepAlivePingDelay = Timeout.InfiniteTimeSpan,
            // a stream's window of 64 KiB would stop the agent every 64 KiB of output until a WINDOW_UPDATE came back
            // through the guest; 4 MiB keeps a fast writer's output flowing (the agent sends up to 1 MiB per message)
            InitialHttp2StreamWindowSize = 4 * 1024 * 1024,
        };
        _channel = GrpcChannel.ForAddress("http://agent", new GrpcChannelOptions
        {
            HttpHandler = handler,
            // a virtio-serial port is free again only once its connection is closed, so disposing closes it; over vsock
            // the connections are left as before (disposing them under in-flight calls coincided with containerd 2.1
            // seeing ShutdownSandbox's connection close before its answer, 4 times in 2 CI runs)
            DisposeHttpClient = dialer.SingleConnection,
            MaxReceiveMessageSize = 16 * 1024 * 1024,
            MaxSendMessageSize = 16 * 1024 * 1024,
        });
        Client = new AgentClient(_channel);
    }

    public IAgentDialer Dialer { get; }
    public string SandboxId { get; }
    public AgentClient Client { get; }

    /// <summary>
    /// Calls Health until the agent answers or <paramref name="timeout"/> passes. Until the guest listens, dialling
    /// fails (refused, reset, or closed during the handshake): that is expected and retried.
    /// </summary>
    public async Task<HealthResponse> WaitUntilReadyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        Exception? last = null;
        while (clock.Elapsed < timeout)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                var remaining = timeout - clock.Elapsed;
                var perAttempt = remaining < TimeSpan.FromSeconds(5) ? remaining : TimeSpan.FromSeconds(5);
                return await Client.HealthAsync(new HealthRequest(),
                    deadline: DateTime.UtcNow + perAttempt, cancellationToken: cancellationToken);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded
                                         or StatusCode.Internal or StatusCode.Unknown)
            {
                last = e;
                await Task.Delay(TimeSpan.FromMilliseconds(25), cancellationToken);
            }
        }
        throw new TimeoutException(
            $"sandbox {SandboxId}: the agent did not answer Health on {Dialer.Description} within {timeout.TotalSeconds:0.#} s " +
            $"(last error: {last?.Message ?? "none"}). Check the guest console log in the sandbox's state directory.", last);
    }

    public void Dispose() => _channel.Dispose();
}
