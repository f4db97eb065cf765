using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sandbox.Agent.Containers;

/// <summary>What a container is in its pod, from the CRI annotations of its spec.</summary>
public enum PodRole
{
    /// <summary>No CRI annotations (ctr, a single container per VM): namespaces as today, nothing shared.</summary>
    Standalone,
    /// <summary>The pod's sandbox (pause) container: io.kubernetes.cri.container-type=sandbox.</summary>
    Sandbox,
    /// <summary>An application container of the pod: io.kubernetes.cri.container-type=container. It joins the sandbox's namespaces.</summary>
    Container,
}

/// <summary>The pod role of a container and the id of its pod sandbox (io.kubernetes.cri.sandbox-id).</summary>
public sealed record PodMembership(PodRole Role, string SandboxId)
{
    public const string ContainerTypeAnnotation = "io.kubernetes.cri.container-type";
    public const string SandboxIdAnnotation = "io.kubernetes.cri.sandbox-id";

    public static readonly PodMembership Standalone = new(PodRole.Standalone, "");

    /// <summary>Reads the annotations of config.json. Throws <see cref="InvalidSpecException"/> on an unknown container type
    /// or an application container without its sandbox id.</summary>
    public static PodMembership Of(JsonObject spec)
    {
        if (spec["annotations"] is not JsonObject annotations)
        {
            if (spec["annotations"] != null) throw new InvalidSpecException("oci_spec_json.annotations must be an object of strings");
            return Standalone;
        }
        string? type = StringAnnotation(annotations, ContainerTypeAnnotation);
        string sandboxId = StringAnnotation(annotations, SandboxIdAnnotation) ?? "";
        switch (type)
        {
            case null:
                return Standalone;
            case "sandbox":
                return new PodMembership(PodRole.Sandbox, sandboxId);
            case "container":
                if (sandboxId.Length == 0)
                    throw new InvalidSpecException($"annotation {ContainerTypeAnnotation}=container needs {SandboxIdAnnotation} (the pod sandbox whose namespaces it joins)");
                return new PodMembership(PodRole.Container, sandboxId);
            default:
                throw new InvalidSpecException($"annotation {ContainerTypeAnnotation}='{type}' is neither 'sandbox' nor 'container'");
        }
    }

    private static string? StringAnnotation(JsonObject annotations, string name)
    {
        JsonNode? node = annotations[name];
        if (node == null) return null;
        if (node.GetValueKind() != JsonValueKind.String) throw new InvalidSpecException($"oci_spec_json.annotations[\"{name}\"] must be a string");
        return (string?)node;
    }
}
