namespace Sandbox.Runtime.Cgroups;

/// <summary>One mounted cgroup hierarchy: v1 with its controllers (memory, cpu, pids, ...; "name=systemd" for a
/// named one), or the v2 unified hierarchy.</summary>
public sealed record CgroupHierarchy(string MountPoint, bool IsV2, IReadOnlyList<string> Controllers)
{
    public bool Has(string controller) => Controllers.Contains(controller);

    public override string ToString() => IsV2 ? $"cgroup2 at {MountPoint}" : $"cgroup v1 {string.Join(',', Controllers)} at {MountPoint}";
}

/// <summary>
/// The cgroup hierarchies this host mounts, read from /proc/self/mountinfo: a v1 host (one mount per controller
/// group, as this project's CI machines have), a v2 host (one cgroup2 mount), or a hybrid host (both: v1 controllers
/// and an empty cgroup2 at /sys/fs/cgroup/unified, as systemd sets up). The first mount of each hierarchy counts.
/// </summary>
public static class HostCgroupMounts
{
    public static IReadOnlyList<CgroupHierarchy> Read(string mountInfoPath = "/proc/self/mountinfo") =>
        Parse(File.ReadAllLines(mountInfoPath));

    public static IReadOnlyList<CgroupHierarchy> Parse(IEnumerable<string> mountInfoLines)
    {
        var hierarchies = new List<CgroupHierarchy>();
        foreach (string line in mountInfoLines)
        {
            // "36 25 0:31 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory"
            int separator = line.IndexOf(" - ", StringComparison.Ordinal);
            if (separator < 0)
                continue;
            var left = line[..separator].Split(' ');
            var right = line[(separator + 3)..].Split(' ');
            if (left.Length < 5 || right.Length < 3 || left[3] != "/")
                continue; // a bind of a sub-directory (a container's view) is not a hierarchy root
            string mountPoint = Unescape(left[4]);
            if (right[0] == "cgroup2")
            {
                if (!hierarchies.Any(h => h.IsV2))
                    hierarchies.Add(new CgroupHierarchy(mountPoint, true, []));
            }
            else if (right[0] == "cgroup")
            {
                var controllers = right[2].Split(',').Where(o => o is not ("rw" or "ro" or "relatime" or "noexec" or "nosuid" or "nodev")
                    && !o.StartsWith("release_agent=", StringComparison.Ordinal) && o != "clone_children" && o != "noprefix").ToList();
                if (controllers.Count > 0 && !hierarchies.Any(h => !h.IsV2 && h.Controllers.SequenceEqual(controllers)))
                    hierarchies.Add(new CgroupHierarchy(mountPoint, false, controllers));
            }
        }
        return hierarchies;
    }

    /// <summary>mountinfo escapes space, tab, newline and backslash as \ooo.</summary>
    private static string Unescape(string field) =>
        field.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal)
             .Replace("\\012", "\n", StringComparison.Ordinal).Replace("\\134", "\\", StringComparison.Ordinal);
}
