using System.Diagnostics;
using Sandbox.Runtime.Cgroups;
using Xunit;

namespace Sandbox.UnitTests;

public class CgroupsPathTests
{
    [Theory]
    [InlineData("/kubepods/burstable/pod1234/abc", "/kubepods/burstable/pod1234/abc")]
    [InlineData("default/abc", "/default/abc")]
    [InlineData("kubepods-burstable-pod1234.slice:cri-containerd:abc", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-abc.scope")]
    [InlineData(":cri-containerd:abc", "/system.slice/cri-containerd-abc.scope")]
    [InlineData("machine.slice::abc", "/machine.slice/abc.scope")]
    public void Cgroupfs_and_systemd_paths_name_the_same_directories_runc_uses(string cgroupsPath, string expected) =>
        Assert.Equal(expected, CgroupsPath.Resolve(cgroupsPath));

    [Theory]
    [InlineData("/kubepods/../../etc", ". or ..")]
    [InlineData("/", "root cgroup")]
    [InlineData("notaslice:p:abc", "not a systemd slice")]
    [InlineData("a--b.slice:p:abc", "not a valid systemd slice name")]
    [InlineData("kubepods.slice:p:", "needs a name")]
    public void Paths_that_leave_the_hierarchy_or_are_malformed_are_refused(string cgroupsPath, string expected)
    {
        var error = Assert.Throws<FormatException>(() => CgroupsPath.Resolve(cgroupsPath));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void No_cgroupsPath_means_no_cgroup() => Assert.Null(CgroupsPath.Resolve(""));

    [Fact]
    public void A_pods_path_is_what_containerds_CRI_gives_its_sandbox()
    {
        Assert.Equal("/kubepods/burstable/pod1/sb", CgroupsPath.ForPod("/kubepods/burstable/pod1", "sb"));
        Assert.Equal("kubepods-burstable-pod1.slice:cri-containerd:sb", CgroupsPath.ForPod("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice", "sb"));
        Assert.Equal("", CgroupsPath.ForPod("", "sb"));
    }
}

public class HostCgroupMountsTests
{
    [Fact]
    public void A_v1_host_with_a_hybrid_cgroup2_mount_is_read_hierarchy_by_hierarchy()
    {
        var hierarchies = HostCgroupMounts.Parse([
            "25 24 0:22 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755",
            "26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw,nsdelegate",
            "27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd",
            "30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct",
            "31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory",
            "90 80 0:28 /kubepods/pod1 /run/c/sys/fs/cgroup/memory ro - cgroup cgroup rw,memory",
        ]);
        Assert.Equal(4, hierarchies.Count);
        Assert.True(hierarchies[0].IsV2);
        Assert.Contains(hierarchies, h => h.Has("name=systemd"));
        Assert.Contains(hierarchies, h => h.Has("cpu") && h.Has("cpuacct") && h.MountPoint == "/sys/fs/cgroup/cpu,cpuacct");
        Assert.Single(hierarchies, h => h.Has("memory"));
    }

    [Fact]
    public void A_v2_host_has_one_hierarchy() =>
        Assert.Equal([new CgroupHierarchy("/sys/fs/cgroup", true, [])],
            HostCgroupMounts.Parse(["30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot"]),
            new CgroupHierarchyComparer());

    private sealed class CgroupHierarchyComparer : IEqualityComparer<CgroupHierarchy>
    {
        public bool Equals(CgroupHierarchy? x, CgroupHierarchy? y) =>
            x is not null && y is not null && x.MountPoint == y.MountPoint && x.IsV2 == y.IsV2 && x.Controllers.SequenceEqual(y.Controllers);

        public int GetHashCode(CgroupHierarchy obj) => obj.MountPoint.GetHashCode();
    }
}

/// <summary>
/// <see cref="PodHostCgroup"/> on real cgroup file systems: this host's own hierarchies (v1 here), and a private
/// cgroup2 mount, which is how a v2 host's files behave (a v1 host's cgroup2 mount has no controllers: placement and
/// removal are tested on it, not limits).
/// </summary>
public sealed class PodHostCgroupTests : IDisposable
{
    private readonly string _path = "/sbx-unit-" + Guid.NewGuid().ToString("N")[..8] + "/pod/sandbox";
    private readonly List<string> _mounts = new();

    [Fact]
    public async Task On_this_hosts_hierarchies_a_process_moves_in_the_limit_is_set_and_the_leaf_is_removed()
    {
        var hierarchies = HostCgroupMounts.Read();
        var cgroup = PodHostCgroup.Create("sb", _path, hierarchies);
        using var sleeper = Process.Start("sleep", "60");
        try
        {
            cgroup.Add(sleeper.Id);
            foreach (var line in File.ReadAllLines($"/proc/{sleeper.Id}/cgroup").Where(l => !l.StartsWith("0::", StringComparison.Ordinal) || hierarchies.Any(h => h.IsV2)))
                Assert.EndsWith(":" + _path, line);
            Assert.Equal([sleeper.Id], cgroup.Pids());
            if (hierarchies.Any(h => h.Has("memory")))
            {
                cgroup.SetMemoryLimit(64L << 20);
                string memory = hierarchies.First(h => h.Has("memory")).MountPoint + _path;
                Assert.Equal((64L << 20).ToString(), File.ReadAllText(Path.Combine(memory, "memory.limit_in_bytes")).Trim());
                Assert.Equal(0ul, cgroup.OomKills());
                Assert.NotNull(cgroup.MemoryUsage());
            }
        }
        finally
        {
            sleeper.Kill();
            await sleeper.WaitForExitAsync();
        }
        Assert.Empty(await cgroup.RemoveAsync(TimeSpan.FromSeconds(5), CancellationToken.None));
        Assert.All(cgroup.Directories, d => Assert.False(Directory.Exists(d)));
        Assert.All(hierarchies, h => Assert.True(Directory.Exists(h.MountPoint + Path.GetDirectoryName(_path)), "the parents stay"));
        RemoveParents(hierarchies);
    }

    [Fact]
    public async Task On_a_cgroup2_mount_a_process_moves_in_and_the_leaf_is_removed()
    {
        string mountPoint = Directory.CreateTempSubdirectory("sbx-cgroup2-").FullName;
        var mount = Process.Start("mount", ["-t", "cgroup2", "none", mountPoint]);
        await mount.WaitForExitAsync();
        Assert.True(mount.ExitCode == 0, $"mount -t cgroup2 at {mountPoint} failed");
        _mounts.Add(mountPoint);
        // the same hierarchy as the host's own cgroup2 mount, if it has one (a hybrid host): only its first mount is
        // what HostCgroupMounts reports, so this one is named by hand
        CgroupHierarchy[] hierarchies = [new CgroupHierarchy(mountPoint, true, [])];

        var cgroup = PodHostCgroup.Create("sb", _path, hierarchies);
        using var sleeper = Process.Start("sleep", "60");
        try
        {
            cgroup.Add(sleeper.Id);
            Assert.Contains("0::" + _path, File.ReadAllLines($"/proc/{sleeper.Id}/cgroup"));
            Assert.Equal([sleeper.Id], cgroup.Pids());
        }
        finally
        {
            sleeper.Kill();
            await sleeper.WaitForExitAsync();
        }
        Assert.Empty(await cgroup.RemoveAsync(TimeSpan.FromSeconds(5), CancellationToken.None));
        Assert.False(Directory.Exists(mountPoint + _path));
        RemoveParents(hierarchies);
    }

    /// <summary>Pods started at once: another shim has just made the parent directories and not yet given cpuset its
    /// cpus and mems (a v1 cpuset starts empty). The pod's cgroup must still take a process, not fail with ENOSPC.
    /// On a host without a v1 cpuset hierarchy the parents have nothing to fill and the process still moves in.</summary>
    [Fact]
    public async Task Parents_made_by_another_shim_and_not_yet_filled_still_give_a_cpuset_that_takes_processes()
    {
        var hierarchies = HostCgroupMounts.Read();
        foreach (var hierarchy in hierarchies)
            Directory.CreateDirectory(hierarchy.MountPoint + Path.GetDirectoryName(_path)); // mkdir only, as the other shim so far
        var cgroup = PodHostCgroup.Create("sb", _path, hierarchies);
        using var sleeper = Process.Start("sleep", "60");
        try
        {
            cgroup.Add(sleeper.Id);
            Assert.Equal([sleeper.Id], cgroup.Pids());
            foreach (var cpuset in hierarchies.Where(h => !h.IsV2 && h.Has("cpuset")))
                Assert.NotEqual("", File.ReadAllText(Path.Combine(cpuset.MountPoint + Path.GetDirectoryName(_path), "cpuset.cpus")).Trim());
        }
        finally
        {
            sleeper.Kill();
            await sleeper.WaitForExitAsync();
        }
        Assert.Empty(await cgroup.RemoveAsync(TimeSpan.FromSeconds(5), CancellationToken.None));
        RemoveParents(hierarchies);
    }

    [Fact]
    public void A_process_that_cannot_move_in_gives_an_error_naming_the_sandbox_and_the_file()
    {
        var cgroup = PodHostCgroup.Create("sb-x", _path, HostCgroupMounts.Read());
        var error = Assert.Throws<IOException>(() => cgroup.Add(int.MaxValue - 7));
        Assert.Contains("sandbox sb-x: cannot move pid", error.Message);
        Assert.Contains("cgroup.procs", error.Message);
        RemoveParents(HostCgroupMounts.Read());
    }

    private void RemoveParents(IEnumerable<CgroupHierarchy> hierarchies)
    {
        foreach (var hierarchy in hierarchies)
        {
            for (string? directory = _path; directory is { Length: > 1 }; directory = Path.GetDirectoryName(directory))
            {
                if (Directory.Exists(hierarchy.MountPoint + directory))
                    Directory.Delete(hierarchy.MountPoint + directory);
            }
        }
    }

    public void Dispose()
    {
        try
        {
            RemoveParents(HostCgroupMounts.Read().Concat(_mounts.Select(m => new CgroupHierarchy(m, true, []))));
        }
        catch (IOException)
        {
        }
        foreach (string mountPoint in _mounts)
        {
            using var umount = Process.Start("umount", [mountPoint]);
            umount.WaitForExit();
            Directory.Delete(mountPoint);
        }
    }
}
