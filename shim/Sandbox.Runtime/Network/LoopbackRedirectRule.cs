namespace Sandbox.Runtime.Network;

/// <summary>
/// The iptables rule that brings CRI PortForward into the VM: containerd's CRI dials localhost:PORT inside the pod's
/// network namespace (on the host), where nothing of the pod listens, since the pod lives in the VM. The rule
/// redirects every TCP connection to 127.0.0.1 made in that namespace to the shim's one listener there
/// (<see cref="ListenerPort"/>), which reads the original port (SO_ORIGINAL_DST) and forwards the connection to
/// localhost:PORT in the guest (<see cref="PodPortForwarder"/>). Nothing else in the namespace dials 127.0.0.1.
/// </summary>
public static class LoopbackRedirectRule
{
    /// <summary>The shim's listener in the pod's namespace. Any port works: a forward of this port itself is read
    /// from SO_ORIGINAL_DST like any other.</summary>
    public const int ListenerPort = 65530;

    private static readonly string[] Rule =
        ["OUTPUT", "-p", "tcp", "-d", "127.0.0.1/32", "-m", "comment", "--comment", "sandbox port-forward", "-j", "REDIRECT", "--to-ports", ListenerPort.ToString()];

    public static NetnsCommand Add() => NetnsCommand.Iptables(["-w", "5", "-t", "nat", "-A", .. Rule]);

    public static NetnsCommand Check() => NetnsCommand.Iptables(["-w", "5", "-t", "nat", "-C", .. Rule]);

    public static NetnsCommand Delete() => NetnsCommand.Iptables(["-w", "5", "-t", "nat", "-D", .. Rule]);
}
