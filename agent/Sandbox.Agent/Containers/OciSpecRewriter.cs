using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sandbox.Agent.Containers;

/// <summary>A malformed OCI spec or process: the message names the field.</summary>
public sealed class InvalidSpecException(string message) : Exception(message);

/// <summary>
/// Prepares the OCI documents the host sends for crun in the guest: config.json (root.path, process.terminal,
/// host-only parts removed) and the process JSON of an exec.
/// </summary>
public static class OciSpecRewriter
{
    /// <summary>
    /// Returns config.json text with root.path = <paramref name="rootfsPath"/> and process.terminal = <paramref name="terminal"/>.
    /// Host-side parts that mean nothing in the guest are dropped: hooks (host binaries) and namespace paths
    /// (/proc/PID/ns/... or /var/run/netns/... of the host); the network namespace entry is removed altogether,
    /// so the container uses the VM's network, which is the pod's network.
    /// </summary>
    public static string RewriteConfig(ReadOnlySpan<byte> json, string rootfsPath, bool terminal)
    {
        if (string.IsNullOrEmpty(rootfsPath)) throw new InvalidSpecException("rootfs_path is empty");
        JsonObject spec = ParseObject(json, "oci_spec_json");
        JsonObject process = RequireObject(spec, "process", "oci_spec_json");
        ValidateProcess(process, "oci_spec_json.process");
        process["terminal"] = terminal;

        if (spec["root"] is not JsonObject root)
        {
            if (spec["root"] != null) throw new InvalidSpecException("oci_spec_json.root must be an object");
            root = new JsonObject();
            spec["root"] = root;
        }
        root["path"] = rootfsPath;

        spec.Remove("hooks");
        if (spec["linux"] is JsonObject linux && linux["namespaces"] is JsonArray namespaces)
        {
            for (int i = namespaces.Count - 1; i >= 0; i--)
            {
                if (namespaces[i] is not JsonObject ns)
                    throw new InvalidSpecException($"oci_spec_json.linux.namespaces[{i}] must be an object");
                if (ns["type"]?.GetValueKind() != JsonValueKind.String)
                    throw new InvalidSpecException($"oci_spec_json.linux.namespaces[{i}].type must be a string");
                if ((string?)ns["type"] == "network") namespaces.RemoveAt(i);
                else ns.Remove("path");
            }
        }
        return spec.ToJsonString();
    }

    /// <summary>Returns the process JSON for "crun exec --process" with terminal = <paramref name="terminal"/>.</summary>
    public static string RewriteProcess(ReadOnlySpan<byte> json, bool terminal)
    {
        JsonObject process = ParseObject(json, "process_json");
        ValidateProcess(process, "process_json");
        process["terminal"] = terminal;
        if (process["cwd"] == null) process["cwd"] = "/";
        return process.ToJsonString();
    }

    private static void ValidateProcess(JsonObject process, string where)
    {
        if (process["args"] is not JsonArray args || args.Count == 0)
            throw new InvalidSpecException($"{where}.args must be a non-empty array of strings");
        for (int i = 0; i < args.Count; i++)
        {
            if (args[i]?.GetValueKind() != JsonValueKind.String)
                throw new InvalidSpecException($"{where}.args[{i}] must be a string");
        }
        if (process["env"] is JsonNode env && env is not JsonArray)
            throw new InvalidSpecException($"{where}.env must be an array of strings");
        if (process["cwd"] is JsonNode cwd && cwd.GetValueKind() != JsonValueKind.String)
            throw new InvalidSpecException($"{where}.cwd must be a string");
    }

    private static JsonObject ParseObject(ReadOnlySpan<byte> json, string field)
    {
        if (json.IsEmpty) throw new InvalidSpecException($"{field} is empty");
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidSpecException($"{field} is not valid JSON: {e.Message}");
        }
        return node as JsonObject ?? throw new InvalidSpecException($"{field} must be a JSON object");
    }

    private static JsonObject RequireObject(JsonObject parent, string name, string where) =>
        parent[name] as JsonObject ?? throw new InvalidSpecException($"{where}.{name} is missing or not an object");

    public static byte[] ToUtf8(string json) => Encoding.UTF8.GetBytes(json);
}
