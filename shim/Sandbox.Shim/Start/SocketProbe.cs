using System.Net.Sockets;

namespace Sandbox.Shim.Start;

/// <summary>Whether a Unix socket path has a live listener.</summary>
public static class SocketProbe
{
    public static async Task<bool> IsConnectableAsync(string path, TimeSpan timeout)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancel.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return false;
        }
    }
}
