using System.Net.Sockets;
using System.Text;
using Sandbox.Runtime.Agent;

namespace Sandbox.UnitTests;

/// <summary>The hybrid vsock handshake against a Unix socket server that plays vhost-device-vsock.</summary>
public sealed class HybridVsockDialerTests : IDisposable
{
    private readonly string _socketPath = Path.Combine(Path.GetTempPath(), $"hv-{Guid.NewGuid():N}.sock");
    private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);

    public HybridVsockDialerTests()
    {
        _listener.Bind(new UnixDomainSocketEndPoint(_socketPath));
        _listener.Listen();
    }

    private async Task<string> ServeOnceAsync(string reply, byte[]? after = null)
    {
        using var peer = await _listener.AcceptAsync();
        var request = new StringBuilder();
        var one = new byte[1];
        while (await peer.ReceiveAsync(one) == 1 && one[0] != '\n')
            request.Append((char)one[0]);
        var bytes = Encoding.ASCII.GetBytes(reply).Concat(after ?? []).ToArray();
        await peer.SendAsync(bytes);
        await Task.Delay(100);
        return request.ToString();
    }

    [Fact]
    public async Task Sends_CONNECT_and_keeps_the_bytes_that_follow_OK()
    {
        var server = ServeOnceAsync("OK 1073741824\n", Encoding.ASCII.GetBytes("PRI * HTTP/2.0"));
        await using var stream = await new HybridVsockDialer(_socketPath, 1024).DialAsync(CancellationToken.None);
        var buffer = new byte[14];
        await stream.ReadExactlyAsync(buffer);
        Assert.Equal("PRI * HTTP/2.0", Encoding.ASCII.GetString(buffer));
        Assert.Equal("CONNECT 1024", await server);
    }

    [Fact]
    public async Task A_reply_other_than_OK_is_an_error_naming_the_socket()
    {
        var server = ServeOnceAsync("FAILURE\n");
        var e = await Assert.ThrowsAsync<IOException>(() => new HybridVsockDialer(_socketPath, 1024).DialAsync(CancellationToken.None));
        Assert.Contains(_socketPath, e.Message);
        Assert.Contains("FAILURE", e.Message);
        await server;
    }

    [Fact]
    public async Task A_close_during_the_handshake_is_an_error()
    {
        var server = Task.Run(async () =>
        {
            using var peer = await _listener.AcceptAsync();
        });
        await Assert.ThrowsAsync<IOException>(() => new HybridVsockDialer(_socketPath, 1024).DialAsync(CancellationToken.None));
        await server;
    }

    [Fact]
    public async Task No_socket_is_an_error_naming_the_socket()
    {
        var e = await Assert.ThrowsAsync<IOException>(() =>
            new HybridVsockDialer(_socketPath + ".missing", 1024).DialAsync(CancellationToken.None));
        Assert.Contains(".missing", e.Message);
    }

    public void Dispose()
    {
        _listener.Dispose();
        File.Delete(_socketPath);
    }
}
