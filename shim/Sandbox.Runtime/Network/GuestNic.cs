namespace Sandbox.Runtime.Network;

/// <summary>
/// One network card of the guest, mirroring one veth of the pod's namespace: QEMU backs it with
/// <see cref="TapName"/>; the guest finds it by <see cref="Mac"/> (the veth's) and gives it the veth's name, MTU,
/// addresses and routes (through the agent's UpdateInterface and UpdateRoutes).
/// </summary>
/// <param name="Name">The veth's name (normally eth0), which the guest interface takes.</param>
/// <param name="Addresses">The veth's global addresses (link-local ones the guest derives from the MAC itself).</param>
/// <param name="Routes">The main-table unicast routes through the veth, link routes first.</param>
public sealed record GuestNic(
    string TapName,
    string Name,
    string Mac,
    int Mtu,
    IReadOnlyList<NetnsAddress> Addresses,
    IReadOnlyList<NetnsRoute> Routes);
