using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sandbox.Runtime.Sandboxes;

/// <summary>What happened to a sandbox that an operator asks about later: how a container ended or failed, how the
/// VM ended. One JSON object per line of <c>&lt;state&gt;/events.jsonl</c> (<see cref="SandboxEventLog"/>); copied into
/// the post-mortem record when the sandbox goes.</summary>
public sealed record SandboxEvent
{
    /// <summary>A container's init process exited (<see cref="ExitStatus"/>, <see cref="OomKilled"/>).</summary>
    public const string ContainerExit = "container_exit";
    /// <summary>Creating or starting a container failed (<see cref="Message"/> is the error).</summary>
    public const string ContainerFailed = "container_failed";
    /// <summary>The VM ended without being asked to (<see cref="ExitStatus"/> is QEMU's; <see cref="Message"/> the cause).</summary>
    public const string VmExit = "vm_exit";

    public required DateTimeOffset Time { get; init; }
    public required string Kind { get; init; }
    public string? ContainerId { get; init; }
    public int? ExitStatus { get; init; }
    public bool OomKilled { get; init; }
    /// <summary>The container's memory limit (its config.json, or the last update) in bytes; null = none.</summary>
    public long? MemoryLimitBytes { get; init; }
    public string Message { get; init; } = "";
}

/// <summary><c>&lt;state&gt;/events.jsonl</c>: appended by the shim, read by sandboxctl and the post-mortem record.
/// Bounded: past <see cref="MaxBytes"/> the file is cut to its last <see cref="MaxEvents"/> events, and no more are
/// read; a line that does not parse is skipped.</summary>
public static class SandboxEventLog
{
    public const string FileName = "events.jsonl";
    public const int MaxEvents = 200;
    public const long MaxBytes = 1 << 20;
    private static readonly object Gate = new();

    public static void Append(string stateDirectory, SandboxEvent sandboxEvent)
    {
        string line = JsonSerializer.Serialize(sandboxEvent, SandboxEventJson.Default.SandboxEvent) + "\n";
        lock (Gate)
        {
            try
            {
                string path = Path.Combine(stateDirectory, FileName);
                File.AppendAllText(path, line);
                // a pod whose container restarts for weeks must not fill /run: past MaxBytes keep the last MaxEvents
                if (new FileInfo(path).Length > MaxBytes)
                {
                    var kept = Hypervisors.Processes.ConsoleLogTail.ReadLines(path, MaxEvents, (int)MaxBytes);
                    File.WriteAllText(path + ".tmp", string.Join('\n', kept) + "\n");
                    File.Move(path + ".tmp", path, overwrite: true);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // the state directory is gone (the sandbox is being removed): nothing left to record it in
            }
        }
    }

    public static IReadOnlyList<SandboxEvent> Read(string stateDirectory)
    {
        var events = new List<SandboxEvent>();
        foreach (string line in Hypervisors.Processes.ConsoleLogTail.ReadLines(Path.Combine(stateDirectory, FileName), MaxEvents, 1 << 20))
        {
            try
            {
                if (JsonSerializer.Deserialize(line, SandboxEventJson.Default.SandboxEvent) is { } parsed)
                    events.Add(parsed);
            }
            catch (JsonException)
            {
                // a line cut by a crash mid-write
            }
        }
        return events;
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(SandboxEvent))]
internal sealed partial class SandboxEventJson : JsonSerializerContext;
