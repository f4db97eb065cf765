using Sandbox.Hypervisors.Jail;
using Sandbox.Native;
using static Sandbox.Native.LibCSupplement;

namespace Sandbox.Jailer;

/// <summary>
/// Leaves the process (uid 0) with only the named capabilities: every other one leaves the bounding set, so that the
/// exec cannot give it back; the permitted and effective sets become exactly the kept ones and the inheritable and
/// ambient sets empty. After the exec the program's permitted set is its bounding set, i.e. the kept capabilities.
/// </summary>
internal static unsafe class CapabilityDrop
{
    private const uint LinuxCapabilityVersion3 = 0x20080522;

    public static void KeepOnly(IReadOnlyList<string> kept)
    {
        ulong keep = 0;
        foreach (var name in kept)
            keep |= 1UL << LinuxCapability.NumberOf(name)!.Value;
        for (int cap = 0; cap < 64; cap++)
        {
            if ((keep & (1UL << cap)) != 0)
                continue;
            if (prctl(PR_CAPBSET_DROP, (nuint)cap, 0, 0, 0) != 0)
            {
                if (Errno.Last == Tmds.Linux.LibC.EINVAL)
                    break; // past the kernel's last capability
                throw new JailException($"cannot drop capability {cap} from the bounding set: {Errno.DescribeLast()}");
            }
        }
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
            throw new JailException($"cannot clear the ambient capabilities: {Errno.DescribeLast()}");
        uint* header = stackalloc uint[2] { LinuxCapabilityVersion3, 0 };
        // two struct __user_cap_data_struct { effective, permitted, inheritable }: bits 0-31, then 32-63
        uint* data = stackalloc uint[6] { (uint)keep, (uint)keep, 0, (uint)(keep >> 32), (uint)(keep >> 32), 0 };
        if ((long)Tmds.Linux.LibC.syscall(SYS_capset, header, data) != 0)
            throw new JailException($"cannot set the capabilities to {string.Join(",", kept)}: {Errno.DescribeLast()}");
    }
}
