using System.Globalization;
using System.Text;

namespace Sandbox.Ctl.Metrics;

/// <summary>
/// Writes sandbox samples in the Prometheus text exposition format (version 0.0.4): for each metric a HELP and a TYPE
/// line, then its samples, labelled by <c>sandbox</c>. Names follow Prometheus' conventions: base units (bytes,
/// seconds), counters end in <c>_total</c>.
/// </summary>
public static class PrometheusExposition
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    public static string Write(IReadOnlyList<SandboxSample> samples)
    {
        var text = new StringBuilder();
        void Metric(string name, string type, string help, IEnumerable<(string Labels, double Value)> values)
        {
            text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
            foreach (var (labels, value) in values)
                text.Append(name).Append(labels).Append(' ').Append(Format(value)).Append('\n');
        }
        IEnumerable<(string, double)> Per(Func<SandboxSample, double?> value) =>
            samples.Where(s => value(s) is not null).Select(s => (Labels(("sandbox", s.SandboxId)), value(s)!.Value));

        Metric("sandbox_up", "gauge", "Whether the sandbox's agent answered (1) or not (0).", Per(s => s.Guest is null ? 0 : 1));
        Metric("sandbox_info", "gauge", "Always 1; the sandbox's state (live, starting or dead) as a label.",
            samples.Select(s => (Labels(("sandbox", s.SandboxId), ("state", s.State)), 1.0)));
        Metric("sandbox_vmm_rss_bytes", "gauge", "Resident memory of the sandbox's QEMU.", Per(s => s.Vmm?.RssBytes));
        Metric("sandbox_vmm_pss_bytes", "gauge", "Proportional set size of the sandbox's QEMU.", Per(s => s.Vmm?.PssBytes));
        Metric("sandbox_vmm_cpu_seconds_total", "counter", "User and system CPU time of the sandbox's QEMU.", Per(s => s.Vmm?.CpuSeconds));
        Metric("sandbox_host_pss_bytes", "gauge", "Proportional set size of everything the sandbox runs on the host: QEMU, vhost-device-vsock and its shim.",
            Per(s => s.HostPssBytes));
        Metric("sandbox_guest_memory_total_bytes", "gauge", "MemTotal in the guest.", Per(s => s.Guest?.MemoryTotalBytes));
        Metric("sandbox_guest_memory_free_bytes", "gauge", "MemAvailable in the guest.", Per(s => s.Guest?.MemoryAvailableBytes));
        Metric("sandbox_guest_memory_used_bytes", "gauge", "MemTotal - MemAvailable in the guest.",
            Per(s => s.Guest is { } g ? (double)g.MemoryTotalBytes - g.MemoryAvailableBytes : null));
        Metric("sandbox_boot_seconds", "gauge", "Guest uptime when its agent started listening (runs behind real time under TCG).",
            Per(s => s.Guest?.BootSeconds));
        Metric("sandbox_agent_rpc_latency_seconds", "gauge", "Round trip of one GetGuestInfo call to the agent, from this scrape.",
            Per(s => s.Guest?.AgentRpcSeconds));
        Metric("sandbox_containers", "gauge", "Containers whose root filesystem is in the sandbox's share.", Per(s => s.Containers));

        Metric("sandbox_host_sandboxes", "gauge", "Sandboxes on this host by state.",
            new[] { "live", "starting", "dead" }.Select(state => (Labels(("state", state)), (double)samples.Count(s => s.State == state))));
        Metric("sandbox_host_total_pss_bytes", "gauge", "Sum of sandbox_host_pss_bytes over every sandbox.",
            [(string.Empty, samples.Sum(s => (double)s.HostPssBytes))]);
        Metric("sandbox_host_total_vmm_cpu_seconds", "gauge", "Sum of sandbox_vmm_cpu_seconds_total over the sandboxes running now.",
            [(string.Empty, samples.Sum(s => s.Vmm?.CpuSeconds ?? 0))]);
        return text.ToString();
    }

    private static string Labels(params (string Name, string Value)[] labels) =>
        "{" + string.Join(",", labels.Select(l => $"{l.Name}=\"{Escape(l.Value)}\"")) + "}";

    /// <summary>Label values escape backslash, double quote and line feed.</summary>
    public static string Escape(string value) => value.Replace("\\", @"\\").Replace("\"", "\\\"").Replace("\n", @"\n");

    private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
