using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Sandbox.Ttrpc;

/// <summary>The SO_PEERCRED credentials of the process at the other end of a connected Unix socket.</summary>
public readonly record struct UnixPeerCredentials(int ProcessId, uint UserId, uint GroupId)
{
    private const int SolSocket = 1;
    private const int SoPeerCred = 17;

    public static UnixPeerCredentials Of(Socket socket)
    {
        Span<byte> ucred = stackalloc byte[12];
        int length = socket.GetRawSocketOption(SolSocket, SoPeerCred, ucred);
        if (length < 12)
            throw new SocketException((int)SocketError.ProtocolNotSupported);
        return new UnixPeerCredentials(
            BinaryPrimitives.ReadInt32LittleEndian(ucred),
            BinaryPrimitives.ReadUInt32LittleEndian(ucred[4..]),
            BinaryPrimitives.ReadUInt32LittleEndian(ucred[8..]));
    }

    /// <summary>The effective user id of this process.</summary>
    public static uint EffectiveUserIdOfThisProcess() => PeerCredentialsNativeMethods.geteuid();
}

internal static partial class PeerCredentialsNativeMethods
{
    [LibraryImport("libc")]
    internal static partial uint geteuid();
}
