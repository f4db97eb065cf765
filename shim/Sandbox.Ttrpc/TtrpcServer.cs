using System.Net.Sockets;

namespace Sandbox.Ttrpc;

/// <summary>
/// A ttrpc server on a listening Unix socket. Every request is dispatched concurrently; responses are written on
/// the request's stream id under the connection's write lock. One bad connection never affects another.
/// </summary>
public sealed class TtrpcServer : IAsyncDisposable
{
    private readonly TtrpcServiceRegistry _registry;
    private readonly TtrpcServerOptions _options;
    private readonly CancellationTokenSource _stopping = new();
    private readonly object _gate = new();
    private readonly HashSet<TtrpcServerConnection> _connections = new();
    private Socket? _listener;
    private Task _acceptLoop = Task.CompletedTask;
    private int _activeRequests;

    public TtrpcServer(TtrpcServiceRegistry registry, TtrpcServerOptions? options = null)
    {
        _registry = registry;
        _options = options ?? new TtrpcServerOptions();
    }

    /// <summary>Requests being handled right now, over all connections.</summary>
    public int ActiveRequests => Volatile.Read(ref _activeRequests);

    /// <summary>Connections accepted and not yet closed by either side.</summary>
    public int OpenConnections
    {
        get
        {
            lock (_gate)
                return _connections.Count;
        }
    }

    /// <summary>
    /// Creates a listening Unix stream socket at <paramref name="path"/> with mode 0600. The path must not exist.
    /// </summary>
    public static Socket ListenUnix(string path, int backlog = 128)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(path));
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            socket.Listen(backlog);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Starts accepting on <paramref name="listener"/> (already bound and listening). The server owns it from now on.</summary>
    public void Start(Socket listener)
    {
        lock (_gate)
        {
            if (_listener is not null)
                throw new InvalidOperationException("the ttrpc server is already started");
            _listener = listener;
            _acceptLoop = Task.Run(AcceptLoopAsync);
        }
    }

    /// <summary>Binds <paramref name="path"/> (see <see cref="ListenUnix"/>) and starts accepting on it.</summary>
    public void Start(string path) => Start(ListenUnix(path));

    /// <summary>
    /// Stops accepting, lets requests in flight finish for up to <paramref name="grace"/>, waits for the clients to hang
    /// up for up to <see cref="TtrpcServerOptions.HangUpWait"/> (not with a zero grace), then cancels what is left and
    /// closes every connection.
    /// </summary>
    public async Task ShutdownAsync(TimeSpan grace)
    {
        Socket? listener;
        lock (_gate)
        {
            listener = _listener;
        }
        try { listener?.Dispose(); } catch (ObjectDisposedException) { }

        var deadline = DateTime.UtcNow + grace;
        while (ActiveRequests > 0 && DateTime.UtcNow < deadline)
            await Task.Delay(10).ConfigureAwait(false);
        if (grace > TimeSpan.Zero && ActiveRequests == 0)
        {
            var hangUpDeadline = DateTime.UtcNow + _options.HangUpWait;
            while (OpenConnections > 0 && DateTime.UtcNow < hangUpDeadline)
                await Task.Delay(10).ConfigureAwait(false);
        }

        _stopping.Cancel();
        await _acceptLoop.ConfigureAwait(false);
        TtrpcServerConnection[] connections;
        lock (_gate)
        {
            connections = _connections.ToArray();
        }
        foreach (var connection in connections)
            connection.Close();
        await Task.WhenAll(connections.Select(c => c.Completion)).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await ShutdownAsync(TimeSpan.Zero).ConfigureAwait(false);
        _stopping.Dispose();
    }

    internal TtrpcServiceRegistry Registry => _registry;

    internal void Log(string line) => _options.Log?.Invoke(line);

    internal void RequestStarted() => Interlocked.Increment(ref _activeRequests);

    internal void RequestFinished() => Interlocked.Decrement(ref _activeRequests);

    private async Task AcceptLoopAsync()
    {
        var listener = _listener!;
        uint expectedUid = _options.RequireSameUser ? UnixPeerCredentials.EffectiveUserIdOfThisProcess() : 0;
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException
                                          || (e is SocketException && _stopping.IsCancellationRequested))
            {
                return;
            }
            catch (SocketException e)
            {
                if (IsListenerClosed(e))
                    return;
                Log($"ttrpc: accept failed: {e.Message}");
                await Task.Delay(50).ConfigureAwait(false);
                continue;
            }

            if (_options.RequireSameUser && !IsSameUser(socket, expectedUid))
            {
                socket.Dispose();
                continue;
            }

            var connection = new TtrpcServerConnection(this, socket);
            lock (_gate)
            {
                if (_stopping.IsCancellationRequested)
                {
                    socket.Dispose();
                    return;
                }
                _connections.Add(connection);
            }
            _ = connection.RunAsync().ContinueWith(_ =>
            {
                lock (_gate)
                {
                    _connections.Remove(connection);
                }
            }, TaskScheduler.Default);
        }
    }

    private static bool IsListenerClosed(SocketException e) =>
        e.SocketErrorCode is SocketError.OperationAborted or SocketError.Interrupted or SocketError.InvalidArgument or SocketError.NotSocket;

    private bool IsSameUser(Socket socket, uint expectedUid)
    {
        try
        {
            var peer = UnixPeerCredentials.Of(socket);
            if (peer.UserId == expectedUid)
                return true;
            Log($"ttrpc: rejected a connection from pid {peer.ProcessId} uid {peer.UserId}: only uid {expectedUid} may connect");
            return false;
        }
        catch (SocketException e)
        {
            Log($"ttrpc: rejected a connection whose peer credentials cannot be read: {e.Message}");
            return false;
        }
    }
}
