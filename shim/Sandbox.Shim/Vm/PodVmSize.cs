using System.Globalization;
using System.Text.Json;

namespace Sandbox.Shim.Vm;

/// <summary>
/// The vCPUs and memory of a pod's VM. CRI puts the pod's resources (the sum of its containers' limits, when the
/// kubelet passes LinuxPodSandboxConfig.resources) on the sandbox container as annotations; as in Kata, the
/// configuration's defaults are what the guest itself needs and the pod's limits come on top:
/// vCPUs = default_vcpus + ceil(cpu quota / cpu period), memory = default_memory + ceil(memory limit / 1 MiB),
/// each capped by the host (its CPUs, its physical memory) but never below the default. An annotation that is missing,
/// not a number, 0 or negative (-1 = unlimited) adds nothing.
/// </summary>
internal sealed record PodVmSize(int Vcpus, int MemoryMiB, string Reason)
{
    public const string CpuQuotaAnnotation = "io.kubernetes.cri.sandbox-cpu-quota";
    public const string CpuPeriodAnnotation = "io.kubernetes.cri.sandbox-cpu-period";
    public const string MemoryAnnotation = "io.kubernetes.cri.sandbox-memory";

    private const long MiB = 1024 * 1024;

    public static PodVmSize From(IReadOnlyDictionary<string, string> annotations, int defaultVcpus, int defaultMemoryMiB,
        int hostCpus, long hostMemoryMiB)
    {
        long quota = Number(annotations, CpuQuotaAnnotation);
        long period = Number(annotations, CpuPeriodAnnotation);
        long memoryBytes = Number(annotations, MemoryAnnotation);

        long extraVcpus = quota > 0 && period > 0 ? (quota + period - 1) / period : 0;
        long extraMemoryMiB = memoryBytes > 0 ? (memoryBytes + MiB - 1) / MiB : 0;
        int vcpus = (int)Math.Max(defaultVcpus, Math.Min(defaultVcpus + extraVcpus, hostCpus));
        int memoryMiB = (int)Math.Max(defaultMemoryMiB, Math.Min(defaultMemoryMiB + extraMemoryMiB, Math.Min(hostMemoryMiB, int.MaxValue)));

        string reason = extraVcpus == 0 && extraMemoryMiB == 0
            ? "the configured defaults (no pod CPU or memory limit)"
            : $"defaults {defaultVcpus} vCPU(s) and {defaultMemoryMiB} MiB + the pod's limits " +
              $"(cpu quota {quota}/period {period} = {extraVcpus}, memory {extraMemoryMiB} MiB), " +
              $"capped by the host's {hostCpus} CPU(s) and {hostMemoryMiB} MiB";
        return new PodVmSize(vcpus, memoryMiB, reason);
    }

    /// <summary><see cref="From"/> the annotations of a sandbox container's config.json, with this host's CPUs and memory.</summary>
    public static PodVmSize ForSpec(string specJson, int defaultVcpus, int defaultMemoryMiB) =>
        From(AnnotationsOf(specJson), defaultVcpus, defaultMemoryMiB, Environment.ProcessorCount, HostMemoryMiB());

    /// <summary>The string annotations of a config.json (empty when it has none or is not valid JSON).</summary>
    public static IReadOnlyDictionary<string, string> AnnotationsOf(string specJson)
    {
        var annotations = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using var document = JsonDocument.Parse(specJson);
            if (document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("annotations", out var map)
                && map.ValueKind == JsonValueKind.Object)
            {
                foreach (var entry in map.EnumerateObject())
                {
                    if (entry.Value.ValueKind == JsonValueKind.String)
                        annotations[entry.Name] = entry.Value.GetString()!;
                }
            }
        }
        catch (JsonException)
        {
        }
        return annotations;
    }

    /// <summary>MemTotal of /proc/meminfo in MiB (int.MaxValue when unreadable: no cap).</summary>
    public static long HostMemoryMiB()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                // "MemTotal:       24615196 kB"
                if (!line.StartsWith("MemTotal:", StringComparison.Ordinal))
                    continue;
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length >= 2 && long.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out long kib))
                    return kib / 1024;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return int.MaxValue;
    }

    /// <summary>Whether the annotations carry a pod memory limit (CRI's sandbox-memory, greater than 0).</summary>
    public static bool HasPodMemoryLimit(IReadOnlyDictionary<string, string> annotations) => Number(annotations, MemoryAnnotation) > 0;

    private static long Number(IReadOnlyDictionary<string, string> annotations, string key) =>
        annotations.TryGetValue(key, out var text) && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value)
            ? value
            : 0;
}
