using Containerd.Task.V2;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Sandbox.Shim.Cli;
using Sandbox.Shim.Daemon;
using Sandbox.Shim.Delete;
using Sandbox.Shim.Start;
using Sandbox.Shim.Tasks;
using Sandbox.Ttrpc;

namespace Sandbox.Shim.Tests;

public sealed class DeleteCommandTests : IDisposable
{
    private readonly string _bundle = Directory.CreateTempSubdirectory("del-").FullName;

    public void Dispose()
    {
        if (IsRootfsMounted())
            Sandbox.Runtime.Sandboxes.MountTable.DetachAll(Path.Combine(_bundle, "rootfs"));
        Directory.Delete(_bundle, recursive: true);
    }

    [Fact]
    public void DeleteResponse_encodes_like_the_runc_shim()
    {
        // bytes observed from containerd-shim-runc-v2 `delete` (spec section 1.5)
        var response = new DeleteResponse
        {
            Pid = 10919,
            ExitStatus = 137,
            ExitedAt = new Timestamp { Seconds = 1795981798, Nanos = 222889463 },
        };
        Assert.Equal("08a755108901" + "1a0b08e683b2d80610f78ba46a", Convert.ToHexStringLower(response.ToByteArray()));
    }

    [Fact]
    public async Task Without_a_daemon_it_unmounts_the_rootfs_and_prints_a_DeleteResponse()
    {
        await MountTmpfsRootfsAsync();
        File.WriteAllText(Path.Combine(_bundle, "init.pid"), "4242");
        var before = DateTime.UtcNow;

        var response = await RunDeleteAsync("c1");

        Assert.Equal(4242u, response.Pid);
        Assert.Equal(137u, response.ExitStatus);
        Assert.True(response.ExitedAt.ToDateTime() >= before.AddSeconds(-1));
        Assert.False(IsRootfsMounted());
    }

    [Fact]
    public async Task Is_idempotent()
    {
        await MountTmpfsRootfsAsync();
        await RunDeleteAsync("c1");
        var second = await RunDeleteAsync("c1");
        Assert.Equal(137u, second.ExitStatus);
        Assert.Equal(0u, second.Pid);
        Assert.False(IsRootfsMounted());
    }

    [Fact]
    public async Task Leaves_a_container_alone_while_a_live_daemon_still_serves_it()
    {
        await MountTmpfsRootfsAsync();
        await using var daemon = await FakeDaemonAsync(knownIds: "c1");

        await RunDeleteAsync("c1");

        Assert.True(IsRootfsMounted());
        Assert.True(File.Exists(daemon.SocketPath));
    }

    [Fact]
    public async Task Cleans_up_when_the_live_daemon_no_longer_has_the_container()
    {
        await MountTmpfsRootfsAsync();
        await using var daemon = await FakeDaemonAsync(knownIds: "other");

        await RunDeleteAsync("c1");

        Assert.False(IsRootfsMounted());
        Assert.True(File.Exists(daemon.SocketPath)); // the daemon serves other containers: its socket stays
    }

    [Fact]
    public async Task Removes_the_socket_of_a_dead_daemon()
    {
        // a socket file nobody listens on, as a SIGKILLed daemon leaves it (python's close does not unlink, .NET's does)
        string stale = Path.Combine(_bundle, "stale.sock");
        await RunAsync("/usr/bin/python3", "-c", $"import socket; s=socket.socket(socket.AF_UNIX); s.bind('{stale}')");
        Assert.True(File.Exists(stale));
        AddressFile.Write(_bundle, ShimSocketAddress.ToAddress(stale));

        await RunDeleteAsync("c1");

        Assert.False(File.Exists(stale));
    }

    private async Task<DeleteResponse> RunDeleteAsync(string id)
    {
        var flags = new ShimFlags { Namespace = "default", Id = id, Bundle = _bundle, Address = "/none.sock", Action = "delete" };
        var stdout = new MemoryStream();
        int exitCode = await DeleteCommand.RunAsync(flags, stdout, new ShimLog("default", id, ShimLogLevel.Silent));
        Assert.Equal(0, exitCode);
        return DeleteResponse.Parser.ParseFrom(stdout.ToArray());
    }

    private async Task<FakeDaemon> FakeDaemonAsync(params string[] knownIds)
    {
        string socketPath = Path.Combine(Directory.CreateTempSubdirectory("dmn-").FullName, "d.sock");
        var registry = new TtrpcServiceRegistry();
        registry.Register<StateRequest, StateResponse>(TaskService.ServiceName, "State", StateRequest.Parser, (request, _) =>
            knownIds.Contains(request.Id)
                ? Task.FromResult(new StateResponse { Id = request.Id })
                : throw new TtrpcException(TtrpcStatusCode.NotFound, "container not created"));
        var server = new TtrpcServer(registry);
        server.Start(socketPath);
        AddressFile.Write(_bundle, ShimSocketAddress.ToAddress(socketPath));
        await Task.CompletedTask;
        return new FakeDaemon(server, socketPath);
    }

    private async Task MountTmpfsRootfsAsync()
    {
        Directory.CreateDirectory(Path.Combine(_bundle, "rootfs"));
        await RunAsync("mount", "-t", "tmpfs", "tmpfs", Path.Combine(_bundle, "rootfs"));
        Assert.True(IsRootfsMounted());
    }

    private bool IsRootfsMounted() =>
        File.ReadAllLines("/proc/self/mountinfo").Any(line => line.Split(' ')[4] == Path.Combine(_bundle, "rootfs"));

    private static async Task RunAsync(string file, params string[] args)
    {
        var result = await Containerd.ExternalCommand.RunAsync(file, args, TimeSpan.FromSeconds(30));
        Assert.True(result.ExitCode == 0, result.ToString());
    }

    private sealed class FakeDaemon : IAsyncDisposable
    {
        private readonly TtrpcServer _server;

        public FakeDaemon(TtrpcServer server, string socketPath)
        {
            _server = server;
            SocketPath = socketPath;
        }

        public string SocketPath { get; }

        public async ValueTask DisposeAsync()
        {
            await _server.DisposeAsync();
            Directory.Delete(Path.GetDirectoryName(SocketPath)!, recursive: true);
        }
    }
}
