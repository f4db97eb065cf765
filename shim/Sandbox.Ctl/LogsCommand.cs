using System.CommandLine;
using Sandbox.Ctl.Logs;
using Sandbox.Runtime.PostMortem;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Ctl;

/// <summary>
/// `sandboxctl logs ID [--follow]`: a sandbox's guest console (kernel and agent), shim, QEMU and vsock daemon logs,
/// merged in time order, each line with its source. Reads the state directory while the sandbox exists (and with
/// --follow keeps printing what is added until it ends), else the last lines kept in its post-mortem record.
/// Exit 0, or 2 when the ID is unknown.
/// </summary>
public static class LogsCommand
{
    private static readonly TimeSpan FollowInterval = TimeSpan.FromMilliseconds(500);

    public static Command Create()
    {
        var id = new Argument<string>("ID") { Description = "Sandbox id (CRI pod sandbox id, or the ctr container id), or the id of a container in it" };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new lines until the sandbox ends" };
        var json = new Option<bool>("--json") { Description = "One JSON object per line (time, source, text) for tools" };
        var root = StateRootOption.Create();
        var command = new Command("logs", "Print a sandbox's console, agent, shim and QEMU logs in time order") { id, follow, json, root };
        command.SetAction(async (parse, cancellationToken) =>
        {
            string stateRoot = SandboxStateDirectory.ResolveRoot(parse.GetValue(root));
            string target = parse.GetValue(id)!;
            var output = new LogOutput(parse.GetValue(json));
            if (SandboxLookup.Find(stateRoot, target) is { } state)
                return await PrintLiveAsync(state, parse.GetValue(follow), output, cancellationToken);
            var store = new PostMortemStore(stateRoot);
            if (store.Find(target) is { } record)
            {
                PrintEnded(record, store.PathOf(record.SandboxId), output);
                return 0;
            }
            Console.Error.WriteLine($"sandboxctl logs: no sandbox, container or post-mortem record '{target}' under {stateRoot} (`sandboxctl list --all` shows what is known)");
            return 2;
        });
        return command;
    }

    private static async Task<int> PrintLiveAsync(SandboxStateDirectory state, bool follow, LogOutput output, CancellationToken cancellationToken)
    {
        var bootedAt = SandboxMetadata.TryRead(state.MetadataFile)?.CreatedAt.UtcDateTime ?? Directory.GetCreationTimeUtc(state.Path);
        var files = new Sandbox.Hypervisors.Qemu.QemuStateFiles(state.Path);
        var followers = new[]
        {
            new LogFileFollower(files.ConsoleLog, new LogLineClock("console", console: true, bootedAt)),
            new LogFileFollower(Path.Combine(state.Path, SandboxJournal.FileName), new LogLineClock("shim", console: false, bootedAt)),
            new LogFileFollower(files.QemuLog, new LogLineClock("qemu", console: false, bootedAt)),
            new LogFileFollower(files.VsockDaemonLog, new LogLineClock("vsockd", console: false, bootedAt)),
        };
        output.Print(SandboxLogMerge.Merge(followers.Select(f => f.ReadNew())));
        if (!follow)
            return 0;
        try
        {
            while (Directory.Exists(state.Path))
            {
                await Task.Delay(FollowInterval, cancellationToken);
                output.Print(SandboxLogMerge.Merge(followers.Select(f => f.ReadNew())));
            }
        }
        catch (OperationCanceledException)
        {
            return 0;
        }
        output.Note($"(sandbox {state.SandboxId} ended; `sandboxctl doctor {state.SandboxId}` says how)");
        return 0;
    }

    private static void PrintEnded(PostMortemRecord record, string path, LogOutput output)
    {
        var bootedAt = (record.CreatedAt ?? record.EndedAt).UtcDateTime;
        output.Note($"(sandbox {record.SandboxId} ended {record.EndedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z: {record.Reason}; the last lines kept in {path})");
        IReadOnlyList<LogEntry> Read(IReadOnlyList<string> lines, string source, bool console)
        {
            var clock = new LogLineClock(source, console, bootedAt);
            return lines.Select(clock.Read).ToList();
        }
        output.Print(SandboxLogMerge.Merge([
            Read(record.ConsoleTail, "console", console: true),
            Read(record.ShimTail, "shim", console: false),
            Read(record.QemuTail, "qemu", console: false),
            Read(record.VsockDaemonTail, "vsockd", console: false),
        ]));
    }
}

/// <summary>Where `logs` prints: one line per entry, or one JSON object per entry (notes for people are left out).</summary>
internal sealed class LogOutput(bool json)
{
    public void Print(IReadOnlyList<LogEntry> entries)
    {
        foreach (var entry in entries)
            Console.WriteLine(json ? System.Text.Json.JsonSerializer.Serialize(entry, LogsJson.Default.LogEntry) : entry.ToString());
    }

    public void Note(string text)
    {
        if (!json)
            Console.WriteLine(text);
    }
}

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower)]
[System.Text.Json.Serialization.JsonSerializable(typeof(LogEntry))]
internal sealed partial class LogsJson : System.Text.Json.Serialization.JsonSerializerContext;
