using System.Text;
using Tmds.Linux;

namespace Sandbox.Native;

/// <summary>
/// Tmds.LibC's calls that take paths or other C strings, with .NET strings: each is passed UTF-8 and NUL-terminated,
/// null as a null pointer. The return value and errno are libc's.
/// </summary>
public static unsafe class LibCStrings
{
    public static int open(string path, int flags, ushort mode = 0)
    {
        fixed (byte* p = CString(path))
            return LibC.open(p, flags, mode);
    }

    public static int mount(string? source, string target, string? fileSystemType, ulong flags, string? data)
    {
        fixed (byte* s = CString(source), t = CString(target), f = CString(fileSystemType), d = CString(data))
            return LibC.mount(s, t, f, (ulong_t)flags, d);
    }

    public static int umount2(string target, int flags)
    {
        fixed (byte* t = CString(target))
            return LibC.umount2(t, flags);
    }

    public static int mkfifo(string path, ushort mode)
    {
        fixed (byte* p = CString(path))
            return LibC.mkfifo(p, mode);
    }

    public static int statvfs(string path, statvfs* buffer)
    {
        fixed (byte* p = CString(path))
            return LibC.statvfs(p, buffer);
    }

    public static int stat(string path, stat* buffer)
    {
        fixed (byte* p = CString(path))
            return LibC.stat(p, buffer);
    }

    /// <summary>UTF-8 bytes with a terminating NUL; null for null (fixed then gives a null pointer).</summary>
    public static byte[]? CString(string? value)
    {
        if (value is null) return null;
        var bytes = new byte[Encoding.UTF8.GetByteCount(value) + 1];
        Encoding.UTF8.GetBytes(value, bytes);
        return bytes;
    }
}
