using Sandbox.Vsock;

namespace Sandbox.Agent.Tests;

/// <summary>AF_VSOCK on the host: binding works where the kernel has vsock; connects need a peer, which tests lack.</summary>
public class VsockTests
{
    private static bool HostHasVsock => File.Exists("/dev/vsock");

    [Fact]
    public async Task A_listener_binds_reports_its_port_and_stops()
    {
        if (!HostHasVsock)
        {
            var e = Assert.Throws<VsockException>(() => VsockListener.Bind(VsockEndPoint.AnyCid, 0));
            Assert.Contains("errno", e.Message);
            return;
        }
        var listener = VsockListener.Bind(VsockEndPoint.AnyCid, 0xFFFFFFFF); // VMADDR_PORT_ANY: the kernel picks
        Assert.NotEqual(0xFFFFFFFFu, listener.EndPoint.Port);
        var pending = listener.AcceptAsync();
        listener.Dispose();
        Assert.Null(await pending);
    }

    [Fact]
    public async Task Connect_errors_name_the_cid_and_port_and_cancellation_is_honoured()
    {
        using var cancel = new CancellationTokenSource();
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => VsockConnector.ConnectAsync(1, 5, cancel.Token));

        // cid 1 (local loopback) with nobody listening: refused, reset, timed out or no transport, depending on the kernel
        using var bounded = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        var error = await Record.ExceptionAsync(() => VsockConnector.ConnectAsync(1, 59999, bounded.Token));
        Assert.NotNull(error);
        if (error is VsockException vsock)
        {
            Assert.Equal(1u, vsock.Cid);
            Assert.Equal(59999u, vsock.Port);
            Assert.Contains("cid 1, port 59999", vsock.Message);
        }
        else
        {
            Assert.IsAssignableFrom<OperationCanceledException>(error);
        }
    }
}
