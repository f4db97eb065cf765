using System.Runtime.InteropServices;

namespace Sandbox.Hypervisors.Jail;

/// <summary>One classic BPF instruction (struct sock_filter).</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct BpfInstruction(ushort Code, byte JumpTrue, byte JumpFalse, uint K);

/// <summary>
/// The seccomp filter sandbox-jailer installs before it execs QEMU or a helper (x86-64). QEMU stacks its own
/// <c>-sandbox</c> filter on top; the kernel applies the stricter answer of the two. Everything not named here is
/// allowed; what is named is what a process that took over QEMU or vhost-device-vsock could use against the host and
/// what neither ever calls:
/// <list type="bullet">
/// <item>other processes: ptrace, process_vm_readv/writev, pidfd_open/getfd/send_signal, kcmp, tkill; kill,
/// rt_sigqueueinfo, tgkill and rt_tgsigqueueinfo only to its own pid (the uid stays 0, so without this a VMM could
/// signal every root process on the host);</item>
/// <item>the mount table and namespaces: mount and the new mount API, umount2, pivot_root, chroot, unshare, setns;</item>
/// <item>the kernel: module loading, kexec, bpf, perf_event_open, the keyring, iopl/ioperm, swap, reboot, acct,
/// syslog, the clocks, quotactl, open_by_handle_at, userfaultfd, vhangup, uselib.</item>
/// </list>
/// A denied call fails with EPERM; a call of another architecture (x32, i386) kills the process. With
/// <c>unixSocketsOnly</c>, socket and socketpair also fail (EAFNOSUPPORT) for every family but AF_UNIX. With
/// <c>refuseSetIdModes</c>, every call that sets a file's mode (the chmod family, and open, creat, mkdir and mknod
/// when they create) fails with EPERM when the mode has S_ISUID or S_ISGID (QEMU serving a 9p share as root would
/// otherwise make setuid-root files on the host when the guest asks); openat2, whose mode the filter cannot see, fails
/// with ENOSYS (glibc and QEMU then use openat).
/// </summary>
public static class SeccompDenyFilter
{
    public const uint AuditArchX8664 = 0xC000003E;
    private const uint X32SyscallBit = 0x40000000;
    public const uint RetKillProcess = 0x80000000;
    public const uint RetAllow = 0x7FFF0000;
    public const uint RetErrno = 0x00050000;
    private const uint Eperm = 1;
    private const uint Eafnosupport = 97;
    private const uint Enosys = 38;
    private const uint SetIdBits = 0x0C00; // S_ISUID | S_ISGID (06000)
    private const uint AfUnix = 1;

    // BPF opcodes
    private const ushort LdWAbs = 0x20;  // BPF_LD | BPF_W | BPF_ABS
    private const ushort JeqK = 0x15;    // BPF_JMP | BPF_JEQ | BPF_K
    private const ushort JgeK = 0x35;    // BPF_JMP | BPF_JGE | BPF_K
    private const ushort JsetK = 0x45;   // BPF_JMP | BPF_JSET | BPF_K
    private const ushort RetK = 0x06;    // BPF_RET | BPF_K

    // offsets in struct seccomp_data
    private const uint NrOffset = 0;
    private const uint ArchOffset = 4;
    private static uint ArgumentLowOffset(int argument) => 16 + 8 * (uint)argument;

    /// <summary>Denied outright (x86-64 numbers).</summary>
    public static readonly IReadOnlyDictionary<string, uint> Denied = new Dictionary<string, uint>
    {
        ["ptrace"] = 101, ["process_vm_readv"] = 310, ["process_vm_writev"] = 311, ["pidfd_open"] = 434,
        ["pidfd_getfd"] = 438, ["pidfd_send_signal"] = 424, ["kcmp"] = 312, ["tkill"] = 200,
        ["mount"] = 165, ["umount2"] = 166, ["pivot_root"] = 155, ["chroot"] = 161, ["unshare"] = 272, ["setns"] = 308,
        ["open_tree"] = 428, ["move_mount"] = 429, ["fsopen"] = 430, ["fsconfig"] = 431, ["fsmount"] = 432,
        ["fspick"] = 433, ["mount_setattr"] = 442,
        ["init_module"] = 175, ["finit_module"] = 313, ["delete_module"] = 176, ["kexec_load"] = 246,
        ["kexec_file_load"] = 320, ["bpf"] = 321, ["perf_event_open"] = 298, ["keyctl"] = 250, ["add_key"] = 248,
        ["request_key"] = 249, ["iopl"] = 172, ["ioperm"] = 173, ["swapon"] = 167, ["swapoff"] = 168, ["reboot"] = 169,
        ["acct"] = 163, ["syslog"] = 103, ["settimeofday"] = 164, ["clock_settime"] = 227, ["clock_adjtime"] = 305,
        ["adjtimex"] = 159, ["quotactl"] = 179, ["open_by_handle_at"] = 304, ["userfaultfd"] = 323, ["vhangup"] = 153,
        ["uselib"] = 134,
    };

