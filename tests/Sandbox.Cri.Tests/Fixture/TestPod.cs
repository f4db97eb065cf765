using Sandbox.Cri.Tests.Api;

namespace Sandbox.Cri.Tests.Fixture;

/// <summary>A pod a test ran through CRI, with what the leftover checks need after it is gone.</summary>
public sealed class TestPod
{
    public TestPod(string name, string id, PodSandboxConfig config, string volumeDirectory)
    {
        Name = name;
        Id = id;
        Config = config;
        VolumeDirectory = volumeDirectory;
    }

    /// <summary>metadata.name, e.g. "shared".</summary>
    public string Name { get; }

    /// <summary>The pod sandbox id CRI chose (64 hex digits): the shim's group and the VM's state directory name.</summary>
    public string Id { get; }

    public PodSandboxConfig Config { get; }

    public string LogDirectory => Config.LogDirectory;

    /// <summary>Host directory for this pod's hostPath volumes.</summary>
    public string VolumeDirectory { get; }

    /// <summary>From PodSandboxStatus.network.ip.</summary>
    public string Ip { get; set; } = "";

    /// <summary>The network namespace CRI made for the pod (verbose PodSandboxStatus: runtimeSpec), or "".</summary>
    public string NetworkNamespacePath { get; set; } = "";

    /// <summary>The pid CRI reports for the sandbox task (verbose PodSandboxStatus).</summary>
    public int SandboxPid { get; set; }

    /// <summary>Field 22 of /proc/&lt;SandboxPid&gt;/stat when the pod was made, so that a recycled pid is not mistaken for it.</summary>
    public string SandboxPidStartTime { get; set; } = "";

    /// <summary>Containers created in the pod: name → id.</summary>
    public Dictionary<string, string> Containers { get; } = new(StringComparer.Ordinal);

    public string ContainerId(string name) =>
        Containers.TryGetValue(name, out var id) ? id : throw new KeyNotFoundException($"pod {Name} has no container {name}");

    public override string ToString() => $"pod {Name} ({Id})";
}

/// <summary>The outcome of ExecSync.</summary>
public sealed record ExecResult(string ContainerName, IReadOnlyList<string> Command, int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() =>
        $"ExecSync in {ContainerName} `{string.Join(' ', Command)}` exited {ExitCode}\n--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";
}

/// <summary>A CRI call failed: names the call and the pod or container, with the status and containerd's log tail.</summary>
public sealed class CriCallException(string message, Exception inner) : Exception(message, inner);
