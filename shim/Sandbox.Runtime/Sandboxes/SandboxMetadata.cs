using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sandbox.Runtime.Sandboxes;

/// <summary>sandbox.json: what a sandbox is, for operators and sandboxctl.</summary>
public sealed record SandboxMetadata
{
    public required string SandboxId { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    public int? VmmPid { get; init; }
    public required string Hypervisor { get; init; }
    public required string Acceleration { get; init; }
    public required string VsockMode { get; init; }
    /// <summary>For people: "hybrid vsock PATH port N" or "vsock cid C port N".</summary>
    public required string AgentEndpoint { get; init; }
    /// <summary>For tools (sandboxctl): the hybrid vsock socket, or null with kernel vsock.</summary>
    public string? AgentSocketPath { get; init; }
    /// <summary>For tools: the guest's vsock CID with kernel vsock, or null.</summary>
    public uint? AgentCid { get; init; }
    /// <summary>For tools: the agent's vsock port, or null until the VMM runs.</summary>
    public uint? AgentPort { get; init; }
    public required string ConsoleLog { get; init; }
    public required string KernelPath { get; init; }
    public required string InitrdPath { get; init; }
    public int Vcpus { get; init; }
    public int MemoryMiB { get; init; }
    /// <summary>The host cgroup QEMU and its helpers run in, below each hierarchy root; null = the shim's own.</summary>
    public string? HostCgroup { get; init; }
    /// <summary>That cgroup's memory limit in bytes; null = none.</summary>
    public long? HostCgroupMemoryLimit { get; init; }
    /// <summary>How QEMU and its helpers are confined on the host, for people and `sandboxctl list`: "jailed (...)" or
    /// "unconfined (...)"; null in a sandbox.json older than the jail.</summary>
    public string? Confinement { get; init; }
    /// <summary>How the VM started, for people and `sandboxctl list`: "booted", or "cloned from template KEY (...)"
    /// (<see cref="Templates.TemplateClone.Describe"/>); null in a sandbox.json older than templates.</summary>
    public string? Start { get; init; }
    /// <summary>For tools: the agent's virtio-serial port for tools (a VM cloned from a template; the shim holds the
    /// other), or null. One client at a time.</summary>
    public string? AgentSerialSocket { get; init; }

    /// <summary>True while the recorded VMM runs: its pid is alive and its command line names this sandbox's state
    /// directory (so a recycled pid is never taken for it).</summary>
    public bool VmmRunsIn(string stateDirectory)
    {
        if (VmmPid is not { } pid)
            return false;
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Contains(stateDirectory, StringComparison.Ordinal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>A dialer for the sandbox's agent, or null when sandbox.json does not say where it listens (yet).</summary>
    public Agent.IAgentDialer? AgentDialer() => (AgentSocketPath, AgentCid, AgentPort) switch
    {
        _ when AgentSerialSocket is { } serial => new Agent.VirtioSerialDialer(serial),
        ({ } socket, _, { } port) => new Agent.HybridVsockDialer(socket, port),
        (null, { } cid, { } port) => new Agent.KernelVsockDialer(cid, port),
        _ => null,
    };

    public void Write(string path)
    {
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, JsonSerializer.Serialize(this, SandboxMetadataJson.Default.SandboxMetadata));
        File.Move(temporary, path, overwrite: true);
    }

    public static SandboxMetadata? TryRead(string path)
    {
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllText(path), SandboxMetadataJson.Default.SandboxMetadata);
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(SandboxMetadata))]
internal sealed partial class SandboxMetadataJson : JsonSerializerContext;
