using System.Net;
using System.Net.Sockets;

namespace Sandbox.Vsock;

/// <summary>An AF_VSOCK address: context id (cid) and port.</summary>
public sealed class VsockEndPoint : EndPoint
{
    /// <summary>VMADDR_CID_ANY: bind on every local cid.</summary>
    public const uint AnyCid = 0xFFFFFFFF;
    /// <summary>VMADDR_CID_HOST.</summary>
    public const uint HostCid = 2;

    public VsockEndPoint(uint cid, uint port)
    {
        Cid = cid;
        Port = port;
    }

    public uint Cid { get; }
    public uint Port { get; }

    public override AddressFamily AddressFamily => (AddressFamily)(int)Tmds.Linux.LibC.AF_VSOCK;

    public override string ToString() => Cid == AnyCid ? $"vsock:any:{Port}" : $"vsock:{Cid}:{Port}";

    public override bool Equals(object? obj) => obj is VsockEndPoint other && other.Cid == Cid && other.Port == Port;

    public override int GetHashCode() => HashCode.Combine(Cid, Port);
}
