using System.Runtime.InteropServices;
using System.Text;

namespace Sandbox.Hypervisors.HostDetection;

/// <summary>Reads the kernel's message ring buffer, as `dmesg` does, through syslog(2) (klogctl in glibc).</summary>
public static partial class KernelLog
{
    private const int SyslogActionReadAll = 3;
    private const int SyslogActionSizeBuffer = 10;

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int klogctl(int type, byte* buffer, int length);

    /// <summary>The whole ring buffer as text, or null with <paramref name="error"/> set (for instance EPERM when
    /// kernel.dmesg_restrict=1 and we lack CAP_SYSLOG).</summary>
    public static unsafe string? TryReadAll(out string? error)
    {
        var size = klogctl(SyslogActionSizeBuffer, null, 0);
        if (size <= 0)
        {
            error = $"syslog(SIZE_BUFFER) failed: {Marshal.GetLastPInvokeErrorMessage()}";
            return null;
        }
        var buffer = new byte[size];
        int read;
        fixed (byte* pointer = buffer)
            read = klogctl(SyslogActionReadAll, pointer, size);
        if (read < 0)
        {
            error = $"syslog(READ_ALL) failed: {Marshal.GetLastPInvokeErrorMessage()}";
            return null;
        }
        error = null;
        return Encoding.UTF8.GetString(buffer, 0, read);
    }
}
