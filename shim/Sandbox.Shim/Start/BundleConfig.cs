using System.Text.Json;

namespace Sandbox.Shim.Start;

/// <summary>The parts of a bundle's config.json (the OCI runtime spec) the shim reads before any container exists.</summary>
public static class BundleConfig
{
    public const string SandboxIdAnnotation = "io.kubernetes.cri.sandbox-id";
    public const string ContainerTypeAnnotation = "io.kubernetes.cri.container-type";

    /// <summary>
    /// The group a container belongs to: the CRI sandbox id when there is one (all containers of a pod share one
    /// shim daemon), else the container itself. The group id names the daemon's socket and the sandbox's state
    /// directory, so an annotation that is not a containerd identifier is refused (FormatException); JSON that does not
    /// parse throws JsonException.
    /// </summary>
    public static string GroupIdOf(string configJson, string containerId)
    {
        using var document = JsonDocument.Parse(configJson);
        if (document.RootElement.ValueKind == JsonValueKind.Object
            && document.RootElement.TryGetProperty("annotations", out var annotations)
            && annotations.ValueKind == JsonValueKind.Object
            && annotations.TryGetProperty(SandboxIdAnnotation, out var sandboxId)
            && sandboxId.ValueKind == JsonValueKind.String
            && sandboxId.GetString() is { Length: > 0 } id)
        {
            if (Tasks.ContainerdIdentifier.Problem(id) is { } problem)
                throw new FormatException($"the annotation {SandboxIdAnnotation} = {Tasks.UntrustedText.Quote(id)} is not a valid sandbox id: {problem}");
            return id;
        }
        return containerId;
    }

    /// <summary>
    /// The container's root filesystem on the host, as runc reads it: the spec's root.path, relative to the bundle
    /// unless absolute; "rootfs" when the spec names none. containerd writes "rootfs" and mounts the snapshot there;
    /// `ctr run --rootfs DIR` writes DIR and mounts nothing. Throws JsonException on JSON that does not parse and
    /// FormatException on a root.path that is not a non-empty string.
    /// </summary>
    public static string RootfsOf(string configJson, string bundle)
    {
        using var document = JsonDocument.Parse(configJson);
        string path = "rootfs";
        if (document.RootElement.ValueKind == JsonValueKind.Object
            && document.RootElement.TryGetProperty("root", out var root)
            && root.ValueKind == JsonValueKind.Object
            && root.TryGetProperty("path", out var value))
        {
            path = value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } named
                ? named
                : throw new FormatException($"root.path must be a non-empty string, not {Tasks.UntrustedText.Quote(value.GetRawText())}");
        }
        return Path.GetFullPath(Path.Combine(bundle, path));
    }
}
