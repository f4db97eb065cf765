using System.Net.Sockets;
using System.Text;
using Sandbox.Hypervisors.Qemu;

namespace Sandbox.Hypervisors.Tests;

/// <summary>QmpClient against a scripted QMP server on a Unix socket.</summary>
public sealed class QmpClientTests : IDisposable
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);
    private readonly TempDirectory _dir = new();
    private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private readonly string _path;

    public QmpClientTests()
    {
        _path = Path.Combine(_dir.Path, "qmp.sock");
        _listener.Bind(new UnixDomainSocketEndPoint(_path));
        _listener.Listen(1);
    }

    public void Dispose()
    {
        _listener.Dispose();
        _dir.Dispose();
    }

    /// <summary>Accepts one client, sends the greeting, then for each expected command sends the scripted lines.
    /// Returns the commands received.</summary>
    private async Task<List<string>> ServeAsync(params (string Expect, string[] Reply)[] script)
    {
        using var connection = await _listener.AcceptAsync();
        await using var stream = new NetworkStream(connection);
        using var reader = new StreamReader(stream);
        await using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        await writer.WriteLineAsync("""{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}""");
        var received = new List<string>();
        foreach (var (expect, reply) in script)
        {
            var line = await reader.ReadLineAsync();
            received.Add(line ?? "(eof)");
            Assert.Contains($"\"execute\":\"{expect}\"", line);
            foreach (var r in reply)
                await writer.WriteLineAsync(r);
        }
        return received;
    }

    [Fact]
    public async Task Negotiates_and_skips_events_before_the_reply()
    {
        var server = ServeAsync(
            ("qmp_capabilities", ["""{"return": {}}"""]),
            ("query-status", ["""{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"}""",
                              """{"return": {"status": "running", "singlestep": false, "running": true}}"""]));
        await using (var client = await QmpClient.ConnectAsync(_path, CancellationToken.None).WaitAsync(Guard))
            Assert.Equal("running", await client.QueryStatusAsync(CancellationToken.None).WaitAsync(Guard));
        Assert.Equal(2, (await server.WaitAsync(Guard)).Count);
    }

    [Fact]
    public async Task An_error_reply_carries_its_description()
    {
        var server = ServeAsync(
            ("qmp_capabilities", ["""{"return": {}}"""]),
            ("query-status", ["""{"error": {"class": "CommandNotFound", "desc": "The command query-status has not been found"}}"""]));
        await using var client = await QmpClient.ConnectAsync(_path, CancellationToken.None).WaitAsync(Guard);
        var error = await Assert.ThrowsAsync<QmpException>(() => client.QueryStatusAsync(CancellationToken.None).WaitAsync(Guard));
        Assert.Contains("The command query-status has not been found", error.Message);
        Assert.False(error.ConnectionClosed);
        await server.WaitAsync(Guard);
    }

    [Fact]
    public async Task Quit_accepts_a_close_without_reply()
    {
        var server = ServeAsync(("qmp_capabilities", ["""{"return": {}}"""]), ("quit", []));
        await using var client = await QmpClient.ConnectAsync(_path, CancellationToken.None).WaitAsync(Guard);
        var quit = client.QuitAsync(CancellationToken.None);
        await server.WaitAsync(Guard); // the server closes the connection after reading quit
        await quit.WaitAsync(Guard);
    }

    [Fact]
    public async Task Nothing_listening_is_a_socket_error()
    {
        await Assert.ThrowsAnyAsync<SocketException>(() => QmpClient.ConnectAsync(Path.Combine(_dir.Path, "none.sock"), CancellationToken.None));
    }
}
