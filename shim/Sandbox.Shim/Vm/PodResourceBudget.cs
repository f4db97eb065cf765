using System.Globalization;
using System.Text.Json;
using Sandbox.Shim.Backend;

namespace Sandbox.Shim.Vm;

/// <summary>A container's CPU and memory limits as its cgroup in the guest has them. 0 = no limit.</summary>
internal sealed record ContainerLimits(long MemoryBytes, long CpuQuota, long CpuPeriod)
{
    public static readonly ContainerLimits None = new(0, 0, 0);

    /// <summary>CPUs the quota allows (quota / period), 0 = no limit.</summary>
    public double Cpus => CpuQuota > 0 && CpuPeriod > 0 ? (double)CpuQuota / CpuPeriod : 0;

    /// <summary>linux.resources of a config.json (none when absent or not readable: the create itself checks the spec).</summary>
    public static ContainerLimits OfSpec(string specJson)
    {
        try
        {
            using var document = JsonDocument.Parse(specJson);
            if (!document.RootElement.TryGetProperty("linux", out var linux) || linux.ValueKind != JsonValueKind.Object
                || !linux.TryGetProperty("resources", out var resources) || resources.ValueKind != JsonValueKind.Object)
                return None;
            long memory = Number(resources, "memory", "limit");
            long quota = Number(resources, "cpu", "quota");
            long period = Number(resources, "cpu", "period");
            return new ContainerLimits(Math.Max(memory, 0), Math.Max(quota, 0), period > 0 ? period : 100_000);
        }
        catch (JsonException)
        {
            return None;
        }
    }

    /// <summary>These limits after <paramref name="update"/> (-1 = no limit; fields it does not set stay).</summary>
    public ContainerLimits With(ContainerResources update) => new(
        update.MemoryLimit is { } memory ? Math.Max(memory, 0) : MemoryBytes,
        update.CpuQuota is { } quota ? Math.Max(quota, 0) : CpuQuota,
        update.CpuPeriod is > 0 ? update.CpuPeriod.Value : CpuPeriod > 0 ? CpuPeriod : 100_000);

    private static long Number(JsonElement resources, string section, string name) =>
        resources.TryGetProperty(section, out var s) && s.ValueKind == JsonValueKind.Object
        && s.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long number)
            ? number
            : 0;
}

/// <summary>
/// What a pod's VM can give its containers. The VM is sized once, at boot (<see cref="PodVmSize"/>), and does not
/// grow: this runtime does no CPU or memory hotplug (see the README). So a Task Update that would make the pod's
/// containers together allowed more memory than the VM has, or more CPUs than it has vCPUs, is refused, naming the
/// VM's size and what was asked: the limit would be a promise the guest cannot keep. Lowering limits is always allowed.
/// </summary>
internal static class PodResourceBudget
{
    private const long MiB = 1024 * 1024;

    /// <summary>null when the update fits; else the error to give.</summary>
    public static string? RefusalFor(string containerId, int vmVcpus, int vmMemoryMiB,
        IEnumerable<ContainerLimits> otherContainers, ContainerLimits current, ContainerLimits updated)
    {
        var others = otherContainers.ToList();
        if (updated.MemoryBytes > current.MemoryBytes)
        {
            long total = others.Sum(c => c.MemoryBytes) + updated.MemoryBytes;
            if (total > vmMemoryMiB * MiB)
            {
                return $"update container {containerId}: memory limit {Mib(updated.MemoryBytes)} MiB would give the pod's containers " +
                       $"{Mib(total)} MiB in all, more than its VM's {vmMemoryMiB} MiB; the VM cannot grow (no memory hotplug). " +
                       "Recreate the pod with the larger limit (its VM is sized from the pod's limits when it starts)";
            }
        }
        if (updated.Cpus > current.Cpus)
        {
            double total = others.Sum(c => c.Cpus) + updated.Cpus;
            if (total > vmVcpus + 1e-9)
            {
                return $"update container {containerId}: CPU limit {updated.Cpus.ToString("0.###", CultureInfo.InvariantCulture)} would give the pod's " +
                       $"containers {total.ToString("0.###", CultureInfo.InvariantCulture)} CPUs in all, more than its VM's {vmVcpus} vCPU(s); " +
                       "the VM cannot grow (no CPU hotplug). Recreate the pod with the larger limit";
            }
        }
        return null;
    }

    private static string Mib(long bytes) => ((bytes + MiB - 1) / MiB).ToString(CultureInfo.InvariantCulture);
}
