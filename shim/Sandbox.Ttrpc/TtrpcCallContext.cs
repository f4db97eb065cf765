namespace Sandbox.Ttrpc;

/// <summary>What a handler knows about the call it serves.</summary>
public sealed class TtrpcCallContext
{
    public TtrpcCallContext(string service, string method, TtrpcMetadata metadata, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        Service = service;
        Method = method;
        Metadata = metadata;
        Timeout = timeout;
        CancellationToken = cancellationToken;
    }

    public string Service { get; }

    public string Method { get; }

    public TtrpcMetadata Metadata { get; }

    /// <summary>The caller's remaining deadline (<c>timeout_nano</c>), or null when it set none.</summary>
    public TimeSpan? Timeout { get; }

    /// <summary>Cancelled when the caller's deadline passes, the connection closes or the server stops.</summary>
    public CancellationToken CancellationToken { get; }
}
