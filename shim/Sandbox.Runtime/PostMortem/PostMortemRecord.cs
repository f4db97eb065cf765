using Sandbox.Hypervisors.Processes;
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
        return new PostMortemRecord
        {
            SandboxId = state.SandboxId,
            CreatedAt = metadata?.CreatedAt,
            EndedAt = DateTimeOffset.UtcNow,
            Reason = reason,
            Failed = failed,
            Error = error,
            Metadata = metadata,
            Containers = ContainersIn(state),
            Events = SandboxEventLog.Read(state.Path),
            ConsoleTail = ConsoleLogTail.ReadLines(Path.Combine(state.Path, "console.log"), ConsoleLines),
            QemuTail = ConsoleLogTail.ReadLines(Path.Combine(state.Path, "qemu.log"), ProcessLines),
            VsockDaemonTail = ConsoleLogTail.ReadLines(Path.Combine(state.Path, "vsockd.log"), ProcessLines),
            ShimTail = shimLines is { Count: > 0 }
                ? shimLines.TakeLast(ShimLines).ToArray()
                : ConsoleLogTail.ReadLines(Path.Combine(state.Path, SandboxJournal.FileName), ShimLines),
        };
    }

    private static string[] ContainersIn(SandboxStateDirectory state)
    {
        try
        {
            return Directory.Exists(state.SharedDirectory)
                ? Directory.EnumerateDirectories(state.SharedDirectory).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToArray()
                : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
