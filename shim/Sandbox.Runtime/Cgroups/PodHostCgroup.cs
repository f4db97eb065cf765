using System.Globalization;

namespace Sandbox.Runtime.Cgroups;

/// <summary>
/// A sandbox's cgroup on the host: the directory its cgroupsPath names (<see cref="CgroupsPath"/>) in every mounted
/// hierarchy (<see cref="HostCgroupMounts"/>), where the VMM and each helper process of the sandbox live from the
/// moment they start, so that the kubelet sees and limits what the pod's VM costs (Kata's sandbox_cgroup_only).
/// - v1: the directory in each hierarchy; cpuset's new directories get their parent's cpus and mems (the kernel leaves
///   them empty, and an empty cpuset takes no process).
/// - v2: the directory, with the cpu, memory and pids controllers enabled down to it where the kernel lets us.
/// Only the leaf is removed at the end; the parents (the kubelet's pod cgroup, containerd's namespace) stay, as runc
/// leaves them.
/// </summary>
public sealed class PodHostCgroup
{
    private static readonly string[] V2Controllers = ["cpu", "memory", "pids"];

    private readonly List<(CgroupHierarchy Hierarchy, string Directory)> _directories;

    private PodHostCgroup(string sandboxId, string path, List<(CgroupHierarchy, string)> directories)
    {
        SandboxId = sandboxId;
        Path = path;
        _directories = directories;
    }

    public string SandboxId { get; }

    /// <summary>The directory below each hierarchy root, e.g. "/kubepods/burstable/pod1234/&lt;sandbox id&gt;".</summary>
    public string Path { get; }

    /// <summary>The directory in each hierarchy.</summary>
    public IReadOnlyList<string> Directories => _directories.Select(d => d.Directory).ToList();

    /// <summary>The cgroup.procs file of each directory: writing a pid there moves that process in.</summary>
    public IReadOnlyList<string> ProcsFiles => _directories.Select(d => System.IO.Path.Combine(d.Directory, "cgroup.procs")).ToList();

    /// <summary>Creates the directories (those that exist are kept). Throws <see cref="IOException"/> or
    /// <see cref="UnauthorizedAccessException"/> naming the directory that could not be made.</summary>
    public static PodHostCgroup Create(string sandboxId, string path, IReadOnlyList<CgroupHierarchy> hierarchies)
    {
        var directories = new List<(CgroupHierarchy, string)>();
        foreach (var hierarchy in hierarchies)
        {
            string directory = hierarchy.MountPoint + path;
            try
            {
                if (hierarchy.IsV2)
                    CreateV2(hierarchy.MountPoint, path);
                else
                    CreateV1(hierarchy, path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"sandbox {sandboxId}: cannot create its host cgroup {directory} ({hierarchy}): {e.Message}. " +
                                      $"Check that {hierarchy.MountPoint} is writable for containerd and its shims, or set [runtime] sandbox_cgroup = false", e);
            }
            directories.Add((hierarchy, directory));
        }
        return new PodHostCgroup(sandboxId, path, directories);
    }

    /// <summary>The cgroup as it already is (for the clean-up after a dead shim, from the sandbox's metadata);
    /// nothing is created.</summary>
    public static PodHostCgroup Existing(string sandboxId, string path, IReadOnlyList<CgroupHierarchy> hierarchies) =>
        new(sandboxId, path, hierarchies.Select(h => (h, h.MountPoint + path)).ToList());

