using System.Runtime.InteropServices;

namespace Sandbox.Native;

/// <summary>errno after a libc call (Tmds.LibC and <see cref="LibCSupplement"/> both keep it), and its text for messages.</summary>
public static class Errno
{
    /// <summary>errno of the last libc call on this thread.</summary>
    public static int Last => Marshal.GetLastPInvokeError();

    /// <summary>"No such file or directory (errno 2)".</summary>
    public static string Describe(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";

    /// <summary><see cref="Describe"/> of <see cref="Last"/>.</summary>
    public static string DescribeLast() => Describe(Last);
}
