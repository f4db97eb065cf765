using System.Collections.Concurrent;
using System.Net.Sockets;
using Google.Protobuf;
using Sandbox.Ttrpc.Protocol;

namespace Sandbox.Ttrpc;

/// <summary>
/// A ttrpc client on one Unix socket connection: unary calls on stream ids 1, 3, 5, ..., many in flight at once,
/// answered in any order. When the connection breaks, every call in flight fails with Unavailable and
/// <see cref="IsConnected"/> turns false; make a new client to reconnect.
/// </summary>
public sealed class TtrpcClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly TtrpcFrameReader _reader;
    private readonly TtrpcFrameWriter _writer;
    private readonly ConcurrentDictionary<uint, TaskCompletionSource<Response>> _pending = new();
    private readonly CancellationTokenSource _closed = new();
    private readonly Task _readLoop;
    private readonly object _streamIdGate = new();
    private uint _nextStreamId = 1;
    private volatile bool _connected = true;

    private TtrpcClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new TtrpcFrameReader(_stream);
        _writer = new TtrpcFrameWriter(_stream);
        _readLoop = Task.Run(ReadLoopAsync);
    }

    public bool IsConnected => _connected;

    /// <summary>Connects to the Unix socket at <paramref name="path"/> (a leading <c>unix://</c> is removed).</summary>
    public static async Task<TtrpcClient> ConnectAsync(string path, CancellationToken cancellationToken)
    {
        if (path.StartsWith("unix://", StringComparison.Ordinal))
            path = path["unix://".Length..];
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new TtrpcClient(socket);
    }

    /// <summary>
    /// Calls <paramref name="service"/>/<paramref name="method"/>. A <paramref name="timeout"/> is sent to the server as
    /// <c>timeout_nano</c> and also ends the wait here with DeadlineExceeded. Throws <see cref="TtrpcException"/>
    /// for a non-OK status.
    /// </summary>
    public async Task<byte[]> CallAsync(string service, string method, ReadOnlyMemory<byte> payload,
        TimeSpan? timeout = null, IEnumerable<KeyValuePair<string, string>>? metadata = null,
        CancellationToken cancellationToken = default)
    {
        var request = new Request { Service = service, Method = method, Payload = ByteString.CopyFrom(payload.Span) };
        if (timeout is { } t)
            request.TimeoutNano = t.Ticks * 100;
        if (metadata is not null)
        {
            foreach (var pair in metadata)
                request.Metadata.Add(new KeyValue { Key = pair.Key, Value = pair.Value });
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (timeout is { } d)
            deadline.CancelAfter(d);

        var completion = new TaskCompletionSource<Response>(TaskCreationOptions.RunContinuationsAsynchronously);
        uint streamId = AllocateStreamId();
        _pending[streamId] = completion;
        try
        {
            if (!_connected)
                throw Closed();
            try
            {
                await _writer.WriteFrameAsync(streamId, TtrpcMessageType.Request, 0, request.ToByteArray(), _closed.Token)
                    .ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
            {
                throw Closed(e);
            }

            Response response;
            try
            {
                response = await completion.Task.WaitAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TtrpcException(TtrpcStatusCode.DeadlineExceeded,
                    $"ttrpc call {service}/{method} got no answer within {timeout}");
            }

            if (response.Status is { Code: not 0 } status)
                throw new TtrpcException((TtrpcStatusCode)status.Code, status.Message);
            return response.Payload.ToByteArray();
        }
        finally
        {
            _pending.TryRemove(streamId, out _);
        }
    }

    /// <summary>Calls a method whose request and response are Google.Protobuf messages.</summary>
    public async Task<TResponse> CallAsync<TResponse>(string service, string method, IMessage request,
        MessageParser<TResponse> responseParser, TimeSpan? timeout = null,
        IEnumerable<KeyValuePair<string, string>>? metadata = null, CancellationToken cancellationToken = default)
        where TResponse : IMessage<TResponse>
    {
        var payload = await CallAsync(service, method, request.ToByteArray(), timeout, metadata, cancellationToken).ConfigureAwait(false);
        try
        {
            return responseParser.ParseFrom(payload);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new TtrpcException(TtrpcStatusCode.Internal, $"ttrpc call {service}/{method}: cannot decode the response: {e.Message}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        _connected = false;
        try { _closed.Cancel(); } catch (ObjectDisposedException) { }
        try { _socket.Shutdown(SocketShutdown.Both); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        await _readLoop.ConfigureAwait(false);
        _stream.Dispose();
        _writer.Dispose();
    }

    private uint AllocateStreamId()
    {
        lock (_streamIdGate)
        {
            uint id = _nextStreamId;
            _nextStreamId += 2;
            return id;
        }
    }

    private async Task ReadLoopAsync()
    {
        Exception? failure = null;
        try
        {
            while (true)
            {
                var frame = await _reader.ReadFrameAsync(_closed.Token).ConfigureAwait(false);
                if (frame is null)
                    break;
                if (frame.Header.Type != TtrpcMessageType.Response)
                    continue;
                if (!_pending.TryGetValue(frame.Header.StreamId, out var completion))
                    continue; // the caller gave up (timeout) before the answer came
                Response response;
                try
                {
                    response = Response.Parser.ParseFrom(frame.Data);
                }
                catch (InvalidProtocolBufferException e)
                {
                    completion.TrySetException(new TtrpcException(TtrpcStatusCode.Internal, $"undecodable ttrpc response: {e.Message}"));
                    continue;
                }
                completion.TrySetResult(response);
            }
        }
        catch (Exception e)
        {
            failure = e;
        }
        finally
        {
            _connected = false;
            foreach (var pair in _pending)
                pair.Value.TrySetException(Closed(failure));
        }
    }

    private static TtrpcException Closed(Exception? cause = null) =>
        cause is null or OperationCanceledException
            ? new TtrpcException(TtrpcStatusCode.Unavailable, "ttrpc connection closed")
            : new TtrpcException(TtrpcStatusCode.Unavailable, $"ttrpc connection closed: {cause.Message}", cause);
}
