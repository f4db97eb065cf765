using System.Runtime.InteropServices;

namespace Sandbox.Shim.Native;

/// <summary>The few libc calls the shim needs that .NET does not offer (glibc, x86_64/arm64 Linux).</summary>
internal static unsafe partial class LibC
{
    public const int O_RDONLY = 0x0;
    public const int O_WRONLY = 0x1;
    public const int O_RDWR = 0x2;
    public const int O_CREAT = 0x40;
    public const int O_APPEND = 0x400;
    public const int O_NONBLOCK = 0x800;
    public const int O_CLOEXEC = 0x80000;

    public const int F_GETFL = 3;
    public const int F_SETFL = 4;
    public const int F_DUPFD_CLOEXEC = 1030;
    public const int F_SETFD = 2;
    public const int FD_CLOEXEC = 1;

    public const int EINTR = 4;
    public const int ENOENT = 2;
    public const int ESRCH = 3;
    public const int ECHILD = 10;
    public const int EAGAIN = 11;
    public const int EINVAL = 22;
    public const int ENXIO = 6;

    public const int WNOHANG = 1;
    public const int SIGKILL = 9;
    public const int SIGPIPE = 13;

    public const int PR_SET_CHILD_SUBREAPER = 36;

    public const ulong MS_RDONLY = 1;
    public const ulong MS_NOSUID = 2;
    public const ulong MS_NODEV = 4;
    public const ulong MS_NOEXEC = 8;
    public const ulong MS_SYNCHRONOUS = 16;
    public const ulong MS_REMOUNT = 32;
    public const ulong MS_DIRSYNC = 128;
    public const ulong MS_NOATIME = 1024;
    public const ulong MS_NODIRATIME = 2048;
    public const ulong MS_BIND = 4096;
    public const ulong MS_REC = 16384;
    public const ulong MS_RELATIME = 1 << 21;
    public const ulong MS_STRICTATIME = 1 << 24;
    public const int MNT_DETACH = 2;

    public const short POLLIN = 0x1;
    public const short POLLHUP = 0x10;

    public const short POSIX_SPAWN_SETSIGDEF = 0x04;
    public const short POSIX_SPAWN_SETSIGMASK = 0x08;
    public const short POSIX_SPAWN_SETSID = 0x80;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int dup2(int oldFd, int newFd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fcntl(int fd, int cmd, int arg);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int pipe2(int* fds, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint read(int fd, byte* buffer, nint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint write(int fd, byte* buffer, nint count);

    /// <summary>write(2) until all of <paramref name="count"/> bytes are written, retrying on EINTR.
    /// False when the descriptor refuses more (e.g. EPIPE: the reader is gone).</summary>
    public static bool WriteAll(int fd, byte* buffer, nint count)
    {
        nint done = 0;
        while (done < count)
        {
            nint n = write(fd, buffer + done, count - done);
            if (n < 0)
            {
                if (Marshal.GetLastPInvokeError() == EINTR)
                    continue;
                return false;
            }
            done += n;
        }
        return true;
    }

    public const int EIO = 5;
    public const int SOL_SOCKET = 1;
    public const int SCM_RIGHTS = 1;
    public const int MSG_CMSG_CLOEXEC = 0x40000000;
    public const nuint TIOCSWINSZ = 0x5414;
    public const nuint FIONREAD = 0x541B;

    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct CmsgHdr
    {
        public nuint Length;
        public int Level;
        public int Type;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct WinSize
    {
        public ushort Rows;
        public ushort Columns;
        public ushort XPixels;
        public ushort YPixels;
    }

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint recvmsg(int fd, MsgHdr* message, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int ioctl(int fd, nuint request, void* argument);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int poll(PollFd* fds, nuint count, int timeoutMilliseconds);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int waitpid(int pid, int* status, int options);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int signal);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint signal(int signal, nint handler);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int mount(string source, string target, string? fileSystemType, ulong flags, string? data);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int umount2(string target, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int mkfifo(string path, int mode);

    /// <summary>statvfs(3)'s f_flag bits (ST_*); ST_RELATIME is 4096 (MS_BIND's value), so map, never pass through.</summary>
    public const ulong ST_RDONLY = 1;
    public const ulong ST_NOSUID = 2;
    public const ulong ST_NODEV = 4;
    public const ulong ST_NOEXEC = 8;
    public const ulong ST_NOATIME = 1024;
    public const ulong ST_NODIRATIME = 2048;
    public const ulong ST_RELATIME = 4096;

    /// <summary>struct statvfs (glibc, 64-bit).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct StatVfs
    {
        public ulong BlockSize;
        public ulong FragmentSize;
        public ulong Blocks;
        public ulong BlocksFree;
        public ulong BlocksAvailable;
        public ulong Files;
        public ulong FilesFree;
        public ulong FilesAvailable;
        public ulong FileSystemId;
        public ulong Flags;
        public ulong NameMax;
        public fixed int Spare[6];
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int statvfs(string path, StatVfs* buffer);

    public const int AF_UNIX = 1;
    public const int SOCK_STREAM = 1;
    public const int SOCK_CLOEXEC = 0x80000;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int socketpair(int domain, int type, int protocol, int* fds);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int posix_spawn(int* pid, string path, void* fileActions, void* attributes, byte** argv, byte** envp);

    [LibraryImport("libc")]
    public static partial int posix_spawn_file_actions_init(void* fileActions);

    [LibraryImport("libc")]
    public static partial int posix_spawn_file_actions_destroy(void* fileActions);

    [LibraryImport("libc")]
    public static partial int posix_spawn_file_actions_adddup2(void* fileActions, int fd, int newFd);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int posix_spawn_file_actions_addopen(void* fileActions, int fd, string path, int flags, int mode);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int posix_spawn_file_actions_addchdir_np(void* fileActions, string path);

    [LibraryImport("libc")]
    public static partial int posix_spawnattr_init(void* attributes);

    [LibraryImport("libc")]
    public static partial int posix_spawnattr_destroy(void* attributes);

    [LibraryImport("libc")]
    public static partial int posix_spawnattr_setflags(void* attributes, short flags);

    [LibraryImport("libc")]
    public static partial int posix_spawnattr_setsigmask(void* attributes, void* sigset);

    [LibraryImport("libc")]
    public static partial int posix_spawnattr_setsigdefault(void* attributes, void* sigset);

    [LibraryImport("libc")]
    public static partial int sigemptyset(void* sigset);

    [LibraryImport("libc")]
    public static partial int sigfillset(void* sigset);

    /// <summary>"errno N (text)" for messages.</summary>
    public static string Describe(int errno) => $"errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})";

    /// <summary>Exit status as containerd reports it: the exit code, or 128 + signal when killed by a signal.</summary>
    public static uint DecodeWaitStatus(int status)
    {
        int signal = status & 0x7f;
        if (signal == 0)
            return (uint)((status >> 8) & 0xff);
        return (uint)(128 + signal);
    }
}
