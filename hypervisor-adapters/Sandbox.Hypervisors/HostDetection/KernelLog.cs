using System.Text;
using Sandbox.Native;
using static Sandbox.Native.LibCSupplement;

namespace Sandbox.Hypervisors.HostDetection;

/// <summary>Reads the kernel's message ring buffer, as `dmesg` does, through syslog(2) (klogctl in glibc).</summary>
public static class KernelLog
{
    /// <summary>The whole ring buffer as text, or null with <paramref name="error"/> set (for instance EPERM when
    /// kernel.dmesg_restrict=1 and we lack CAP_SYSLOG).</summary>
    public static unsafe string? TryReadAll(out string? error)
    {
        var size = klogctl(SYSLOG_ACTION_SIZE_BUFFER, null, 0);
        if (size <= 0)
        {
            error = $"syslog(SIZE_BUFFER) failed: {Errno.DescribeLast()}";
            return null;
        }
        var buffer = new byte[size];
        int read;
        fixed (byte* pointer = buffer)
            read = klogctl(SYSLOG_ACTION_READ_ALL, pointer, size);
        if (read < 0)
        {
            error = $"syslog(READ_ALL) failed: {Errno.DescribeLast()}";
            return null;
        }
        error = null;
        return Encoding.UTF8.GetString(buffer, 0, read);
    }
}
