namespace Sandbox.Runtime.Sandboxes;

/// <summary>
/// A read-only directory of the guest image with only busybox and mount points (images/build-image.sh): the root of
/// the containers the runtime makes in the guest itself, the Sandbox API's pod namespaces and a template's warm-up
/// container.
/// </summary>
public static class GuestBusyboxRoot
{
    public const string Path = "/usr/share/sandbox/pod-namespaces";
}
