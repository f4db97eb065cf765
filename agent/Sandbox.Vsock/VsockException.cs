using System.Runtime.InteropServices;

namespace Sandbox.Vsock;

/// <summary>A failed vsock system call: which operation, on which cid/port, and the errno text.</summary>
public sealed class VsockException : IOException
{
    public VsockException(string operation, uint cid, uint port, int errno)
        : base($"vsock {operation} (cid {FormatCid(cid)}, port {port}) failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})")
    {
        Operation = operation;
        Cid = cid;
        Port = port;
        Errno = errno;
    }

    public string Operation { get; }
    public uint Cid { get; }
    public uint Port { get; }
    public int Errno { get; }

    private static string FormatCid(uint cid) => cid == VsockEndPoint.AnyCid ? "any" : cid.ToString();
}
