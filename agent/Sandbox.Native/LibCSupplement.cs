using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Sandbox.Native;

/// <summary>
/// The libc functions, constants and structs this project needs that Tmds.LibC 0.5.0 does not bind. Everything else
/// comes from <see cref="Tmds.Linux.LibC"/>. Each entry says why it is here. glibc, x86-64 and arm64 Linux.
/// </summary>
public static unsafe partial class LibCSupplement
{
    // waitpid(2) and waitid(2): not in Tmds.LibC (it has no wait family at all).
    public const int WNOHANG = 1;
    public const int WEXITED = 4;
    public const int WNOWAIT = 0x01000000;
    public const int P_ALL = 0;

    /// <summary>Not in Tmds.LibC. Reaps (or, with WNOHANG, polls) a child.</summary>
    [LibraryImport("libc", EntryPoint = "waitpid", SetLastError = true)]
    public static partial int waitpid(int pid, int* status, int options);

    /// <summary>Not in Tmds.LibC. With WNOWAIT, learns which child exited without reaping it.</summary>
    [LibraryImport("libc", EntryPoint = "waitid", SetLastError = true)]
    public static partial int waitid(int idType, uint id, siginfo_t* info, int options);

    // Terminal modes (termios(3)): Tmds.LibC 0.5.0 has tcgetattr but neither tcsetattr nor cfmakeraw. The struct is
    // handled as an opaque buffer: 60 bytes in glibc on x86-64 and arm64; TermiosSize leaves room.
    public const int TermiosSize = 64;
    public const int TCSANOW = 0;

    /// <summary>Not in Tmds.LibC in this form. Reads the modes of the terminal on <paramref name="fd"/> into a TermiosSize buffer.</summary>
    [LibraryImport("libc", EntryPoint = "tcgetattr", SetLastError = true)]
    public static partial int tcgetattr_raw(int fd, byte* termios);

    /// <summary>Not in Tmds.LibC. Sets the modes of the terminal on <paramref name="fd"/>.</summary>
    [LibraryImport("libc", EntryPoint = "tcsetattr", SetLastError = true)]
    public static partial int tcsetattr_raw(int fd, int optionalActions, byte* termios);

    /// <summary>Not in Tmds.LibC. Turns a termios buffer into raw mode (no echo, no line editing, no signals).</summary>
    [LibraryImport("libc", EntryPoint = "cfmakeraw")]
    public static partial void cfmakeraw_raw(byte* termios);

    // flock(2): not in Tmds.LibC.
    public const int LOCK_EX = 2;
    public const int LOCK_NB = 4;

    /// <summary>Not in Tmds.LibC. An advisory lock on an open file; closing the descriptor (or the process dying) releases it.</summary>
    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    public static partial int flock(int fd, int operation);

    // clock_settime(2): not in Tmds.LibC. CLOCK_REALTIME is clock 0.
    public const int CLOCK_REALTIME = 0;

    /// <summary>struct timespec as the kernel takes it on 64-bit Linux.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    /// <summary>Not in Tmds.LibC. Sets a clock (CLOCK_REALTIME needs CAP_SYS_TIME).</summary>
    [LibraryImport("libc", EntryPoint = "clock_settime", SetLastError = true)]
    public static partial int clock_settime(int clock, Timespec* time);

    // The random device's ioctls (linux/random.h): not in Tmds.LibC.
    /// <summary>RNDADDENTROPY = _IOW('R', 0x03, int[2]): mixes a struct rand_pool_info in and credits its bits.</summary>
    public const int RNDADDENTROPY = 0x40085203;
    /// <summary>RNDRESEEDCRNG = _IO('R', 0x07): reseeds the kernel's generator from its input pool now.</summary>
    public const int RNDRESEEDCRNG = 0x5207;

