using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Sandbox.Agent.Grpc;

/// <summary>The <see cref="ServerCallContext"/> of one call: deadline, cancellation, headers and trailers.</summary>
public sealed class AgentServerCallContext(
    string method,
    IHeaderDictionary requestHeaders,
    IHttpResponseFeature response,
    IHttpResponseBodyFeature responseBody,
    DateTime deadline,
    CancellationToken cancellationToken) : ServerCallContext
{
    private Metadata? _requestHeaders;
    private readonly Metadata _responseTrailers = new();

    protected override string MethodCore => method;
    protected override string HostCore => requestHeaders.Host.ToString();
    protected override string PeerCore => "agent-client";
    protected override DateTime DeadlineCore => deadline;
    protected override Metadata RequestHeadersCore => _requestHeaders ??= ToMetadata(requestHeaders);
    protected override CancellationToken CancellationTokenCore => cancellationToken;
    protected override Metadata ResponseTrailersCore => _responseTrailers;
    protected override Status StatusCore { get; set; }
    protected override WriteOptions? WriteOptionsCore { get; set; }
    protected override AuthContext AuthContextCore => new(null, new Dictionary<string, List<AuthProperty>>());

    protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) =>
        throw new NotSupportedException("context propagation is not supported by the agent");

    protected override async Task WriteResponseHeadersAsyncCore(Metadata responseHeaders)
    {
        foreach (var entry in responseHeaders)
        {
            if (!entry.IsBinary) response.Headers.Append(entry.Key, entry.Value);
        }
        await responseBody.StartAsync(cancellationToken);
    }

    private static Metadata ToMetadata(IHeaderDictionary headers)
    {
        var metadata = new Metadata();
        foreach (var header in headers)
        {
            if (header.Key.StartsWith(':') || header.Key.EndsWith("-bin", StringComparison.OrdinalIgnoreCase)) continue;
            foreach (var value in header.Value) metadata.Add(header.Key, value ?? "");
        }
        return metadata;
    }
}
