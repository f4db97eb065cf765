using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Sandbox.Hypervisors.Processes;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Cri.Tests.Fixture;

/// <summary>
/// What a removed pod may have left on the host: processes naming the pod or one of its containers (shim `-id`,
/// QEMU and vhost-device-vsock through the pod's state directory), the sandbox task's process, mounts, containerd's
/// and CRI's per-pod directories, the shim's state directory and (runc) socket, runc state, the network namespace, the IP lease, libcni's
/// cached result, cgroups and taps in the host's namespace.
/// </summary>
public static partial class PodLeftovers
{
    public const string CniResultCache = "/var/lib/cni/results";

    /// <summary>Polls (up to 30 s: the shim exits after containerd's Shutdown and `delete`) and returns what remains.</summary>
    public static async Task<IReadOnlyList<string>> WaitUntilGoneAsync(CriFixture fixture, TestPod pod)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var leftovers = await FindAsync(fixture, pod);
            if (leftovers.Count == 0 || DateTime.UtcNow > deadline)
                return leftovers;
            await Task.Delay(100);
        }
    }

    public static async Task<IReadOnlyList<string>> FindAsync(CriFixture fixture, TestPod pod)
    {
        var ids = new[] { pod.Id }.Concat(pod.Containers.Values).ToArray();
        var found = new List<string>();

        foreach (var (pid, commandLine) in Processes())
        {
            if (ids.Any(id => commandLine.Contains(id, StringComparison.Ordinal)))
                found.Add($"process {pid}: {commandLine}");
        }
        foreach (var vmm in LeftoverVmProcesses.Find(Path.Combine(fixture.StateRoot, pod.Id)))
            found.Add($"VM process {vmm.Pid}: {vmm.CommandLine}");
        if (pod.SandboxPid > 0 && StartTimeOf(pod.SandboxPid) is { } start && start == pod.SandboxPidStartTime)
            found.Add($"sandbox task process {pod.SandboxPid}: {CommandLineOf(pod.SandboxPid)}");

        foreach (var mountPoint in File.ReadAllLines("/proc/self/mountinfo").Select(line => line.Split(' ')[4]))
        {
            if (ids.Any(id => mountPoint.Contains(id, StringComparison.Ordinal)))
                found.Add($"mount {mountPoint}");
        }

        var directories = new List<string> { Path.Combine(fixture.StateRoot, pod.Id) };
        foreach (var id in ids)
        {
            directories.Add(Path.Combine(fixture.Containerd.StateDirectory, "io.containerd.runtime.v2.task", "k8s.io", id));
            directories.Add(Path.Combine(fixture.RuncRoot, "k8s.io", id));
            foreach (var kind in new[] { "sandboxes", "containers" })
            {
                directories.Add(Path.Combine(fixture.Containerd.RootDirectory, "io.containerd.grpc.v1.cri", kind, id));
                directories.Add(Path.Combine(fixture.Containerd.StateDirectory, "io.containerd.grpc.v1.cri", kind, id));
            }
        }
        found.AddRange(directories.Where(Directory.Exists).Select(d => $"directory {d}"));
        foreach (var id in ids)
            found.AddRange(CgroupDirectories(fixture.CgroupParent + "/" + id).Where(Directory.Exists).Select(d => $"cgroup {d}"));

        // containerd-shim-runc-v2's socket: /run/containerd/s/sha256("<containerd address>/<namespace>/<group id>")
        string runcShimSocket = RuncShimSocket(fixture.Containerd.GrpcAddress, pod.Id);
        if (File.Exists(runcShimSocket))
            found.Add($"shim socket {runcShimSocket}");

        if (pod.NetworkNamespacePath.Length > 0 && File.Exists(pod.NetworkNamespacePath))
            found.Add($"network namespace {pod.NetworkNamespacePath}");
        // libcni caches each ADD result here (not configurable in containerd 1.6) until the DEL
        if (Directory.Exists(CniResultCache))
            found.AddRange(Directory.GetFiles(CniResultCache).Where(f => f.Contains(pod.Id, StringComparison.Ordinal)).Select(f => $"CNI result {f}"));
        if (pod.Ip.Length > 0 && fixture.Network.LeasedAddresses().Contains(pod.Ip))
            found.Add($"IPAM lease of {pod.Ip} in {fixture.Network.IpamDirectory}");
        found.AddRange((await HostTapsAsync()).Select(tap => $"tap {tap} in the host's network namespace"));
        return found;
    }

    /// <summary>Taps named like the shim's (tapN_sbx) in the host's namespace: they belong in a pod's namespace only.</summary>
    public static async Task<IReadOnlyList<string>> HostTapsAsync()
    {
        var links = await ExternalCommand.RunAsync("ip", new[] { "-o", "link", "show" }, TimeSpan.FromSeconds(30));
        return links.Stdout.Split('\n')
            .Select(line => TapLine().Match(line))
            .Where(m => m.Success)
            .Select(m => m.Groups[1].Value)
            .ToArray();
    }

    public static string RuncShimSocket(string containerdAddress, string podId) =>
        Path.Combine("/run/containerd/s", Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{containerdAddress}/k8s.io/{podId}"))));

    /// <summary>The cgroup <paramref name="path"/> in every hierarchy (cgroup v1: one per controller; v2: one).</summary>
    public static IEnumerable<string> CgroupDirectories(string path)
    {
        const string root = "/sys/fs/cgroup";
        string relative = path.TrimStart('/');
        if (File.Exists(Path.Combine(root, "cgroup.controllers")))
            return new[] { Path.Combine(root, relative) };
        return Directory.Exists(root)
            ? Directory.GetDirectories(root).Select(hierarchy => Path.Combine(hierarchy, relative))
            : Array.Empty<string>();
    }

    public static string? StartTimeOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields[0] == "Z" ? null : fields[19]; // fields after the name start at 3 (state); starttime is 22
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string CommandLineOf(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").TrimEnd('\0').Replace('\0', ' ');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "(exited)";
        }
    }

    private static IEnumerable<(int Pid, string CommandLine)> Processes()
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid) || pid == Environment.ProcessId)
                continue;
            string commandLine = CommandLineOf(pid);
            if (commandLine.Length > 0 && commandLine != "(exited)")
                yield return (pid, commandLine);
        }
    }

    [GeneratedRegex(@"^\d+: (tap\d+_sbx)[@:]")]
    private static partial Regex TapLine();
}
