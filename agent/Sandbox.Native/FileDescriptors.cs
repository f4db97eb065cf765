using static Tmds.Linux.LibC;

namespace Sandbox.Native;

/// <summary>The raw file descriptor chores both sides share: pipes, /dev/null, blocking mode, whole writes.</summary>
public static unsafe class FileDescriptors
{
    /// <summary>A pipe with both ends close-on-exec. Returns (read end, write end).</summary>
    public static (int Read, int Write) CreatePipe()
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, O_CLOEXEC) != 0) throw new IOException($"pipe2 failed: {Errno.DescribeLast()}");
        return (fds[0], fds[1]);
    }

    /// <summary>/dev/null opened read-write, close-on-exec.</summary>
    public static int OpenDevNull()
    {
        int fd = LibCStrings.open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0) throw new IOException($"open /dev/null failed: {Errno.DescribeLast()}");
        return fd;
    }

    /// <summary>Asks for a pipe buffer of <paramref name="bytes"/> (the kernel rounds up to pages, and caps it at
    /// /proc/sys/fs/pipe-max-size for an unprivileged caller). Returns the size granted, or -1 when it refused: the
    /// pipe then keeps its 64 KiB, which is slower, not wrong.</summary>
    public static int TrySetPipeCapacity(int fd, int bytes) => fcntl(fd, LibCSupplement.F_SETPIPE_SZ, bytes);

    /// <summary>Sets or clears O_NONBLOCK. Best effort: a failure leaves the descriptor as it was.</summary>
    public static void SetNonBlocking(int fd, bool nonBlocking = true) => TrySetStatusFlag(fd, O_NONBLOCK, nonBlocking);

    /// <summary>Sets or clears one file status flag (O_NONBLOCK, O_ASYNC, ...) with F_GETFL/F_SETFL. False (errno set)
    /// when fcntl refused: the descriptor is then as it was.</summary>
    public static bool TrySetStatusFlag(int fd, int flag, bool on)
    {
        int flags = fcntl(fd, F_GETFL);
        return flags >= 0 && fcntl(fd, F_SETFL, on ? flags | flag : flags & ~flag) == 0;
    }

    /// <summary>Sets or clears FD_CLOEXEC: a descriptor without it is inherited by the programs this process runs.</summary>
    public static void SetCloseOnExec(int fd, bool closeOnExec)
    {
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0 || fcntl(fd, F_SETFD, closeOnExec ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC) != 0)
            throw new IOException($"fcntl F_SETFD on descriptor {fd} failed: {Errno.DescribeLast()}");
    }

    /// <summary>write(2) until all of <paramref name="count"/> bytes are written, retrying on EINTR. False when the
    /// descriptor refuses more (e.g. EPIPE: the reader is gone).</summary>
    public static bool WriteAll(int fd, byte* buffer, int count)
    {
        int done = 0;
        while (done < count)
        {
            long n = write(fd, buffer + done, count - done);
            if (n < 0)
            {
                if (Errno.Last == EINTR) continue;
                return false;
            }
            done += (int)n;
        }
        return true;
    }

    /// <summary>Adds 1 to an eventfd's counter, waking whoever polls it.</summary>
    public static void SignalEventFd(int eventFd)
    {
        ulong one = 1;
        write(eventFd, &one, sizeof(ulong));
    }

    /// <summary>close(2), ignoring errors; for cleanup paths.</summary>
    public static void CloseQuietly(int fd)
    {
        if (fd >= 0) close(fd);
    }
}
