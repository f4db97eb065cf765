using Sandbox.Hypervisors.Processes;
using Sandbox.Hypervisors.Qemu;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Runtime.PostMortem;

/// <summary>
/// What is kept of a sandbox after its state directory is gone: why it ended, its records and the last lines of each
/// log. Small (tens of KiB at most) and written once, when the sandbox goes (<see cref="PostMortemStore"/>).
/// </summary>
public sealed record PostMortemRecord
{
    public const int ConsoleLines = 60;
    public const int ProcessLines = 30;
    public const int ShimLines = 80;
    /// <summary>How <see cref="Reason"/> starts for a sandbox whose VM never came up (`sandboxctl doctor` looks for it).</summary>
    public const string BootFailedPrefix = "boot failed: ";

    public required string SandboxId { get; init; }
    public DateTimeOffset? CreatedAt { get; init; }
    public required DateTimeOffset EndedAt { get; init; }
    /// <summary>One line: how the sandbox ended ("stopped: ...", "boot failed: ...", "its shim died: ...").</summary>
    public required string Reason { get; init; }
    /// <summary>True when it ended by a failure (a failed boot, a lost VM, a dead shim), not by a stop.</summary>
    public bool Failed { get; init; }
    /// <summary>The error that ended it, whole (a failed boot's message), or null.</summary>
    public string? Error { get; init; }
    public SandboxMetadata? Metadata { get; init; }
    /// <summary>Containers that were in its share when it ended.</summary>
    public IReadOnlyList<string> Containers { get; init; } = [];
    public IReadOnlyList<SandboxEvent> Events { get; init; } = [];
    public IReadOnlyList<string> ConsoleTail { get; init; } = [];
    public IReadOnlyList<string> QemuTail { get; init; } = [];
    public IReadOnlyList<string> VsockDaemonTail { get; init; } = [];
    public IReadOnlyList<string> ShimTail { get; init; } = [];

    /// <summary>Reads what the state directory holds (any of it may be missing), for a record written just before the
    /// directory goes. <paramref name="shimLines"/>: the shim's own recent lines when it has them in memory, else the
    /// tail of shim.log.</summary>
    public static PostMortemRecord Capture(SandboxStateDirectory state, string reason, bool failed, string? error = null,
        IReadOnlyList<string>? shimLines = null)
    {
        var metadata = SandboxMetadata.TryRead(state.MetadataFile);
        var files = new QemuStateFiles(state.Path);
        return new PostMortemRecord
        {
            SandboxId = state.SandboxId,
            CreatedAt = metadata?.CreatedAt,
            EndedAt = DateTimeOffset.UtcNow,
            Reason = reason,
            Failed = failed,
            Error = error,
            Metadata = metadata,
            Containers = state.ContainerIds(),
            Events = SandboxEventLog.Read(state.Path),
            ConsoleTail = ConsoleLogTail.ReadLines(files.ConsoleLog, ConsoleLines),
            QemuTail = ConsoleLogTail.ReadLines(files.QemuLog, ProcessLines),
            VsockDaemonTail = ConsoleLogTail.ReadLines(files.VsockDaemonLog, ProcessLines),
            ShimTail = shimLines is { Count: > 0 }
                ? shimLines.TakeLast(ShimLines).ToArray()
                : ConsoleLogTail.ReadLines(Path.Combine(state.Path, SandboxJournal.FileName), ShimLines),
        };
    }

    /// <summary>The record of a sandbox refused before it had a state directory (a start refused for a missing guest
    /// file, a boot refused for its configuration): the error is all there is, with the shim's lines when it has them.</summary>
    public static PostMortemRecord BootRefused(string sandboxId, string error, IReadOnlyList<string>? shimLines = null,
        IReadOnlyList<string>? containers = null) => new()
    {
        SandboxId = sandboxId,
        CreatedAt = DateTimeOffset.UtcNow,
        EndedAt = DateTimeOffset.UtcNow,
        Reason = BootFailedPrefix + error.Split('\n', 2)[0],
        Failed = true,
        Error = error,
        Containers = containers ?? [],
        ShimTail = shimLines ?? [],
    };
}
