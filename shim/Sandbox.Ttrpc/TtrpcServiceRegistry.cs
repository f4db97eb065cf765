using Google.Protobuf;

namespace Sandbox.Ttrpc;

/// <summary>Serves one method: takes the raw request payload, returns the raw response payload.</summary>
public delegate Task<byte[]> TtrpcMethodHandler(ReadOnlyMemory<byte> payload, TtrpcCallContext context);

/// <summary>The methods a <see cref="TtrpcServer"/> serves, by service name and method name.</summary>
public sealed class TtrpcServiceRegistry
{
    private readonly Dictionary<string, Dictionary<string, TtrpcMethodHandler>> _services = new(StringComparer.Ordinal);

    /// <summary>Registers a raw handler. Registration must finish before the server starts.</summary>
    public void Register(string service, string method, TtrpcMethodHandler handler)
    {
        ArgumentException.ThrowIfNullOrEmpty(service);
        ArgumentException.ThrowIfNullOrEmpty(method);
        ArgumentNullException.ThrowIfNull(handler);
        if (!_services.TryGetValue(service, out var methods))
        {
            methods = new Dictionary<string, TtrpcMethodHandler>(StringComparer.Ordinal);
            _services.Add(service, methods);
        }
        if (!methods.TryAdd(method, handler))
            throw new InvalidOperationException($"ttrpc method {service}/{method} is already registered");
    }

    /// <summary>
    /// Registers a handler for Google.Protobuf messages. A payload that does not parse as
    /// <typeparamref name="TRequest"/> is answered with InvalidArgument.
    /// </summary>
    public void Register<TRequest, TResponse>(string service, string method, MessageParser<TRequest> requestParser,
        Func<TRequest, TtrpcCallContext, Task<TResponse>> handler)
        where TRequest : IMessage<TRequest>
        where TResponse : IMessage<TResponse>
    {
        ArgumentNullException.ThrowIfNull(requestParser);
        ArgumentNullException.ThrowIfNull(handler);
        Register(service, method, async (payload, context) =>
        {
            TRequest request;
            try
            {
                request = requestParser.ParseFrom(payload.Span);
            }
            catch (InvalidProtocolBufferException e)
            {
                throw new TtrpcException(TtrpcStatusCode.InvalidArgument,
                    $"unmarshal request error: {service}/{method}: {e.Message}");
            }
            var response = await handler(request, context).ConfigureAwait(false);
            return response.ToByteArray();
        });
    }

    internal bool HasService(string service) => _services.ContainsKey(service);

    internal TtrpcMethodHandler? Find(string service, string method) =>
        _services.TryGetValue(service, out var methods) && methods.TryGetValue(method, out var handler) ? handler : null;
}