    // lseek(2)'s sparse-file whences: not in Tmds.LibC.
    /// <summary>The next offset at or after the given one that holds data.</summary>
    public const int SEEK_DATA = 3;
    /// <summary>The next hole at or after the given offset (the end of the file counts as one).</summary>
    public const int SEEK_HOLE = 4;

    /// <summary>fcntl(2)'s command that resizes a pipe's buffer: not in Tmds.LibC.</summary>
    public const int F_SETPIPE_SZ = 1031;

    // prctl(2) and personality(2): not in Tmds.LibC.
    public const int PR_SET_CHILD_SUBREAPER = 36;
    public const int PR_SET_NO_NEW_PRIVS = 38;
    public const uint ADDR_NO_RANDOMIZE = 0x0040000;

    /// <summary>personality(0xffffffff) only returns the current persona.</summary>
    public const uint PERSONALITY_QUERY = 0xffffffff;

    /// <summary>Not in Tmds.LibC. Used for PR_SET_CHILD_SUBREAPER and PR_SET_NO_NEW_PRIVS.</summary>
    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    public static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    /// <summary>Not in Tmds.LibC. Sets the calling thread's execution domain flags (ADDR_NO_RANDOMIZE).</summary>
    [LibraryImport("libc", EntryPoint = "personality", SetLastError = true)]
    public static partial int personality(uint persona);

    // klogctl(3): not in Tmds.LibC.
    public const int SYSLOG_ACTION_READ_ALL = 3;
    public const int SYSLOG_ACTION_SIZE_BUFFER = 10;

    /// <summary>Not in Tmds.LibC. Reads the kernel's log ring buffer (the host checks read KVM's messages).</summary>
    [LibraryImport("libc", EntryPoint = "klogctl", SetLastError = true)]
    public static partial int klogctl(int type, byte* buffer, int length);

    // posix_spawn(3): not in Tmds.LibC. .NET's Process cannot map extra fds, start a new session or leave reaping to
    // the caller, so ProcessSpawner uses these. They return an error number instead of setting errno.
    public const short POSIX_SPAWN_SETSIGDEF = 0x04;
    public const short POSIX_SPAWN_SETSIGMASK = 0x08;
    public const short POSIX_SPAWN_SETSID = 0x80;

    /// <summary>glibc's posix_spawn_file_actions_t is 80 bytes; this is larger on purpose.</summary>
    public struct posix_spawn_file_actions_t
    {
        private fixed byte _opaque[256];
    }

    /// <summary>glibc's posix_spawnattr_t is 336 bytes; this is larger on purpose.</summary>
    public struct posix_spawnattr_t
    {
        private fixed byte _opaque[512];
    }

    [LibraryImport("libc", EntryPoint = "posix_spawn", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int posix_spawn(int* pid, string path, posix_spawn_file_actions_t* fileActions, posix_spawnattr_t* attributes, byte** argv, byte** envp);

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_init")]
    public static partial int posix_spawn_file_actions_init(posix_spawn_file_actions_t* fileActions);

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_destroy")]
    public static partial int posix_spawn_file_actions_destroy(posix_spawn_file_actions_t* fileActions);

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_adddup2")]
    public static partial int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t* fileActions, int fd, int newFd);

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_addopen", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int posix_spawn_file_actions_addopen(posix_spawn_file_actions_t* fileActions, int fd, string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_addchdir_np", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t* fileActions, string path);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_init")]
    public static partial int posix_spawnattr_init(posix_spawnattr_t* attributes);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_destroy")]
    public static partial int posix_spawnattr_destroy(posix_spawnattr_t* attributes);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_setflags")]
    public static partial int posix_spawnattr_setflags(posix_spawnattr_t* attributes, short flags);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_setsigmask")]
    public static partial int posix_spawnattr_setsigmask(posix_spawnattr_t* attributes, sigset_t* signals);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_setsigdefault")]
    public static partial int posix_spawnattr_setsigdefault(posix_spawnattr_t* attributes, sigset_t* signals);

