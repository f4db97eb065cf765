using Sandbox.Native;
using static Sandbox.Native.LibCSupplement;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent;

/// <summary>
/// What makes a VM cloned from a template its own machine, done at CreateSandbox with what the host sent: host
/// randomness mixed into the kernel's pool and a reseed of its generator (every clone resumes with the template's
/// generator state; microvm has no vmgenid to tell the kernel), and the host's wall clock (a clone resumes at the
/// moment the template was saved). Harmless on a cold-booted VM, so the shim always sends both.
/// </summary>
public static unsafe class CloneFreshness
{
    /// <summary>How far the guest's clock may be from the host's before it is set.</summary>
    public static readonly TimeSpan ClockTolerance = TimeSpan.FromSeconds(1);

    /// <summary>Mixes <paramref name="entropy"/> into the kernel's pool, credited as random, then reseeds the
    /// generator from the pool. Nothing when <paramref name="entropy"/> is empty.</summary>
    public static void Reseed(ReadOnlySpan<byte> entropy, string randomDevice = "/dev/urandom")
    {
        if (entropy.IsEmpty)
            return;
        int fd = LibCStrings.open(randomDevice, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            throw new IOException($"cannot open {randomDevice} to reseed the guest's random generator: {Errno.DescribeLast()}");
        try
        {
            // struct rand_pool_info { int entropy_count (bits); int buf_size (bytes); __u32 buf[]; }
            int size = 8 + ((entropy.Length + 3) & ~3);
            byte* info = stackalloc byte[size];
            new Span<byte>(info, size).Clear();
            ((int*)info)[0] = entropy.Length * 8;
            ((int*)info)[1] = entropy.Length;
            entropy.CopyTo(new Span<byte>(info + 8, entropy.Length));
            if (ioctl(fd, RNDADDENTROPY, (void*)info) != 0)
                throw new IOException($"RNDADDENTROPY on {randomDevice} failed: {Errno.DescribeLast()}");
            if (ioctl(fd, RNDRESEEDCRNG, 0) != 0)
                throw new IOException($"RNDRESEEDCRNG on {randomDevice} failed: {Errno.DescribeLast()}");
        }
        finally
        {
            close(fd);
        }
    }

    /// <summary>Sets the guest's wall clock to <paramref name="hostTime"/> when it is more than
    /// <see cref="ClockTolerance"/> away. Returns the offset it corrected, or null when none was needed (or no time came).</summary>
    public static TimeSpan? SetClock(DateTimeOffset? hostTime)
    {
        if (hostTime is not { } host)
            return null;
        var offset = DateTimeOffset.UtcNow - host;
        if (offset.Duration() <= ClockTolerance)
            return null;
        long ticks = (host - DateTimeOffset.UnixEpoch).Ticks;
        var time = new Timespec { Seconds = ticks / TimeSpan.TicksPerSecond, Nanoseconds = ticks % TimeSpan.TicksPerSecond * 100 };
        if (clock_settime(CLOCK_REALTIME, &time) != 0)
            throw new IOException($"setting the guest's clock to the host's ({host:O}) failed: {Errno.DescribeLast()}");
        return offset;
    }
}
