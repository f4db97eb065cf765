using System.Text.Json;
using System.Text.Json.Serialization;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Runtime.PostMortem;

/// <summary>
/// The post-mortem records of one state root: &lt;root&gt;/.post-mortem/&lt;sandbox id&gt;.json, one per sandbox id (a
/// reused id keeps only its last life). Bounded to <see cref="MaxRecords"/>: each write drops the oldest beyond it.
/// The shim writes them (a stop, a failed boot), so do its `delete` and `sandboxctl gc` for a dead shim's sandbox;
/// `sandboxctl doctor`, `logs` and `list --all` read them.
/// </summary>
public sealed class PostMortemStore
{
    public const string DirectoryName = ".post-mortem";
    public const int DefaultMaxRecords = 100;

    public PostMortemStore(string stateRoot, int maxRecords = DefaultMaxRecords)
    {
        Directory = Path.Combine(stateRoot, DirectoryName);
        MaxRecords = maxRecords;
    }

    public string Directory { get; }
    /// <summary>How many records are kept; 0 = none are written.</summary>
    public int MaxRecords { get; }

    /// <summary>Writes (or replaces) the record of its sandbox, then drops the oldest records beyond the bound.
    /// Returns the problem as text, or null: a record that cannot be written must not fail what the sandbox does.</summary>
    public string? Write(PostMortemRecord record)
    {
        if (MaxRecords <= 0)
            return null;
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
            string path = PathOf(record.SandboxId);
            File.WriteAllText(path + ".tmp", JsonSerializer.Serialize(record, PostMortemJson.Default.PostMortemRecord));
            File.Move(path + ".tmp", path, overwrite: true);
            foreach (var old in Files().OrderByDescending(f => f.LastWriteTimeUtc).Skip(MaxRecords))
                old.Delete();
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"sandbox {record.SandboxId}: its post-mortem record could not be written in {Directory}: {e.Message}";
        }
    }

    public PostMortemRecord? Read(string sandboxId) =>
        sandboxId.Length > 0 && !sandboxId.Contains('/') && !sandboxId.StartsWith('.') ? TryRead(PathOf(sandboxId)) : null;

    /// <summary>The record of sandbox <paramref name="id"/>, else the newest that names a container <paramref name="id"/>.</summary>
    public PostMortemRecord? Find(string id) =>
        Read(id) ?? List().FirstOrDefault(r => r.Containers.Contains(id) || r.Events.Any(e => e.ContainerId == id));

    /// <summary>Every record, newest first.</summary>
    public IReadOnlyList<PostMortemRecord> List() =>
        Files().OrderByDescending(f => f.LastWriteTimeUtc).Select(f => TryRead(f.FullName)).OfType<PostMortemRecord>().ToList();

    public string PathOf(string sandboxId) => Path.Combine(Directory, sandboxId + ".json");

    private IEnumerable<FileInfo> Files() =>
        System.IO.Directory.Exists(Directory) ? new DirectoryInfo(Directory).EnumerateFiles("*.json") : [];

    private static PostMortemRecord? TryRead(string path)
    {
        try
        {
            // a record edited or cut by hand may lack its lists: they read as empty, never as null
            return JsonSerializer.Deserialize(File.ReadAllText(path), PostMortemJson.Default.PostMortemRecord) is { } record
                ? record with
                {
                    Containers = record.Containers ?? [],
                    Events = record.Events ?? [],
                    ConsoleTail = record.ConsoleTail ?? [],
                    QemuTail = record.QemuTail ?? [],
                    VsockDaemonTail = record.VsockDaemonTail ?? [],
                    ShimTail = record.ShimTail ?? [],
                }
                : null;
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(PostMortemRecord))]
internal sealed partial class PostMortemJson : JsonSerializerContext;