    /// <summary>Moves process <paramref name="pid"/> (all its threads) into the cgroup in every hierarchy.</summary>
    public void Add(int pid)
    {
        foreach (string procs in ProcsFiles)
        {
            try
            {
                File.WriteAllText(procs, pid.ToString(CultureInfo.InvariantCulture));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"sandbox {SandboxId}: cannot move pid {pid} into its host cgroup ({procs}): {e.Message}", e);
            }
        }
    }

    /// <summary>The memory limit in bytes (v1 memory.limit_in_bytes, v2 memory.max).</summary>
    public void SetMemoryLimit(long bytes)
    {
        string text = bytes.ToString(CultureInfo.InvariantCulture);
        foreach (var (hierarchy, directory) in _directories)
        {
            string? file = hierarchy.IsV2 && File.Exists(System.IO.Path.Combine(directory, "memory.max")) ? "memory.max"
                : !hierarchy.IsV2 && hierarchy.Has("memory") ? "memory.limit_in_bytes"
                : null;
            if (file is null)
                continue;
            try
            {
                File.WriteAllText(System.IO.Path.Combine(directory, file), text);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"sandbox {SandboxId}: cannot set the memory limit of its host cgroup ({System.IO.Path.Combine(directory, file)} = {text}): " +
                                      $"{e.Message}. Check [hypervisor.qemu] host_memory_overhead, or set [runtime] sandbox_cgroup = false", e);
            }
        }
    }

    /// <summary>How many processes the kernel killed here for the memory limit (v1 memory.oom_control, v2
    /// memory.events: oom_kill). 0 when no hierarchy has the memory controller.</summary>
    public ulong OomKills()
    {
        foreach (var (hierarchy, directory) in _directories)
        {
            string file = hierarchy.IsV2 ? "memory.events" : "memory.oom_control";
            if ((hierarchy.IsV2 || hierarchy.Has("memory")) && KeyedValue(System.IO.Path.Combine(directory, file), "oom_kill") is { } kills)
                return kills;
        }
        return 0;
    }

    /// <summary>Memory charged here in bytes (v1 memory.usage_in_bytes, v2 memory.current), or null.</summary>
    public ulong? MemoryUsage()
    {
        foreach (var (hierarchy, directory) in _directories)
        {
            string file = hierarchy.IsV2 ? "memory.current" : "memory.usage_in_bytes";
            if ((hierarchy.IsV2 || hierarchy.Has("memory")) && ReadNumber(System.IO.Path.Combine(directory, file)) is { } bytes)
                return bytes;
        }
        return null;
    }

    /// <summary>The pids in the cgroup (of the first hierarchy that answers).</summary>
    public IReadOnlyList<int> Pids()
    {
        foreach (string procs in ProcsFiles)
        {
            try
            {
                return File.ReadAllLines(procs).Where(l => l.Length > 0).Select(l => int.Parse(l, CultureInfo.InvariantCulture)).ToList();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
        return [];
    }

    /// <summary>Removes the leaf directory in every hierarchy, retrying while the last processes finish exiting.
    /// Returns what could not be removed (empty when all went).</summary>
    public async Task<IReadOnlyList<string>> RemoveAsync(TimeSpan patience, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + patience;
        var left = new List<string>();
        foreach (string directory in Directories)
        {
            while (true)
            {
                try
                {
                    if (Directory.Exists(directory))
                        Directory.Delete(directory); // rmdir: a cgroup's files are not real files
                    break;
                }
                catch (IOException) when (DateTime.UtcNow < deadline && !cancellationToken.IsCancellationRequested)
                {
                    await Task.Delay(50, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    left.Add($"{directory}: {e.Message}");
                    break;
                }
            }
        }
        return left;
    }

    private static void CreateV1(CgroupHierarchy hierarchy, string path)
    {
        string current = hierarchy.MountPoint;
        foreach (string part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            string parent = current;
            current = System.IO.Path.Combine(current, part);
            Directory.CreateDirectory(current);
            // every level, not only the ones made here: when pods start at once, another shim may have just made the
            // parent and not yet given it cpus and mems, and a child of an empty cpuset stays empty (ENOSPC on
            // cgroup.procs). Writing the same values twice is harmless (runc's cpuset code does the same).
            if (hierarchy.Has("cpuset"))
            {
                CopyIfEmpty(parent, current, "cpuset.cpus");
                CopyIfEmpty(parent, current, "cpuset.mems");
            }
        }
    }

    private static void CreateV2(string mountPoint, string path)
    {
        string current = mountPoint;
        foreach (string part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            EnableControllers(current);
            current = System.IO.Path.Combine(current, part);
            Directory.CreateDirectory(current);
        }
    }

    /// <summary>Best effort: a parent that holds processes itself cannot enable controllers for its children (v2's
    /// no-internal-process rule); the cgroup then still holds the processes, without those limits.</summary>
    private static void EnableControllers(string directory)
    {
        try
        {
            var available = File.ReadAllText(System.IO.Path.Combine(directory, "cgroup.controllers")).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var enabled = File.ReadAllText(System.IO.Path.Combine(directory, "cgroup.subtree_control")).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (string controller in V2Controllers.Where(c => available.Contains(c) && !enabled.Contains(c)))
                File.WriteAllText(System.IO.Path.Combine(directory, "cgroup.subtree_control"), "+" + controller);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    private static void CopyIfEmpty(string parent, string directory, string file)
    {
        string target = System.IO.Path.Combine(directory, file);
        if (File.Exists(target) && File.ReadAllText(target).Trim().Length == 0)
            File.WriteAllText(target, File.ReadAllText(System.IO.Path.Combine(parent, file)).Trim());
    }

    private static ulong? ReadNumber(string file)
    {
        try
        {
            return ulong.TryParse(File.ReadAllText(file).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out ulong value) ? value : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static ulong? KeyedValue(string file, string key)
    {
        try
        {
            foreach (string line in File.ReadLines(file))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length == 2 && fields[0] == key && ulong.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out ulong value))
                    return value;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return null;
    }
}
