using System.Globalization;
using Sandbox.Hypervisors.Processes;
using Sandbox.Runtime.Cgroups;
using Xunit;
using Xunit.Abstractions;

namespace Sandbox.Cri.Tests.Fixture;

/// <summary>
/// What the kubelet relies on for a VM pod on the host: QEMU and its helpers in the pod's cgroup (the fixture's
/// cgroup_parent + the sandbox id, as containerd's CRI names it), that cgroup limited to the VM's memory plus the
/// VMM's overhead, and the VM's memory charged there.
/// </summary>
internal static class PodHostCgroupCheck
{
    private const long MiB = 1024 * 1024;

    /// <summary>The pod's cgroup path below each hierarchy root.</summary>
    public static string PathOf(CriFixture fixture, TestPod pod) => fixture.CgroupParent + "/" + pod.Id;

    /// <summary>The memory controller's directory of the pod's cgroup (v1 memory hierarchy, or v2).</summary>
    public static string MemoryDirectory(CriFixture fixture, TestPod pod)
    {
        var hierarchy = HostCgroupMounts.Read().First(h => h.IsV2 ? File.Exists(Path.Combine(h.MountPoint, "cgroup.controllers"))
            && File.ReadAllText(Path.Combine(h.MountPoint, "cgroup.controllers")).Contains("memory") : h.Has("memory"));
        return hierarchy.MountPoint + PathOf(fixture, pod);
    }

    public static void AssertVmProcessesAreInThePodsCgroup(CriFixture fixture, TestPod pod, ITestOutputHelper output)
    {
        string expected = PathOf(fixture, pod);
        var vm = LeftoverVmProcesses.Find(Path.Combine(fixture.StateRoot, pod.Id));
        Assert.Contains(vm, p => p.CommandLine.Contains("qemu-system", StringComparison.Ordinal));
        foreach (var process in vm)
        {
            var lines = File.ReadAllLines($"/proc/{process.Pid}/cgroup");
            output.WriteLine($"pid {process.Pid} ({process.CommandLine[..Math.Min(40, process.CommandLine.Length)]}...):\n  {string.Join("\n  ", lines)}");
            // "4:memory:/sbx-cri-1234/<pod id>" on v1, "0::/sbx-cri-1234/<pod id>" on v2; a hybrid host has both
            foreach (string line in lines)
            {
                string path = line.Split(':', 3)[2];
                if (line.StartsWith("0::", StringComparison.Ordinal) && lines.Length > 1 && path == "/")
                    continue; // a v1 host without a mounted cgroup2: the v2 line stays at the root
                Assert.True(path == expected, $"pid {process.Pid}: {line}, expected {expected}");
            }
        }
    }

    /// <summary>The pod cgroup's limit, and its usage against QEMU's resident memory.</summary>
    public static (long Limit, long Usage, long QemuRss) Memory(CriFixture fixture, TestPod pod)
    {
        string directory = MemoryDirectory(fixture, pod);
        bool v2 = File.Exists(Path.Combine(directory, "memory.max"));
        long limit = long.Parse(File.ReadAllText(Path.Combine(directory, v2 ? "memory.max" : "memory.limit_in_bytes")).Trim(), CultureInfo.InvariantCulture);
        long usage = long.Parse(File.ReadAllText(Path.Combine(directory, v2 ? "memory.current" : "memory.usage_in_bytes")).Trim(), CultureInfo.InvariantCulture);
        var qemu = LeftoverVmProcesses.Find(Path.Combine(fixture.StateRoot, pod.Id)).First(p => p.CommandLine.Contains("qemu-system", StringComparison.Ordinal));
        string rssLine = File.ReadLines($"/proc/{qemu.Pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        long rss = long.Parse(rssLine.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        return (limit, usage, rss);
    }

    /// <summary>Sets the pod cgroup's memory limit by hand (v1 memory.limit_in_bytes or v2 memory.max).</summary>
    public static void SetMemoryLimit(CriFixture fixture, TestPod pod, long bytes)
    {
        string directory = MemoryDirectory(fixture, pod);
        string file = File.Exists(Path.Combine(directory, "memory.max")) ? "memory.max" : "memory.limit_in_bytes";
        File.WriteAllText(Path.Combine(directory, file), bytes.ToString(CultureInfo.InvariantCulture));
    }

    public static long ExpectedLimit(int vmMemoryMiB, int overheadMiB = 160) => (vmMemoryMiB + overheadMiB) * MiB;
}
