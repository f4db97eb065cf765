namespace Sandbox.Runtime.Cgroups;

/// <summary>
/// An OCI linux.cgroupsPath turned into the directory it names below each cgroup hierarchy's root, as runc reads it:
/// - cgroupfs: "/kubepods/burstable/pod&lt;uid&gt;/&lt;id&gt;" is that path (a relative path is taken from the root too;
///   runc would take it from its own cgroup, which for a shim started by containerd is containerd's);
/// - systemd: "slice:prefix:name", e.g. "kubepods-burstable-pod&lt;uid&gt;.slice:cri-containerd:&lt;id&gt;", is the unit
///   prefix-name.scope inside the slice, and a slice "a-b-c.slice" lives in a.slice/a-b.slice/a-b-c.slice (systemd's
///   own rule). No systemd call is made: the directories are created as systemd would name them.
/// </summary>
public static class CgroupsPath
{
    /// <summary>The directory below a hierarchy root ("/a/b"), or null when <paramref name="cgroupsPath"/> is empty.
    /// Throws <see cref="FormatException"/> for a path that could leave the hierarchy ("..") or a bad systemd form.</summary>
    public static string? Resolve(string? cgroupsPath)
    {
        if (string.IsNullOrWhiteSpace(cgroupsPath))
            return null;
        string relative = IsSystemdForm(cgroupsPath) ? FromSystemd(cgroupsPath) : cgroupsPath;
        var parts = relative.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0)
            throw new FormatException($"cgroupsPath \"{cgroupsPath}\" names the root cgroup; a sandbox needs a cgroup of its own");
        if (parts.Any(p => p is "." or ".."))
            throw new FormatException($"cgroupsPath \"{cgroupsPath}\" has a . or .. component");
        return "/" + string.Join('/', parts);
    }

    /// <summary>"slice:prefix:name": exactly two colons and no slash (the form runc's systemd driver takes).</summary>
    public static bool IsSystemdForm(string cgroupsPath) =>
        cgroupsPath.Count(c => c == ':') == 2 && !cgroupsPath.Contains('/');

    /// <summary>The cgroupsPath containerd's CRI gives a pod's sandbox (getCgroupsPath): "slice:cri-containerd:id"
    /// when the parent is a systemd slice, else parent/id.</summary>
    public static string ForPod(string cgroupParent, string sandboxId)
    {
        if (cgroupParent.Length == 0)
            return "";
        string last = cgroupParent.TrimEnd('/').Split('/').Last();
        return last.EndsWith(".slice", StringComparison.Ordinal)
            ? $"{last}:cri-containerd:{sandboxId}"
            : cgroupParent.TrimEnd('/') + "/" + sandboxId;
    }

    private static string FromSystemd(string cgroupsPath)
    {
        var fields = cgroupsPath.Split(':');
        string slice = fields[0].Length == 0 ? "system.slice" : fields[0];
        string prefix = fields[1], name = fields[2];
        if (name.Length == 0)
            throw new FormatException($"cgroupsPath \"{cgroupsPath}\": the systemd form slice:prefix:name needs a name");
        if (!slice.EndsWith(".slice", StringComparison.Ordinal) || slice.Length == ".slice".Length)
            throw new FormatException($"cgroupsPath \"{cgroupsPath}\": \"{slice}\" is not a systemd slice (name.slice)");
        string unit = name.EndsWith(".slice", StringComparison.Ordinal) ? name : (prefix.Length > 0 ? $"{prefix}-{name}.scope" : $"{name}.scope");
        return ExpandSlice(slice) + "/" + unit;
    }

    /// <summary>systemd's slice nesting: "a-b-c.slice" → "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" is the root.</summary>
    public static string ExpandSlice(string slice)
    {
        if (slice == "-.slice")
            return "";
        string stem = slice[..^".slice".Length];
        if (stem.StartsWith('-') || stem.EndsWith('-') || stem.Contains("--", StringComparison.Ordinal))
            throw new FormatException($"\"{slice}\" is not a valid systemd slice name");
        var path = new System.Text.StringBuilder();
        string prefix = "";
        foreach (string component in stem.Split('-'))
        {
            prefix = prefix.Length == 0 ? component : prefix + "-" + component;
            path.Append('/').Append(prefix).Append(".slice");
        }
        return path.ToString();
    }
}
