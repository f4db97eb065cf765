namespace Sandbox.Hypervisors.Qemu;

/// <summary>Arguments of the per-VM vhost-device-vsock daemon (hybrid vsock).</summary>
public static class VsockDaemonCommandLine
{
    public static IReadOnlyList<string> Build(QemuStateFiles files, uint guestCid = QemuLaunchSpec.HybridGuestCid) =>
    [
        "--guest-cid", guestCid.ToString(),
        "--socket", files.VhostUserVsockSocket,
        "--uds-path", files.HybridVsockSocket,
    ];
}
