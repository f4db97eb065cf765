using System.Net;
using System.Net.Sockets;
using Sandbox.Vsock;

namespace Sandbox.Agent;

/// <summary>Where the agent listens: "vsock:PORT" (any cid) or "unix:/path.sock".</summary>
public sealed record ListenAddress(EndPoint EndPoint, string Display)
{
    public const uint DefaultVsockPort = 1024;

    public static ListenAddress Default => Vsock(DefaultVsockPort);

    public static ListenAddress Vsock(uint port) => new(new VsockEndPoint(VsockEndPoint.AnyCid, port), $"vsock:{port}");

    public static bool TryParse(string text, out ListenAddress address, out string error)
    {
        address = Default;
        error = "";
        if (text.StartsWith("vsock:", StringComparison.Ordinal))
        {
            if (!uint.TryParse(text.AsSpan(6), out uint port) || port == 0)
            {
                error = $"invalid vsock port in '{text}' (expected vsock:PORT, PORT a positive integer)";
                return false;
            }
            address = Vsock(port);
            return true;
        }
        if (text.StartsWith("unix:", StringComparison.Ordinal))
        {
            string path = text[5..];
            if (path.Length == 0)
            {
                error = $"missing socket path in '{text}' (expected unix:/path.sock)";
                return false;
            }
            address = new ListenAddress(new UnixDomainSocketEndPoint(path), text);
            return true;
        }
        error = $"unknown listen address '{text}' (expected vsock:PORT or unix:/path.sock)";
        return false;
    }
}
