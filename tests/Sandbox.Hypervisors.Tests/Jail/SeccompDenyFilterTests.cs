using Sandbox.Hypervisors.Jail;

namespace Sandbox.Hypervisors.Tests.Jail;

public class SeccompDenyFilterTests
{
    private const int Self = 4242;
    private const uint Eperm = SeccompDenyFilter.RetErrno | 1;
    private static readonly IReadOnlyList<BpfInstruction> Qemu = SeccompDenyFilter.Build(Self, unixSocketsOnly: false, refuseSetIdModes: true);
    private static readonly IReadOnlyList<BpfInstruction> Daemon = SeccompDenyFilter.Build(Self, unixSocketsOnly: true);

    private static uint Run(IReadOnlyList<BpfInstruction> program, uint nr, params ulong[] args) =>
        SeccompDenyFilter.Evaluate(program, SeccompDenyFilter.AuditArchX8664, nr, args);

    [Theory]
    [InlineData(101u)] // ptrace
    [InlineData(165u)] // mount
    [InlineData(175u)] // init_module
    [InlineData(313u)] // finit_module
    [InlineData(272u)] // unshare
    [InlineData(321u)] // bpf
    [InlineData(310u)] // process_vm_readv
    public void Calls_against_the_host_fail_with_eperm(uint nr)
    {
        Assert.Equal(Eperm, Run(Qemu, nr));
        Assert.Equal(Eperm, Run(Daemon, nr));
    }

    [Fact]
    public void Signals_reach_only_the_process_itself()
    {
        Assert.Equal(SeccompDenyFilter.RetAllow, Run(Qemu, 62, Self, 15));   // kill(self)
        Assert.Equal(Eperm, Run(Qemu, 62, 1, 9));                            // kill(1)
        Assert.Equal(Eperm, Run(Qemu, 62, unchecked((ulong)-1), 9));         // kill(-1): every process
        Assert.Equal(Eperm, Run(Qemu, 62, 0, 9));                            // kill(0): the shim's process group
        Assert.Equal(SeccompDenyFilter.RetAllow, Run(Qemu, 234, Self, 77, 10)); // tgkill to one of its threads
        Assert.Equal(Eperm, Run(Qemu, 234, 1, 1, 9));
    }

    [Fact]
    public void Setuid_and_setgid_modes_are_refused_and_other_modes_pass()
    {
        Assert.Equal(Eperm, Run(Qemu, 268, 3, 0, 0x9ED));                 // fchmodat(..., 04755)
        Assert.Equal(Eperm, Run(Qemu, 90, 0, 0x5ED));                     // chmod(..., 02755)
        Assert.Equal(Eperm, Run(Qemu, 257, 3, 0, 0x40, 0x9ED));           // openat(O_CREAT, 04755)
        Assert.Equal(SeccompDenyFilter.RetAllow, Run(Qemu, 268, 3, 0, 0x1ED)); // fchmodat(..., 0755)
        Assert.Equal(SeccompDenyFilter.RetAllow, Run(Qemu, 257, 3, 0, 0x40, 0x1A4));
        Assert.Equal(SeccompDenyFilter.RetAllow, Run(Qemu, 258, 3, 0, 0x3FF)); // mkdirat 01777 (sticky is fine)
        Assert.Equal(SeccompDenyFilter.RetErrno | 38, Run(Qemu, 437));   // openat2: ENOSYS
        Assert.Equal(SeccompDenyFilter.RetAllow, Run(Daemon, 268, 3, 0, 0x9ED)); // the daemon has no share
    }

    [Fact]
    public void The_daemon_may_only_open_unix_sockets()
    {
        Assert.Equal(SeccompDenyFilter.RetAllow, Run(Daemon, 41, 1, 1, 0));      // socket(AF_UNIX)
        Assert.Equal(SeccompDenyFilter.RetErrno | 97, Run(Daemon, 41, 2, 1, 0)); // socket(AF_INET)
        Assert.Equal(SeccompDenyFilter.RetErrno | 97, Run(Daemon, 41, 40, 1, 0)); // socket(AF_VSOCK)
        Assert.Equal(SeccompDenyFilter.RetAllow, Run(Qemu, 41, 2, 1, 0));
    }

    [Fact]
    public void Everything_else_is_allowed_and_other_architectures_are_killed()
    {
        Assert.Equal(SeccompDenyFilter.RetAllow, Run(Qemu, 0, 3));  // read
        Assert.Equal(SeccompDenyFilter.RetAllow, Run(Qemu, 59));    // execve: the jailer's own exec of the program
        Assert.Equal(SeccompDenyFilter.RetKillProcess, Run(Qemu, 0x40000000 | 101));
        Assert.Equal(SeccompDenyFilter.RetKillProcess, SeccompDenyFilter.Evaluate(Qemu, 0x40000003, 26)); // i386 ptrace
    }

    [Fact]
    public void Jumps_stay_inside_the_program()
    {
        foreach (var program in new[] { Qemu, Daemon })
        {
            for (int pc = 0; pc < program.Count; pc++)
                if ((program[pc].Code & 0x07) == 0x05) // BPF_JMP: both targets are instructions of the program
                    Assert.True(pc + 1 + Math.Max(program[pc].JumpTrue, program[pc].JumpFalse) < program.Count, $"jump at {pc}");
            Assert.Equal(0x06, program[^1].Code); // ends in a return
        }
    }
}
