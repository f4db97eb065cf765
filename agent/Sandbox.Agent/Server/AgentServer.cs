using System.Net;
using Grpc.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Sandbox.Agent.Grpc;

namespace Sandbox.Agent.Server;

/// <summary>KestrelServer built by hand (no host, no DI) serving gRPC over HTTP/2 cleartext on its endpoints.</summary>
public sealed class AgentServer : IAsyncDisposable
{
    private readonly KestrelServer _kestrel;
    private readonly GrpcHttpApplication _application;

    public AgentServer(EndPoint endPoint, ServerServiceDefinitionBinder bindService, Action<string> log)
        : this([endPoint], bindService, log)
    {
    }

    public AgentServer(IReadOnlyList<EndPoint> endPoints, ServerServiceDefinitionBinder bindService, Action<string> log)
    {
        var methods = new GrpcMethodTable();
        bindService(methods);
        _application = new GrpcHttpApplication(methods, log);

        var options = new KestrelServerOptions { AddServerHeader = false };
        options.Limits.MinRequestBodyDataRate = null;
        options.Limits.MinResponseDataRate = null;
        options.Limits.KeepAliveTimeout = TimeSpan.FromDays(1);
        options.Limits.Http2.InitialConnectionWindowSize = 4 * 1024 * 1024;
        options.Limits.Http2.InitialStreamWindowSize = 2 * 1024 * 1024;
        options.Limits.Http2.MaxStreamsPerConnection = 1000;
        foreach (var endPoint in endPoints)
            options.Listen(endPoint, listen => listen.Protocols = HttpProtocols.Http2);
        _kestrel = new KestrelServer(Options.Create(options), new AgentConnectionListenerFactory(log), NullLoggerFactory.Instance);
    }

    public delegate void ServerServiceDefinitionBinder(ServiceBinderBase binder);

    public Task StartAsync(CancellationToken cancellationToken) => _kestrel.StartAsync(_application, cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => _kestrel.StopAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _kestrel.StopAsync(CancellationToken.None);
        _kestrel.Dispose();
    }
}
