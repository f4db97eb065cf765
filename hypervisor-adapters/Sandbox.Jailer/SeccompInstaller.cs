using Sandbox.Hypervisors.Jail;
using Sandbox.Native;
using static Sandbox.Native.LibCSupplement;

namespace Sandbox.Jailer;

/// <summary>Loads a BPF program as this thread's seccomp filter (no_new_privs first, which the kernel requires of a
/// process without CAP_SYS_ADMIN, and which the shim has already set).</summary>
internal static unsafe class SeccompInstaller
{
    public static void Install(IReadOnlyList<BpfInstruction> program)
    {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            throw new JailException($"cannot set no_new_privs: {Errno.DescribeLast()}");
        var instructions = program.ToArray();
        fixed (BpfInstruction* filter = instructions)
        {
            // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
            byte* fprog = stackalloc byte[16];
            *(ushort*)fprog = (ushort)instructions.Length;
            *(BpfInstruction**)(fprog + 8) = filter;
            if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, (nuint)fprog, 0, 0) != 0)
                throw new JailException($"cannot install the seccomp filter: {Errno.DescribeLast()} (does the kernel have CONFIG_SECCOMP_FILTER?)");
        }
    }
}
