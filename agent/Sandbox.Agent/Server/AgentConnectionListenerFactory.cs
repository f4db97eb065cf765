using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Sandbox.Vsock;

namespace Sandbox.Agent.Server;

/// <summary>
/// Kestrel transport for the agent: binds a <see cref="VsockEndPoint"/> with <see cref="VsockListener"/> (libc) or a
/// <see cref="UnixDomainSocketEndPoint"/> with a managed socket, or a <see cref="VirtioSerialEndPoint"/> with
/// <see cref="VirtioSerialListener"/>, and turns every accepted socket into a Kestrel connection with
/// <see cref="SocketConnectionContextFactory"/>.
/// </summary>
public sealed class AgentConnectionListenerFactory(Action<string> log) : IConnectionListenerFactory
{
    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        switch (endpoint)
        {
            case VsockEndPoint vsock:
            {
                var listener = VsockListener.Bind(vsock.Cid, vsock.Port);
                listener.AcceptFailed += e => log(e.Message);
                return ValueTask.FromResult<IConnectionListener>(new AcceptingListener(listener.EndPoint,
                    async ct => await AcceptFromHostAsync(listener, ct), listener.Dispose));
            }
            case UnixDomainSocketEndPoint unix:
            {
                string path = unix.ToString();
                if (File.Exists(path)) File.Delete(path);
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                socket.Bind(unix);
                socket.Listen(128);
                return ValueTask.FromResult<IConnectionListener>(new AcceptingListener(unix,
                    async ct =>
                    {
                        try { return await socket.AcceptAsync(ct); }
                        catch (ObjectDisposedException) { return null; }
                        catch (SocketException e) when (e.SocketErrorCode == SocketError.OperationAborted) { return null; }
                    },
                    () => { socket.Dispose(); File.Delete(path); }));
            }
            case VirtioSerialEndPoint serial:
            {
                var listener = new VirtioSerialListener(serial, log);
                var stopping = new CancellationTokenSource();
                return ValueTask.FromResult<IConnectionListener>(new AcceptingListener(serial,
                    async ct =>
                    {
                        using var either = CancellationTokenSource.CreateLinkedTokenSource(ct, stopping.Token);
                        return await listener.AcceptAsync(either.Token);
                    },
                    stopping.Cancel));
            }
            default:
                throw new NotSupportedException($"the agent listens on vsock, Unix sockets or a virtio-serial port only, not {endpoint}");
        }
    }

    /// <summary>The next connection from the host; connections from anywhere else are closed and logged
    /// (<see cref="AgentPeerPolicy"/>).</summary>
    private async ValueTask<Socket?> AcceptFromHostAsync(VsockListener listener, CancellationToken cancellationToken)
    {
        while (true)
        {
            var accepted = await listener.AcceptAsync(cancellationToken);
            if (accepted is null || AgentPeerPolicy.Accepts(accepted.Peer))
                return accepted?.Socket;
            log(AgentPeerPolicy.DescribeRefusal(accepted.Peer));
            accepted.Socket.Dispose();
        }
    }

    /// <summary>An <see cref="IConnectionListener"/> over an accept function.</summary>
    private sealed class AcceptingListener(EndPoint endPoint, Func<CancellationToken, ValueTask<Socket?>> accept, Action stop)
        : IConnectionListener
    {
        private readonly SocketConnectionContextFactory _contexts = new(new SocketConnectionFactoryOptions(), NullLogger.Instance);
        private int _stopped;

        public EndPoint EndPoint => endPoint;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            if (Volatile.Read(ref _stopped) != 0) return null;
            Socket? socket = await accept(cancellationToken);
            return socket == null ? null : _contexts.Create(socket);
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            if (Interlocked.Exchange(ref _stopped, 1) == 0) stop();
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _stopped, 1) == 0) stop();
            _contexts.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
