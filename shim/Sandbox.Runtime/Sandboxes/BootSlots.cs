using Sandbox.Native;
using static Tmds.Linux.LibC;

namespace Sandbox.Runtime.Sandboxes;

/// <summary>
/// A host-wide limit on how many sandbox VMs boot at once, shared by every shim on the host (each pod has its own shim
/// process) through flock(2) on slot files: slot-0.lock … slot-(N-1).lock in one directory. A boot holds a slot from
/// QEMU's start until its agent answers. The kernel drops a dead shim's lock, so a crash never leaks a slot.
/// Why: under TCG, 20 VMs booting at once on 2 cores share the CPU so thinly that none reaches its agent within
/// agent.ready_timeout (measured: each got 5.5 s of CPU in 120 s, all 20 failed); taken a few at a time, each boots
/// in seconds and all 20 pods run.
/// </summary>
public sealed class BootSlots
{
    /// <summary>Where the slot files live unless configured: host-wide, whatever each shim's state root.</summary>
    public const string DefaultDirectory = "/run/sandbox/boot-slots";

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    public BootSlots(string directory, int count)
    {
        if (count < 1)
            throw new ArgumentOutOfRangeException(nameof(count), count, "at least one boot slot");
        Directory = directory;
        Count = count;
    }

    public string Directory { get; }
    public int Count { get; }

    /// <summary>Waits until a slot is free and takes it. <paramref name="waiting"/> is called once if the caller has to
    /// wait (for its log line).</summary>
    public async Task<BootSlot> AcquireAsync(Action? waiting, CancellationToken cancellationToken)
    {
        System.IO.Directory.CreateDirectory(Directory);
        bool reported = false;
        while (true)
        {
            for (int slot = 0; slot < Count; slot++)
            {
                if (TryTake(slot) is { } taken)
                    return taken;
            }
            if (!reported)
            {
                reported = true;
                waiting?.Invoke();
            }
            await Task.Delay(PollInterval, cancellationToken);
        }
    }

    private BootSlot? TryTake(int slot)
    {
        string path = Path.Combine(Directory, $"slot-{slot}.lock");
        int fd = LibCStrings.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0x180); // 0600
        if (fd < 0)
            throw new IOException($"cannot open the boot slot file {path}: {Errno.DescribeLast()}; check that {Directory} is writable");
        if (LibCSupplement.flock(fd, LibCSupplement.LOCK_EX | LibCSupplement.LOCK_NB) == 0)
            return new BootSlot(fd, slot);
        int errno = Errno.Last;
        close(fd);
        if (errno == EWOULDBLOCK || errno == EINTR)
            return null;
        throw new IOException($"cannot lock the boot slot file {path}: {Errno.Describe(errno)}");
    }
}

/// <summary>A taken boot slot; disposing releases it.</summary>
public sealed class BootSlot : IDisposable
{
    private int _fd;

    internal BootSlot(int fd, int number)
    {
        _fd = fd;
        Number = number;
    }

    public int Number { get; }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
            close(fd);
    }
}
