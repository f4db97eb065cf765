using Sandbox.Hypervisors.Jail;
using Sandbox.Native;
using static Tmds.Linux.LibC;

namespace Sandbox.Jailer;

/// <summary>
/// Attaches to existing tap devices while the jailer still has CAP_NET_ADMIN, and leaves each open at its agreed
/// descriptor number without close-on-exec, so that QEMU (<c>-netdev tap,fd=N</c>) needs neither /dev/net/tun nor the
/// capability. The flags are QEMU's own for a single-queue tap: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR.
/// </summary>
internal static unsafe class TapOpener
{
    private const int TUNSETIFF = 0x400454ca;
    private const short IFF_TAP = 0x0002;
    private const short IFF_NO_PI = 0x1000;
    private const short IFF_VNET_HDR = 0x4000;
    private const int IfNameSize = 16;

    public static void Open(IReadOnlyList<JailTap> taps)
    {
        byte* request = stackalloc byte[40]; // struct ifreq: the name, then the flags
        foreach (var tap in taps)
        {
            if (fcntl(tap.Descriptor, F_GETFD) >= 0)
                throw new JailException($"descriptor {tap.Descriptor} for tap {tap.Name} is already in use");
            int fd = LibCStrings.open("/dev/net/tun", O_RDWR | O_CLOEXEC);
            if (fd < 0)
                throw new JailException($"cannot open /dev/net/tun for tap {tap.Name}: {Errno.DescribeLast()} (is the tun module loaded?)");
            new Span<byte>(request, 40).Clear();
            var name = System.Text.Encoding.ASCII.GetBytes(tap.Name);
            if (name.Length >= IfNameSize)
                throw new JailException($"tap name {tap.Name} is longer than {IfNameSize - 1} bytes");
            name.CopyTo(new Span<byte>(request, IfNameSize));
            *(short*)(request + IfNameSize) = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
            if (ioctl(fd, TUNSETIFF, (void*)request) != 0)
                throw new JailException($"cannot attach to tap {tap.Name}: {Errno.DescribeLast()} (does it exist in the VM's network namespace?)");
            if (dup2(fd, tap.Descriptor) < 0)
                throw new JailException($"cannot move tap {tap.Name} to descriptor {tap.Descriptor}: {Errno.DescribeLast()}");
            close(fd);
        }
    }
}
