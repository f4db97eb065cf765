using Grpc.Core;

namespace Sandbox.Agent.Grpc;

/// <summary>
/// Collects the methods of a generated service (through its BindService(ServiceBinderBase, TService)) into a table
/// keyed by the HTTP/2 path "/package.Service/Method".
/// </summary>
public sealed class GrpcMethodTable : ServiceBinderBase
{
    private readonly Dictionary<string, IGrpcMethodHandler> _handlers = new(StringComparer.Ordinal);

    public bool TryGet(string path, out IGrpcMethodHandler handler) => _handlers.TryGetValue(path, out handler!);

    public IEnumerable<string> Paths => _handlers.Keys;

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler)
    {
        if (handler != null) _handlers.Add(method.FullName, new UnaryMethodHandler<TRequest, TResponse>(method, handler));
    }

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler)
    {
        if (handler != null) _handlers.Add(method.FullName, new ServerStreamingMethodHandler<TRequest, TResponse>(method, handler));
    }

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler)
    {
        if (handler != null) _handlers.Add(method.FullName, new ClientStreamingMethodHandler<TRequest, TResponse>(method, handler));
    }

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler)
    {
        if (handler != null) _handlers.Add(method.FullName, new DuplexStreamingMethodHandler<TRequest, TResponse>(method, handler));
    }
}