    // pidfd_open(2) and process_madvise(2) have no libc wrapper in Debian 12's glibc, so they go through Tmds.LibC's
    // syscall(); the numbers are the same on x86-64 and arm64 (both postdate the per-architecture tables).
    public const int SYS_pidfd_open = 434;
    public const int SYS_process_madvise = 440;

    /// <summary>Linux 5.4's madvise advice; Tmds.LibC's MADV_ list stops before it.</summary>
    public const int MADV_PAGEOUT = 21;

    // The jailer's calls (hypervisor-adapters/Sandbox.Jailer): none is in Tmds.LibC 0.5.0. pivot_root(2) and capset(2)
    // have no glibc wrapper and go through syscall(); the numbers are x86-64's, the only architecture the jailer's
    // seccomp filter is written for.
    public const int SYS_pivot_root = 155;
    public const int SYS_capset = 126;
    public const int PR_CAPBSET_DROP = 24;
    public const int PR_SET_SECCOMP = 22;
    public const int PR_CAP_AMBIENT = 47;
    public const int PR_CAP_AMBIENT_CLEAR_ALL = 4;
    public const int SECCOMP_MODE_FILTER = 2;
    public const int RLIMIT_NPROC = 6;
    public const int RLIMIT_CORE = 4;
    public const int RLIMIT_NOFILE = 7;
    public const int RLIMIT_MSGQUEUE = 12;

    /// <summary>struct rlimit (Tmds.LibC has none).</summary>
    public struct ResourceLimit
    {
        public ulong rlim_cur;
        public ulong rlim_max;
    }

    /// <summary>Not in Tmds.LibC.</summary>
    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    public static partial int getrlimit(int resource, ResourceLimit* limit);

    /// <summary>Not in Tmds.LibC.</summary>
    [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    public static partial int setrlimit(int resource, ResourceLimit* limit);

    /// <summary>Not in Tmds.LibC. Replaces the process image; returns only on failure.</summary>
    [LibraryImport("libc", EntryPoint = "execve", SetLastError = true)]
    public static partial int execve(byte* path, byte** argv, byte** envp);

    /// <summary>Not in Tmds.LibC. Changes the calling thread's working directory (the jailer's single thread).</summary>
    [LibraryImport("libc", EntryPoint = "chdir", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int chdir(string path);

    /// <summary>Not in Tmds.LibC. Returns a malloc'ed canonical path (free it with NativeMemory.Free), or null.</summary>
    [LibraryImport("libc", EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial byte* realpath(string path, byte* resolved);

    // AF_VSOCK: Tmds.LibC has the AF_VSOCK constant but not the address struct or its constants (linux/vm_sockets.h).
    public const uint VMADDR_CID_ANY = 0xffffffff;

    /// <summary>struct sockaddr_vm (16 bytes). Pass it as a <c>sockaddr*</c> to Tmds.LibC's bind, connect, accept4.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct sockaddr_vm
    {
        public ushort svm_family;
        public ushort svm_reserved1;
        public uint svm_port;
        public uint svm_cid;
        public byte svm_flags;
        public byte svm_zero0;
        public byte svm_zero1;
        public byte svm_zero2;
    }

    // Netlink: Tmds.LibC has AF_NETLINK and SOL_NETLINK but not linux/netlink.h's address struct and constants.
    public const int NETLINK_ROUTE = 0;
    public const int NETLINK_EXT_ACK = 11;

    /// <summary>struct sockaddr_nl (12 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct sockaddr_nl
    {
        public ushort nl_family;
        public ushort nl_pad;
        public uint nl_pid;
        public uint nl_groups;
    }

    /// <summary>struct timeval (SO_RCVTIMEO): not in Tmds.LibC.</summary>
#pragma warning disable CS8981 // named as in C, like Tmds.LibC's structs
    [StructLayout(LayoutKind.Sequential)]
    public struct timeval
#pragma warning restore CS8981
    {
        public long tv_sec;
        public long tv_usec;
    }
}
