using Sandbox.Native;
using static Tmds.Linux.LibC;

namespace Sandbox.Runtime.Sandboxes;

/// <summary>Reads /proc/self/mountinfo, and detaches mounts.</summary>
public static class MountTable
{
    /// <summary>Detaches (MNT_DETACH) every mount stacked at <paramref name="target"/>. Not mounted or missing: nothing
    /// to do.</summary>
    public static void DetachAll(string target)
    {
        for (int i = 0; i < 64; i++)
        {
            if (LibCStrings.umount2(target, MNT_DETACH) == 0)
                continue;
            int errno = Errno.Last;
            if (errno == EINVAL || errno == ENOENT)
                return;
            throw new IOException($"cannot unmount {target}: {Errno.Describe(errno)}");
        }
    }

    /// <summary>Mount points at or below <paramref name="directory"/>.</summary>
    public static IReadOnlyList<string> MountPointsBelow(string directory)
    {
        var prefix = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(directory));
        var result = new List<string>();
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var mountPoint = ParseMountPoint(line);
            if (mountPoint is not null && (mountPoint == prefix || mountPoint.StartsWith(prefix + "/", StringComparison.Ordinal)))
                result.Add(mountPoint);
        }
        return result;
    }

    /// <summary>Field 5 of a mountinfo line, with the kernel's octal escapes (\040 for space) decoded.</summary>
    public static string? ParseMountPoint(string mountInfoLine)
    {
        var fields = mountInfoLine.Split(' ');
        return fields.Length > 4 ? DecodeOctalEscapes(fields[4]) : null;
    }

    private static string DecodeOctalEscapes(string value)
    {
        if (!value.Contains('\\'))
            return value;
        var sb = new System.Text.StringBuilder(value.Length);
        for (int i = 0; i < value.Length; i++)
        {
            if (value[i] == '\\' && IsOctal(value, i + 1) && IsOctal(value, i + 2) && IsOctal(value, i + 3))
            {
                sb.Append((char)Convert.ToInt32(value.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                sb.Append(value[i]);
            }
        }
        return sb.ToString();
    }

    private static bool IsOctal(string s, int i) => i < s.Length && s[i] is >= '0' and <= '7';
}
