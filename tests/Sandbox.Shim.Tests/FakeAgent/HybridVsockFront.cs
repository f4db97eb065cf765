using System.Net.Sockets;
using System.Text;

namespace Sandbox.Shim.Tests.FakeAgent;

/// <summary>
/// The host side of a hybrid vsock, as vhost-device-vsock serves it: a Unix socket where the client writes
/// "CONNECT &lt;port&gt;\n" and reads "OK &lt;n&gt;\n", then talks to the guest. Here the "guest" is a Unix socket
/// served in this process (the fake agent), and each connection is piped to it.
/// </summary>
internal sealed class HybridVsockFront : IAsyncDisposable
{
    private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private readonly string _backendPath;
    private readonly CancellationTokenSource _stop = new();
    private Task _accepting = Task.CompletedTask;

    public HybridVsockFront(string frontPath, string backendPath)
    {
        FrontPath = frontPath;
        _backendPath = backendPath;
    }

    public string FrontPath { get; }

    public void Start()
    {
        _listener.Bind(new UnixDomainSocketEndPoint(FrontPath));
        _listener.Listen(16);
        _accepting = AcceptAsync();
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptAsync(_stop.Token);
                _ = PipeAsync(client);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task PipeAsync(Socket client)
    {
        using var _ = client;
        using var backend = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            var line = new StringBuilder();
            var one = new byte[1];
            while (line.Length < 64 && await client.ReceiveAsync(one, _stop.Token) == 1 && one[0] != '\n')
                line.Append((char)one[0]);
            if (!line.ToString().StartsWith("CONNECT ", StringComparison.Ordinal))
                return;
            await backend.ConnectAsync(new UnixDomainSocketEndPoint(_backendPath), _stop.Token);
            await client.SendAsync("OK 1\n"u8.ToArray(), _stop.Token);
            await using var clientStream = new NetworkStream(client, ownsSocket: false);
            await using var backendStream = new NetworkStream(backend, ownsSocket: false);
            var up = clientStream.CopyToAsync(backendStream, _stop.Token);
            var down = backendStream.CopyToAsync(clientStream, _stop.Token);
            await Task.WhenAny(up, down);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        await _accepting;
        File.Delete(FrontPath);
    }
}
