namespace Sandbox.Hypervisors.Processes;

/// <summary>
/// The identity of a network namespace: the inode number of its nsfs file, the number in "net:[4026532177]".
/// Two paths (a process's /proc/PID/ns/net, a bind mount such as /var/run/netns/cni-…) name the same namespace exactly
/// when their numbers are equal. Used to check that a VMM really runs in the pod's namespace.
/// </summary>
public static class NetworkNamespaceIdentity
{
    /// <summary>The namespace of process <paramref name="pid"/>, from the link text of /proc/PID/ns/net.</summary>
    public static ulong OfProcess(int pid)
    {
        var link = $"/proc/{pid}/ns/net";
        var target = new FileInfo(link).LinkTarget ?? throw new IOException($"{link} is not a symbolic link");
        // "net:[4026532177]"
        if (!target.StartsWith("net:[", StringComparison.Ordinal) || !target.EndsWith(']') ||
            !ulong.TryParse(target.AsSpan(5, target.Length - 6), out var inode))
            throw new IOException($"{link} points to '{target}', not to a network namespace");
        return inode;
    }

    /// <summary>The namespace a file names (a bind-mounted nsfs file or a /proc/PID/ns/net link): the inode of the
    /// opened file, read from /proc/self/fdinfo (which has an "ino:" line since Linux 5.14).</summary>
    public static ulong OfPath(string path)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var fd = handle.DangerousGetHandle().ToInt64();
        foreach (var line in File.ReadLines($"/proc/self/fdinfo/{fd}"))
        {
            if (line.StartsWith("ino:", StringComparison.Ordinal) && ulong.TryParse(line.AsSpan(4).Trim(), out var inode))
                return inode;
        }
        throw new IOException($"/proc/self/fdinfo/{fd} (for {path}) has no ino: line; this kernel is older than 5.14");
    }
}
