using System.Net.Sockets;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Sandbox.Cri.Tests.Api;

namespace Sandbox.Cri.Tests.Client;

/// <summary>
/// A CRI v1 client on containerd's gRPC Unix socket (h2c to http://localhost through the socket): the generated
/// RuntimeService and ImageService clients, every call bounded by <see cref="DefaultDeadlineInterceptor"/>.
/// </summary>
public sealed class CriConnection : IDisposable
{
    private readonly GrpcChannel _channel;

    private CriConnection(string socketPath, GrpcChannel channel, TimeSpan defaultDeadline)
    {
        SocketPath = socketPath;
        _channel = channel;
        var invoker = channel.Intercept(new DefaultDeadlineInterceptor(defaultDeadline));
        Runtime = new RuntimeService.RuntimeServiceClient(invoker);
        Images = new ImageService.ImageServiceClient(invoker);
    }

    public string SocketPath { get; }

    public RuntimeService.RuntimeServiceClient Runtime { get; }

    public ImageService.ImageServiceClient Images { get; }

    /// <summary>No connection is made until the first call.</summary>
    public static CriConnection Open(string socketPath, TimeSpan defaultDeadline)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch (SocketException e)
                {
                    socket.Dispose();
                    throw new IOException($"cannot connect to the CRI socket {socketPath}: {e.Message} (is containerd running with the CRI plugin?)", e);
                }
            },
        };
        var channel = GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = 32 * 1024 * 1024, // ExecSync output is capped at 16 MiB per stream by CRI
        });
        return new CriConnection(socketPath, channel, defaultDeadline);
    }

    public void Dispose() => _channel.Dispose();
}

/// <summary>Gives every unary call without a deadline of its own a default one, so that no CRI call can hang a test.</summary>
public sealed class DefaultDeadlineInterceptor(TimeSpan deadline) : Interceptor
{
    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request,
        ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
    {
        if (context.Options.Deadline is null)
        {
            context = new ClientInterceptorContext<TRequest, TResponse>(context.Method, context.Host,
                context.Options.WithDeadline(DateTime.UtcNow + deadline));
        }
        return continuation(request, context);
    }
}
