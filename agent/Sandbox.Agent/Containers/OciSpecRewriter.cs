using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sandbox.Agent.Containers;

/// <summary>A malformed OCI spec or process: the message names the field.</summary>
public sealed class InvalidSpecException(string message) : Exception(message);

/// <summary>config.json for crun, and the net.* sysctls the agent applies to the VM instead (in spec order).</summary>
public sealed record RewrittenConfig(string Json, IReadOnlyList<KeyValuePair<string, string>> NetworkSysctls);

/// <summary>
/// Prepares the OCI documents the host sends for crun in the guest: config.json (root.path, process.terminal,
/// host-only parts removed) and the process JSON of an exec.
/// </summary>
public static class OciSpecRewriter
{
    /// <summary>Parses config.json and checks the parts the agent relies on (process.args, env, cwd).</summary>
    public static JsonObject ParseConfig(ReadOnlySpan<byte> json)
    {
        JsonObject spec = ParseObject(json, "oci_spec_json");
        ValidateVersion(spec);
        ValidateProcess(RequireObject(spec, "process", "oci_spec_json"), "oci_spec_json.process");
        return spec;
    }

    /// <summary>The runtime-spec versions the guest's crun runs: 1.x (containerd 1.6 writes 1.0.2, 1.7 and 2.x 1.1 to 1.2).</summary>
    public const string SupportedSpecVersions = "1.0 to 1.3";

    /// <summary>
    /// ociVersion, when the spec has one, must be a 1.x version: crun implements runtime-spec 1.x and a 2.x spec would
    /// mean fields it cannot know. (A missing ociVersion is left to crun, as runc does.)
    /// </summary>
    private static void ValidateVersion(JsonObject spec)
    {
        if (spec["ociVersion"] is not JsonValue value)
            return;
        string version = value.TryGetValue(out string? text) ? text : value.ToJsonString();
        if (!version.StartsWith("1.", StringComparison.Ordinal))
            throw new InvalidSpecException(
                $"oci_spec_json.ociVersion is '{version}', a runtime-spec version the guest cannot run: its crun runs " +
                $"runtime-spec {SupportedSpecVersions}; use a containerd release that writes a 1.x spec (1.6, 1.7, 2.x)");
    }

    /// <summary>Parses and rewrites in one step (see the other overload).</summary>
    public static RewrittenConfig RewriteConfig(ReadOnlySpan<byte> json, string rootfsPath, bool terminal, int? sandboxInitPid = null) =>
        RewriteConfig(ParseConfig(json), rootfsPath, terminal, sandboxInitPid);

    /// <summary>
    /// Returns config.json text with root.path = <paramref name="rootfsPath"/> and process.terminal = <paramref name="terminal"/>,
    /// for crun in the guest:
    /// <list type="bullet">
    /// <item>Hooks (host binaries) are dropped.</item>
    /// <item>The network namespace entry is removed: every container uses the VM's network, which is the pod's network.</item>
    /// <item>Namespace paths name host processes (/proc/HOSTPID/ns/...). With <paramref name="sandboxInitPid"/> (an application
    /// container of a pod), the ipc, uts and pid entries that have a path join the pod sandbox container's namespaces
    /// in the guest (/proc/GUESTPID/ns/TYPE); a pid entry without a path stays a new PID namespace (no shared process
    /// namespace). Every other path is dropped, so that namespace is new.</item>
    /// <item>net.* sysctls are taken out and returned: with no network namespace of its own, crun refuses them, and the
    /// VM's network stack is the pod's, so the agent applies them to the VM.</item>
    /// <item>Without linux.personality, it becomes {"domain": "LINUX"}: crun then sets the default persona before it
    /// executes the container's processes (init and execs), so they never inherit the fixed address layout of the
    /// agent's helper processes (<see cref="Native.HelperAddressLayout"/>) and keep address-space randomization, as
    /// processes started by a shim on a host do.</item>
    /// </list>
    /// </summary>
    public static RewrittenConfig RewriteConfig(JsonObject spec, string rootfsPath, bool terminal, int? sandboxInitPid)
    {
        if (string.IsNullOrEmpty(rootfsPath)) throw new InvalidSpecException("rootfs_path is empty");
        JsonObject process = RequireObject(spec, "process", "oci_spec_json");
        process["terminal"] = terminal;

        if (spec["root"] is not JsonObject root)
        {
            if (spec["root"] != null) throw new InvalidSpecException("oci_spec_json.root must be an object");
            root = new JsonObject();
            spec["root"] = root;
        }
        root["path"] = rootfsPath;

        spec.Remove("hooks");
        var networkSysctls = new List<KeyValuePair<string, string>>();
        if (spec["linux"] == null) spec["linux"] = new JsonObject();
        if (spec["linux"] is JsonObject linux)
        {
            if (linux["personality"] == null) linux["personality"] = new JsonObject { ["domain"] = "LINUX" };
            if (linux["namespaces"] is JsonArray namespaces) RewriteNamespaces(namespaces, sandboxInitPid);
            else if (linux["namespaces"] != null) throw new InvalidSpecException("oci_spec_json.linux.namespaces must be an array");
            if (linux["sysctl"] is JsonObject sysctls) networkSysctls = TakeNetworkSysctls(sysctls);
            else if (linux["sysctl"] != null) throw new InvalidSpecException("oci_spec_json.linux.sysctl must be an object of strings");
        }
        return new RewrittenConfig(spec.ToJsonString(), networkSysctls);
    }

    /// <summary>Namespace types an application container shares with its pod sandbox when its spec gives a path.</summary>
    public static readonly string[] PodSharedNamespaces = ["ipc", "uts", "pid"];

    private static void RewriteNamespaces(JsonArray namespaces, int? sandboxInitPid)
    {
        for (int i = namespaces.Count - 1; i >= 0; i--)
        {
            if (namespaces[i] is not JsonObject ns)
                throw new InvalidSpecException($"oci_spec_json.linux.namespaces[{i}] must be an object");
            if (ns["type"]?.GetValueKind() != JsonValueKind.String)
                throw new InvalidSpecException($"oci_spec_json.linux.namespaces[{i}].type must be a string");
            string type = (string)ns["type"]!;
            if (type == "network")
            {
                namespaces.RemoveAt(i);
                continue;
            }
            if (ns["path"] == null) continue;
            if (sandboxInitPid is { } pid && PodSharedNamespaces.Contains(type))
                ns["path"] = $"/proc/{pid}/ns/{type}";
            else
                ns.Remove("path");
        }
    }

    private static List<KeyValuePair<string, string>> TakeNetworkSysctls(JsonObject sysctls)
    {
        var taken = new List<KeyValuePair<string, string>>();
        foreach (var (key, value) in sysctls.ToList())
        {
            if (value?.GetValueKind() != JsonValueKind.String)
                throw new InvalidSpecException($"oci_spec_json.linux.sysctl[\"{key}\"] must be a string");
            if (!key.StartsWith("net.", StringComparison.Ordinal) && !key.StartsWith("net/", StringComparison.Ordinal)) continue;
            if (!GuestSysctls.TryGetPath(key, out _))
                throw new InvalidSpecException($"oci_spec_json.linux.sysctl: '{key}' is not a valid sysctl name");
            taken.Add(new(key, (string)value!));
            sysctls.Remove(key);
        }
        return taken;
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
