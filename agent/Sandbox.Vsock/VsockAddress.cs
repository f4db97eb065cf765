using Tmds.Linux;
using static Sandbox.Native.LibCSupplement;

namespace Sandbox.Vsock;

/// <summary>struct sockaddr_vm for a (cid, port), to pass as <c>sockaddr*</c> to bind, connect and accept4.</summary>
internal static class VsockAddress
{
    public static unsafe socklen_t Length => (socklen_t)sizeof(sockaddr_vm);

    public static sockaddr_vm Of(uint cid, uint port) =>
        new() { svm_family = (ushort)(int)LibC.AF_VSOCK, svm_port = port, svm_cid = cid };
}
