using Sandbox.Agent.Protocol;
using Sandbox.Runtime.Host;
using Sandbox.Runtime.PostMortem;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Ctl.Doctor;

/// <summary>A line of evidence and the file it came from.</summary>
public sealed record EvidenceLine(string Source, string Text);

/// <summary>One log as `doctor` and `logs` read it: its last lines and the file they came from.</summary>
public sealed record LogTail(string Source, IReadOnlyList<string> Lines)
{
    public static readonly LogTail None = new("", []);
}

/// <summary>
/// Everything `sandboxctl doctor` knows about one sandbox, from its state directory while it exists, else from its
/// post-mortem record (<see cref="SandboxEvidenceReader"/>). <see cref="SandboxDiagnosis"/> reads only this.
/// </summary>
public sealed record SandboxEvidence
{
    public required string SandboxId { get; init; }
    /// <summary>The state directory or the post-mortem record read.</summary>
    public required string Where { get; init; }
    /// <summary>Read from a post-mortem record: the sandbox is gone.</summary>
    public PostMortemRecord? PostMortem { get; init; }
    /// <summary>live, starting or dead (<see cref="SandboxOwnership"/>) while the state directory exists.</summary>
    public string? Liveness { get; init; }
    public int? ShimPid { get; init; }
    public SandboxMetadata? Metadata { get; init; }
    public bool VmmRunning { get; init; }
    /// <summary>The agent's answer to GetGuestInfo (asked only of a live sandbox whose VMM runs).</summary>
    public GetGuestInfoResponse? Guest { get; init; }
    public string? AgentError { get; init; }
    public IReadOnlyList<string> Containers { get; init; } = [];
    public IReadOnlyList<SandboxEvent> Events { get; init; } = [];
    public string EventsSource { get; init; } = "";
    public LogTail Console { get; init; } = LogTail.None;
    public LogTail Qemu { get; init; } = LogTail.None;
    public LogTail VsockDaemon { get; init; } = LogTail.None;
    public LogTail Shim { get; init; } = LogTail.None;
    /// <summary>What `sandboxctl check` finds wrong with this host (asked only after a failed boot).</summary>
    public IReadOnlyList<HostCheckItem> HostProblems { get; init; } = [];
    public DateTimeOffset Now { get; init; } = DateTimeOffset.UtcNow;

    public bool Ended => PostMortem is not null;
}
