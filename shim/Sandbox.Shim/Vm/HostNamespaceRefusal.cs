using System.Text.Json;
using Cri.Runtime.V1;

namespace Sandbox.Shim.Vm;

/// <summary>
/// A pod that asks for the host's network, PID or IPC namespace (Kubernetes hostNetwork, hostPID, hostIPC; `ctr run
/// --net-host`) is refused: its containers run in the VM's kernel, which has none of the host's namespaces to share,
/// and running it anyway would give it the VM's instead, silently. Kata Containers refuses these too. The refusal
/// names the pod, what it asked for, and what to do.
/// </summary>
public static class HostNamespaceRefusal
{
    /// <summary>
    /// The host namespaces an OCI spec asks for: each of network, pid, ipc without an entry in linux.namespaces
    /// (runc then keeps the host's). A spec without linux.namespaces asks for nothing here. Throws
    /// <see cref="FormatException"/> for a config.json that is not JSON.
    /// </summary>
    public static IReadOnlyList<string> RequestedBy(string specJson)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(specJson);
        }
        catch (JsonException e)
        {
            throw new FormatException($"config.json is not valid JSON: {e.Message}", e);
        }
        using var _ = document;
        if (!document.RootElement.TryGetProperty("linux", out var linux) || linux.ValueKind != JsonValueKind.Object ||
            !linux.TryGetProperty("namespaces", out var namespaces) || namespaces.ValueKind != JsonValueKind.Array)
            return [];
        var present = namespaces.EnumerateArray()
            .Where(entry => entry.ValueKind == JsonValueKind.Object && entry.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String)
            .Select(entry => entry.GetProperty("type").GetString())
            .ToHashSet(StringComparer.Ordinal);
        return new[] { "network", "pid", "ipc" }.Where(type => !present.Contains(type)).ToArray();
    }

    /// <summary>The same from CRI's PodSandboxConfig (containerd 2.x's Sandbox API): namespace mode NODE.</summary>
    public static IReadOnlyList<string> RequestedBy(PodSandboxConfig config)
    {
        var options = config.Linux?.SecurityContext?.NamespaceOptions;
        if (options is null)
            return [];
        var requested = new List<string>();
        if (options.Network == NamespaceMode.Node) requested.Add("network");
        if (options.Pid == NamespaceMode.Node) requested.Add("pid");
        if (options.Ipc == NamespaceMode.Node) requested.Add("ipc");
        return requested;
    }

    /// <summary>The error for a pod that asked for <paramref name="hostNamespaces"/>, or null when it asked for none.</summary>
    public static string? MessageFor(string sandboxId, IReadOnlyList<string> hostNamespaces)
    {
        if (hostNamespaces.Count == 0)
            return null;
        string fields = string.Join(", ", hostNamespaces.Select(ns => ns switch
        {
            "network" => "hostNetwork",
            "pid" => "hostPID",
            _ => "hostIPC",
        }));
        return $"sandbox {sandboxId} asks for the host's {string.Join(", ", hostNamespaces)} namespace{(hostNamespaces.Count > 1 ? "s" : "")} " +
               $"({fields}: true), which a VM sandbox cannot give: the pod's containers run in the VM's own kernel. " +
               $"Remove {fields} from the pod, or run it with a RuntimeClass whose handler is runc";
    }
}
