using System.Text.Json;
using Sandbox.Runtime.Cgroups;
using Sandbox.Runtime.Configuration;
using Sandbox.Shim.Backend;

namespace Sandbox.Shim.Vm;

/// <summary>
/// Where a sandbox's QEMU and helpers run on the host, and with what memory limit:
/// - the cgroup its cgroupsPath names: the sandbox container's linux.cgroupsPath (CRI: the kubelet's pod cgroup +
///   the sandbox id; `ctr run`: /&lt;namespace&gt;/&lt;id&gt;, where runc would put the container), or for the Sandbox API
///   what containerd's CRI would make of the pod's cgroup_parent;
/// - a memory limit only when the pod has one: the VM's memory (the guest's default + the pod's limit) plus
///   [hypervisor.qemu] host_memory_overhead. The kubelet's own pod cgroup above it holds the pod's limit plus the
///   RuntimeClass overhead.
/// Nothing when [runtime] sandbox_cgroup is false or the spec names no cgroup.
/// </summary>
internal sealed record PodHostCgroupPlan(string? Path, long? MemoryLimit, string Reason)
{
    private const long MiB = 1024 * 1024;

    public static PodHostCgroupPlan For(PodSandboxSpec pod, PodVmSize size, SandboxConfiguration configuration)
    {
        if (!configuration.Runtime.SandboxCgroup)
            return new PodHostCgroupPlan(null, null, "none ([runtime] sandbox_cgroup = false): QEMU stays in the shim's cgroup");
        string? path = CgroupsPath.Resolve(pod.CgroupsPath); // FormatException: the caller reports it as InvalidArgument
        if (path is null)
            return new PodHostCgroupPlan(null, null, "none (the sandbox names no cgroupsPath): QEMU stays in the shim's cgroup");
        string where = path == pod.CgroupsPath ? path : $"{path} (cgroupsPath {pod.CgroupsPath})";
        if (!PodVmSize.HasPodMemoryLimit(pod.Annotations))
            return new PodHostCgroupPlan(path, null, $"{where}, no memory limit (the pod has none)");
        long limit = (size.MemoryMiB + (long)configuration.Qemu.HostMemoryOverheadMiB) * MiB;
        return new PodHostCgroupPlan(path, limit,
            $"{where}, memory limit {size.MemoryMiB + configuration.Qemu.HostMemoryOverheadMiB} MiB " +
            $"(the VM's {size.MemoryMiB} MiB + host_memory_overhead {configuration.Qemu.HostMemoryOverheadMiB} MiB)");
    }

    /// <summary>linux.cgroupsPath of a config.json ("" when absent or not readable).</summary>
    public static string CgroupsPathOf(string specJson)
    {
        try
        {
            using var document = JsonDocument.Parse(specJson);
            return document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("linux", out var linux) && linux.ValueKind == JsonValueKind.Object
                && linux.TryGetProperty("cgroupsPath", out var path) && path.ValueKind == JsonValueKind.String
                ? path.GetString()!
                : "";
        }
        catch (JsonException)
        {
            return "";
        }
    }
}
