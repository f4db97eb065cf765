using System.Globalization;
using System.Runtime.InteropServices;
using Sandbox.Native;
using Tmds.Linux;
using static Sandbox.Native.LibCSupplement;
using static Tmds.Linux.LibC;

namespace Sandbox.Hypervisors.Processes;

/// <summary>What <see cref="MappedFilePageOut.Run"/> did: the resident size of the process's mappings of the files
/// before and after, or why nothing was paged out.</summary>
public sealed record MappedFilePageOutResult(int Mappings, long ResidentKiBBefore, long ResidentKiBAfter, string? Problem)
{
    public string Describe() => Problem is not null
        ? Problem
        : FormattableString.Invariant($"{Mappings} mapping(s), resident {ResidentKiBBefore / 1024.0:0.0} MiB -> {ResidentKiBAfter / 1024.0:0.0} MiB");
}

/// <summary>
/// Takes a running process's file-backed mappings of given files out of its resident set with process_madvise(2)
/// MADV_PAGEOUT, then asks the kernel to read the files back into the page cache (posix_fadvise WILLNEED), because
/// paging out also drops the cached pages and the next reader (the next VM's QEMU) would otherwise read the disk.
/// The process keeps its mappings: a later access faults the pages back in from the file. Used for the guest kernel and
/// initrd, which QEMU keeps mapped after boot only to copy them into guest memory again on a guest reset.
/// Needs Linux 5.10+ and CAP_SYS_NICE (the shim runs as root); never throws for a refusal, it reports it.
/// </summary>
public static class MappedFilePageOut
{
    public static MappedFilePageOutResult Run(int pid, IReadOnlyCollection<string> files)
    {
        var wanted = files.Select(CanonicalPath).ToHashSet(StringComparer.Ordinal);
        List<MappedRange> before;
        try
        {
            before = ReadMappings(pid, wanted);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new(0, 0, 0, $"cannot read /proc/{pid}/smaps: {e.Message}");
        }
        if (before.Count == 0)
            return new(0, 0, 0, $"process {pid} maps none of {string.Join(", ", files)}");

        long residentBefore = before.Sum(r => r.ResidentKiB);
        var problem = PageOut(pid, before);
        if (problem is not null)
            return new(before.Count, residentBefore, residentBefore, problem);
        foreach (var file in wanted)
            RefillPageCache(file);

        long residentAfter = residentBefore;
        try
        {
            residentAfter = ReadMappings(pid, wanted).Sum(r => r.ResidentKiB);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // the process exited meanwhile: nothing of it is resident any more
            residentAfter = 0;
        }
        return new(before.Count, residentBefore, residentAfter, null);
    }

    private static string? PageOut(int pid, List<MappedRange> ranges)
    {
        int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0)
            return $"pidfd_open({pid}) failed: {Errno.DescribeLast()}";
        try
        {
            unsafe
            {
                var vectors = ranges.Select(r => new iovec { iov_base = (void*)r.Start, iov_len = (size_t)(r.End - r.Start) }).ToArray();
                fixed (iovec* first = vectors)
                {
                    ssize_t advised = syscall(SYS_process_madvise, pidfd, first, vectors.Length, MADV_PAGEOUT, 0);
                    if (advised < 0)
                        return $"process_madvise(MADV_PAGEOUT) on process {pid} failed: {Errno.DescribeLast()} " +
                               "(needs Linux 5.10+ and CAP_SYS_NICE)";
                }
            }
            return null;
        }
        finally
        {
            close(pidfd);
        }
    }

    private static void RefillPageCache(string file)
    {
        try
        {
            using var handle = File.OpenHandle(file, FileMode.Open, FileAccess.Read);
            posix_fadvise((int)handle.DangerousGetHandle(), 0, 0, POSIX_FADV_WILLNEED); // a hint: its result changes nothing
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // the file went away: the next VM will say so itself
        }
    }

    private sealed record MappedRange(ulong Start, ulong End, long ResidentKiB);

    /// <summary>The process's mappings whose file is one of <paramref name="canonicalPaths"/>, from /proc/PID/smaps.</summary>
    private static List<MappedRange> ReadMappings(int pid, HashSet<string> canonicalPaths)
    {
        var ranges = new List<MappedRange>();
        (ulong Start, ulong End)? current = null;
        foreach (var line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            if (TryParseMappingHeader(line, out var start, out var end, out var path))
            {
                current = path is not null && canonicalPaths.Contains(path) ? (start, end) : null;
                continue;
            }
            if (current is { } range && line.StartsWith("Rss:", StringComparison.Ordinal))
            {
                ranges.Add(new MappedRange(range.Start, range.End, ParseKiB(line)));
                current = null;
            }
        }
        return ranges;
    }

    /// <summary>Parses a /proc/PID/maps (or smaps header) line: "start-end perms offset dev inode [path]".</summary>
    internal static bool TryParseMappingHeader(string line, out ulong start, out ulong end, out string? path)
    {
        start = end = 0;
        path = null;
        int dash = line.IndexOf('-');
        int space = line.IndexOf(' ');
        if (dash <= 0 || space <= dash
            || !ulong.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out start)
            || !ulong.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out end))
            return false;
        // skip perms, offset, dev and inode; what follows (after padding) is the path, which may contain spaces
        int position = space;
        for (int field = 0; field < 4; field++)
        {
            while (position < line.Length && line[position] == ' ') position++;
            while (position < line.Length && line[position] != ' ') position++;
        }
        while (position < line.Length && line[position] == ' ') position++;
        if (position < line.Length)
            path = line[position..];
        return true;
    }

    private static long ParseKiB(string line)
    {
        var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return parts.Length >= 2 && long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var kib) ? kib : 0;
    }

    /// <summary>realpath(3): /proc/PID/maps shows paths with every symbolic link resolved.</summary>
    private static unsafe string CanonicalPath(string path)
    {
        byte* resolved = realpath(path, null);
        if (resolved == null)
            return Path.GetFullPath(path);
        try
        {
            return Marshal.PtrToStringUTF8((nint)resolved) ?? Path.GetFullPath(path);
        }
        finally
        {
            NativeMemory.Free(resolved);
        }
    }
}
