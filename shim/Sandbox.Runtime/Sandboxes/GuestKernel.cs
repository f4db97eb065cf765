namespace Sandbox.Runtime.Sandboxes;

/// <summary>Which of the guest image's two kernels a sandbox boots (<c>[hypervisor.qemu] kernel</c>).</summary>
public enum GuestKernel
{
    /// <summary>Ours (images/kernel/sandbox-guest.config): vmlinux with initramfs.cpio. The default.</summary>
    Sandbox,
    /// <summary>Debian's generic kernel, the fallback: vmlinux-generic with initramfs-generic.cpio (its modules).</summary>
    Generic,
}
