using System.Net.Sockets;
using Google.Protobuf;
using Sandbox.Ttrpc.Protocol;

namespace Sandbox.Ttrpc;

/// <summary>One accepted connection: reads request frames, dispatches each concurrently, writes responses.</summary>
internal sealed class TtrpcServerConnection
{
    private readonly TtrpcServer _server;
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly TtrpcFrameReader _reader;
    private readonly TtrpcFrameWriter _writer;
    private readonly CancellationTokenSource _closed;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TtrpcServerConnection(TtrpcServer server, Socket socket)
    {
        _server = server;
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new TtrpcFrameReader(_stream);
        _writer = new TtrpcFrameWriter(_stream);
        _closed = new CancellationTokenSource(); // not linked to the server: the server closes each connection itself
    }

    /// <summary>Completes when the read loop has ended and the socket is closed.</summary>
    public Task Completion => _completion.Task;

    public void Close()
    {
        try { _closed.Cancel(); } catch (ObjectDisposedException) { }
        try { _socket.Shutdown(SocketShutdown.Both); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
    }

    public async Task RunAsync()
    {
        try
        {
            while (!_closed.IsCancellationRequested)
            {
                var frame = await _reader.ReadFrameAsync(_closed.Token).ConfigureAwait(false);
                if (frame is null)
                    break;
                if (frame.Header.Type != TtrpcMessageType.Request)
                    continue; // responses and stream data are not for a unary server; ignored as ttrpc does
                Dispatch(frame);
            }
        }
        catch (TtrpcProtocolException e)
        {
            _server.Log($"ttrpc: closing a connection that is not speaking ttrpc: {e.Message}");
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // the peer went away or the server stops
        }
        finally
        {
            try { _closed.Cancel(); } catch (ObjectDisposedException) { }
            _stream.Dispose();
            _completion.TrySetResult();
        }
    }

    private void Dispatch(TtrpcFrame frame)
    {
        uint streamId = frame.Header.StreamId;
        if (frame.WasDiscarded)
        {
            _ = RespondAsync(streamId, Error(TtrpcStatusCode.ResourceExhausted,
                $"message length {frame.Header.Length} exceed maximum message size of {TtrpcFrameHeader.MaxDataLength}"));
            return;
        }
        if (streamId % 2 == 0)
        {
            _ = RespondAsync(streamId, Error(TtrpcStatusCode.InvalidArgument, "StreamID must be odd for client initiated streams"));
            return;
        }

        Request request;
        try
        {
            request = Request.Parser.ParseFrom(frame.Data);
        }
        catch (InvalidProtocolBufferException e)
        {
            _ = RespondAsync(streamId, Error(TtrpcStatusCode.InvalidArgument, $"unmarshal request error: {e.Message}"));
            return;
        }

        _server.RequestStarted();
        _ = Task.Run(() => HandleAsync(streamId, request));
    }

    private async Task HandleAsync(uint streamId, Request request)
    {
        try
        {
            var response = await InvokeAsync(request).ConfigureAwait(false);
            await RespondAsync(streamId, response).ConfigureAwait(false);
        }
        finally
        {
            // counted until the answer is on the wire, so that a graceful shutdown does not cut it off
            _server.RequestFinished();
        }
    }

    private async Task<Response> InvokeAsync(Request request)
    {
        var handler = _server.Registry.Find(request.Service, request.Method);
        if (handler is null)
        {
            return _server.Registry.HasService(request.Service)
                ? Error(TtrpcStatusCode.Unimplemented, $"method {request.Method}")
                : Error(TtrpcStatusCode.Unimplemented, $"service {request.Service}");
        }

        TimeSpan? timeout = request.TimeoutNano > 0 ? TimeSpan.FromTicks(Math.Max(1, request.TimeoutNano / 100)) : null;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_closed.Token);
        if (timeout is { } t)
            deadline.CancelAfter(t);
        var context = new TtrpcCallContext(request.Service, request.Method, TtrpcMetadata.FromRequest(request), timeout, deadline.Token);

        try
        {
            var payload = await handler(request.Payload.Memory, context).ConfigureAwait(false);
            return new Response { Payload = ByteString.CopyFrom(payload) };
        }
        catch (TtrpcException e)
        {
            return Error(e.Code, e.Message);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            return _closed.IsCancellationRequested
                ? Error(TtrpcStatusCode.Canceled, "context canceled")
                : Error(TtrpcStatusCode.DeadlineExceeded, "context deadline exceeded");
        }
        catch (Exception e)
        {
            _server.Log($"ttrpc: {request.Service}/{request.Method} failed: {e}");
            return Error(TtrpcStatusCode.Unknown, e.Message);
        }
    }

    private async Task RespondAsync(uint streamId, Response response)
    {
        try
        {
            await _writer.WriteFrameAsync(streamId, TtrpcMessageType.Response, 0, response.ToByteArray(), CancellationToken.None)
                .ConfigureAwait(false);
        }
        catch (TtrpcException e)
        {
            // the handler's response is too large: tell the caller instead
            _server.Log($"ttrpc: response on stream {streamId} not sent: {e.Message}");
            await RespondAsync(streamId, Error(e.Code, e.Message)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            // the caller has gone; nothing to answer to
        }
    }

    private static Response Error(TtrpcStatusCode code, string message) =>
        new() { Status = new RpcStatus { Code = (int)code, Message = message } };
}
