using Sandbox.Shim.Daemon;
using Sandbox.Shim.Start;
using Sandbox.Ttrpc;

namespace Sandbox.Shim.Tests;

/// <summary>How `start` claims the group's socket: new, already served (reuse), or stale (replace).</summary>
public sealed class StartSocketTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sts-").FullName;
    private readonly ShimLog _log = new("default", "t", ShimLogLevel.Silent);

    private string SocketPath => Path.Combine(_dir, "group.sock");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_free_path_gets_a_new_listening_socket()
    {
        using var listener = await StartCommand.ListenOrFindDaemonAsync(SocketPath, _log);
        Assert.NotNull(listener);
        Assert.True(await SocketProbe.IsConnectableAsync(SocketPath, TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task A_live_daemon_is_reused()
    {
        using var daemon = TtrpcServer.ListenUnix(SocketPath);
        var listener = await StartCommand.ListenOrFindDaemonAsync(SocketPath, _log);
        Assert.Null(listener);
        Assert.True(await SocketProbe.IsConnectableAsync(SocketPath, TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task A_stale_socket_file_is_replaced()
    {
        // a socket file without a listener, as a SIGKILLed daemon leaves it (python's close does not unlink)
        var made = await Containerd.ExternalCommand.RunAsync("/usr/bin/python3",
            new[] { "-c", $"import socket; socket.socket(socket.AF_UNIX).bind('{SocketPath}')" }, TimeSpan.FromSeconds(30));
        Assert.True(made.ExitCode == 0, made.ToString());
        Assert.False(await SocketProbe.IsConnectableAsync(SocketPath, TimeSpan.FromSeconds(5)));

        using var listener = await StartCommand.ListenOrFindDaemonAsync(SocketPath, _log);

        Assert.NotNull(listener);
        Assert.True(await SocketProbe.IsConnectableAsync(SocketPath, TimeSpan.FromSeconds(5)));
    }
}
