using System.Text.Json;

namespace Sandbox.Runtime.Network;

/// <summary>
/// The network namespace an OCI runtime spec (config.json) asks for: the "path" of the linux.namespaces entry of type
/// "network". CRI puts the pod's namespace there (/var/run/netns/cni-…, made and configured by CNI before the sandbox
/// task is created); `ctr run` without --with-ns gives an entry without a path (a new, empty namespace), and host
/// networking gives no entry at all.
/// </summary>
public static class OciNetworkNamespace
{
    /// <summary>The path, or null when the spec has no network namespace entry or the entry has no path.
    /// Throws <see cref="FormatException"/> for a config.json that is not a JSON object.</summary>
    public static string? PathOf(string configJson)
    {
        try
        {
            using var document = JsonDocument.Parse(configJson);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new FormatException("config.json is not a JSON object");
            if (!document.RootElement.TryGetProperty("linux", out var linux) || linux.ValueKind != JsonValueKind.Object ||
                !linux.TryGetProperty("namespaces", out var namespaces) || namespaces.ValueKind != JsonValueKind.Array)
                return null;
            foreach (var entry in namespaces.EnumerateArray())
            {
                if (entry.ValueKind == JsonValueKind.Object &&
                    entry.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "network")
                {
                    return entry.TryGetProperty("path", out var path) && path.ValueKind == JsonValueKind.String &&
                           path.GetString() is { Length: > 0 } value
                        ? value
                        : null;
                }
            }
            return null;
        }
        catch (JsonException e)
        {
            throw new FormatException($"config.json is not valid JSON: {e.Message}", e);
        }
    }
}
