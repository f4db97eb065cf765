using Grpc.Core;

namespace Sandbox.Agent.Grpc;

/// <summary>Runs one kind of gRPC method: reads the request message(s), calls the service, writes the response(s).</summary>
public interface IGrpcMethodHandler
{
    string Path { get; }
    Task HandleAsync(GrpcCall call, AgentServerCallContext context);
}

internal static class GrpcRequests
{
    public static async Task<TRequest> ReadSingleAsync<TRequest>(GrpcCall call, Marshaller<TRequest> marshaller, CancellationToken cancellationToken)
    {
        byte[] payload = await call.ReadMessageAsync(cancellationToken)
            ?? throw new RpcException(new Status(StatusCode.Internal, "the request carried no message"));
        return Deserialize(marshaller, payload);
    }

    public static TRequest Deserialize<TRequest>(Marshaller<TRequest> marshaller, byte[] payload)
    {
        try
        {
            return GrpcPayloads.Deserialize(marshaller, payload);
        }
        catch (Exception e)
        {
            throw new RpcException(new Status(StatusCode.Internal, $"cannot parse the request message: {e.Message}"));
        }
    }
}

public sealed class UnaryMethodHandler<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse> handler)
    : IGrpcMethodHandler where TRequest : class where TResponse : class
{
    public string Path => method.FullName;

    public async Task HandleAsync(GrpcCall call, AgentServerCallContext context)
    {
        TRequest request = await GrpcRequests.ReadSingleAsync(call, method.RequestMarshaller, context.CancellationToken);
        TResponse response = await handler(request, context);
        await call.WriteMessageAsync(GrpcPayloads.Serialize(method.ResponseMarshaller, response), context.CancellationToken);
    }
}

public sealed class ServerStreamingMethodHandler<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse> handler)
    : IGrpcMethodHandler where TRequest : class where TResponse : class
{
    public string Path => method.FullName;

    public async Task HandleAsync(GrpcCall call, AgentServerCallContext context)
    {
        TRequest request = await GrpcRequests.ReadSingleAsync(call, method.RequestMarshaller, context.CancellationToken);
        await handler(request, new ResponseStreamWriter<TResponse>(call, method.ResponseMarshaller, context), context);
    }
}

public sealed class ClientStreamingMethodHandler<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse> handler)
    : IGrpcMethodHandler where TRequest : class where TResponse : class
{
    public string Path => method.FullName;

    public async Task HandleAsync(GrpcCall call, AgentServerCallContext context)
    {
        TResponse response = await handler(new RequestStreamReader<TRequest>(call, method.RequestMarshaller, context), context);
        await call.WriteMessageAsync(GrpcPayloads.Serialize(method.ResponseMarshaller, response), context.CancellationToken);
    }
}

/// <summary>Both directions stream: the request messages are read while responses are written.</summary>
public sealed class DuplexStreamingMethodHandler<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse> handler)
    : IGrpcMethodHandler where TRequest : class where TResponse : class
{
    public string Path => method.FullName;

    public Task HandleAsync(GrpcCall call, AgentServerCallContext context) =>
        handler(new RequestStreamReader<TRequest>(call, method.RequestMarshaller, context),
            new ResponseStreamWriter<TResponse>(call, method.ResponseMarshaller, context), context);
}

/// <summary>The request messages of a client-streaming or duplex call, one at a time.</summary>
internal sealed class RequestStreamReader<TRequest>(GrpcCall call, Marshaller<TRequest> marshaller, AgentServerCallContext context)
    : IAsyncStreamReader<TRequest> where TRequest : class
{
    private TRequest? _current;

    public TRequest Current => _current ?? throw new InvalidOperationException("MoveNext has not returned true");

    public async Task<bool> MoveNext(CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, context.CancellationToken);
        byte[]? payload = await call.ReadMessageAsync(linked.Token);
        if (payload == null)
        {
            _current = null;
            return false;
        }
        _current = GrpcRequests.Deserialize(marshaller, payload);
        return true;
    }
}

/// <summary>The response messages of a server-streaming or duplex call.</summary>
internal sealed class ResponseStreamWriter<TResponse>(GrpcCall call, Marshaller<TResponse> marshaller, AgentServerCallContext context)
    : IServerStreamWriter<TResponse> where TResponse : class
{
    public WriteOptions? WriteOptions { get; set; }

    public Task WriteAsync(TResponse message) => WriteAsync(message, context.CancellationToken);

    public async Task WriteAsync(TResponse message, CancellationToken cancellationToken)
    {
        await call.WriteMessageAsync(GrpcPayloads.Serialize(marshaller, message), cancellationToken);
    }
}
