using Sandbox.Vsock;

namespace Sandbox.Agent.Server;

/// <summary>
/// Who may talk to the agent over vsock: the host (CID 2) only. A process in the guest, even a privileged container,
/// that dials the guest's own CID or the local CID 1 arrives from the guest's own CID and is refused, so the agent's
/// API (create containers, exec, the debug console) is never a way out of a container. With hybrid vsock the host's
/// connections come through vhost-device-vsock, which also presents them as CID 2.
/// </summary>
public static class AgentPeerPolicy
{
    public static bool Accepts(VsockEndPoint peer) => peer.Cid == VsockEndPoint.HostCid;

    public static string DescribeRefusal(VsockEndPoint peer) =>
        $"refused a vsock connection from CID {peer.Cid} port {peer.Port}: the agent serves only the host (CID {VsockEndPoint.HostCid})";
}