    /// <summary>Signal senders whose first argument (a pid or thread group id) must be the process itself.</summary>
    public static readonly IReadOnlyDictionary<string, uint> SignalsToSelfOnly = new Dictionary<string, uint>
    {
        ["kill"] = 62, ["rt_sigqueueinfo"] = 129, ["tgkill"] = 234, ["rt_tgsigqueueinfo"] = 297,
    };

    private static readonly uint[] SocketCalls = [41, 53]; // socket, socketpair

    /// <summary>Calls that set a file's mode, and which argument (0-based) holds it.</summary>
    public static readonly IReadOnlyDictionary<string, (uint Nr, int ModeArgument)> ModeSetters = new Dictionary<string, (uint, int)>
    {
        ["chmod"] = (90, 1), ["fchmod"] = (91, 1), ["fchmodat"] = (268, 2), ["fchmodat2"] = (452, 2),
        ["open"] = (2, 2), ["openat"] = (257, 3), ["creat"] = (85, 1), ["mkdir"] = (83, 1), ["mkdirat"] = (258, 2),
        ["mknod"] = (133, 1), ["mknodat"] = (259, 2),
    };

    private const uint Openat2 = 437;

    /// <summary>The program for a process whose pid is <paramref name="selfPid"/> (exec keeps the pid, so the jailer's
    /// own pid is the VMM's).</summary>
    public static IReadOnlyList<BpfInstruction> Build(int selfPid, bool unixSocketsOnly, bool refuseSetIdModes = false)
    {
        var program = new List<BpfInstruction>
        {
            new(LdWAbs, 0, 0, ArchOffset),
            new(JeqK, 1, 0, AuditArchX8664),
            new(RetK, 0, 0, RetKillProcess),
            new(LdWAbs, 0, 0, NrOffset),
            new(JgeK, 0, 1, X32SyscallBit),
            new(RetK, 0, 0, RetKillProcess),
        };
        // The accumulator holds the syscall number from here on, except inside an argument check, which ends in a return.
        foreach (uint nr in Denied.Values)
        {
            program.Add(new(JeqK, 0, 1, nr));
            program.Add(new(RetK, 0, 0, RetErrno | Eperm));
        }
        foreach (uint nr in SignalsToSelfOnly.Values)
            AddFirstArgumentCheck(program, nr, (uint)selfPid, RetErrno | Eperm);
        if (unixSocketsOnly)
            foreach (uint nr in SocketCalls)
                AddFirstArgumentCheck(program, nr, AfUnix, RetErrno | Eafnosupport);
        if (refuseSetIdModes)
        {
            program.Add(new(JeqK, 0, 1, Openat2));
            program.Add(new(RetK, 0, 0, RetErrno | Enosys));
            foreach (var (nr, argument) in ModeSetters.Values)
            {
                program.Add(new(JeqK, 0, 4, nr));
                program.Add(new(LdWAbs, 0, 0, ArgumentLowOffset(argument)));
                program.Add(new(JsetK, 0, 1, SetIdBits));
                program.Add(new(RetK, 0, 0, RetErrno | Eperm));
                program.Add(new(RetK, 0, 0, RetAllow));
            }
        }
        program.Add(new(RetK, 0, 0, RetAllow));
        return program;
    }

    /// <summary>Syscall <paramref name="nr"/> is allowed only when (the low 32 bits of) its first argument is
    /// <paramref name="allowed"/>; otherwise <paramref name="refusal"/>. Other syscalls fall through with the number
    /// still in the accumulator.</summary>
    private static void AddFirstArgumentCheck(List<BpfInstruction> program, uint nr, uint allowed, uint refusal)
    {
        program.Add(new(JeqK, 0, 4, nr));
        program.Add(new(LdWAbs, 0, 0, ArgumentLowOffset(0)));
        program.Add(new(JeqK, 0, 1, allowed));
        program.Add(new(RetK, 0, 0, RetAllow));
        program.Add(new(RetK, 0, 0, refusal));
    }

    /// <summary>Runs <paramref name="program"/> on one call, as the kernel would (for tests).</summary>
    public static uint Evaluate(IReadOnlyList<BpfInstruction> program, uint arch, uint nr, params ulong[] arguments)
    {
        uint accumulator = 0;
        for (int pc = 0; pc < program.Count; pc++)
        {
            var ins = program[pc];
            switch (ins.Code)
            {
                case LdWAbs:
                    accumulator = ins.K switch
                    {
                        NrOffset => nr,
                        ArchOffset => arch,
                        >= 16 and < 64 when ins.K % 8 == 0 => (uint)(arguments.Length > (ins.K - 16) / 8 ? arguments[(ins.K - 16) / 8] : 0),
                        _ => throw new InvalidOperationException($"load of offset {ins.K}"),
                    };
                    break;
                case JeqK:
                    pc += accumulator == ins.K ? ins.JumpTrue : ins.JumpFalse;
                    break;
                case JgeK:
                    pc += accumulator >= ins.K ? ins.JumpTrue : ins.JumpFalse;
                    break;
                case JsetK:
                    pc += (accumulator & ins.K) != 0 ? ins.JumpTrue : ins.JumpFalse;
                    break;
                case RetK:
                    return ins.K;
                default:
                    throw new InvalidOperationException($"opcode {ins.Code:x}");
            }
        }
        throw new InvalidOperationException("the program ran off its end");
    }
}
