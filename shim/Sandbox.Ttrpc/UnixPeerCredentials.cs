using System.Net.Sockets;
using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Sandbox.Ttrpc;

/// <summary>The SO_PEERCRED credentials of the process at the other end of a connected Unix socket.</summary>
public readonly record struct UnixPeerCredentials(int ProcessId, uint UserId, uint GroupId)
{
    public static unsafe UnixPeerCredentials Of(Socket socket)
    {
        Span<byte> buffer = stackalloc byte[sizeof(ucred)];
        int length = socket.GetRawSocketOption(LibC.SOL_SOCKET, LibC.SO_PEERCRED, buffer);
        if (length < sizeof(ucred))
            throw new SocketException((int)SocketError.ProtocolNotSupported);
        var credentials = MemoryMarshal.Read<ucred>(buffer);
        return new UnixPeerCredentials(credentials.pid, credentials.uid, credentials.gid);
    }

    /// <summary>The effective user id of this process.</summary>
    public static uint EffectiveUserIdOfThisProcess() => LibC.geteuid();
}
