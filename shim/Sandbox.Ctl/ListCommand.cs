using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using Sandbox.Runtime.PostMortem;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Ctl;

/// <summary>One row of `sandboxctl list`: a state directory, whether its owner lives, and what its sandbox.json says.
/// <see cref="State"/> is "live", "starting" or "dead" (<see cref="SandboxOwnership"/>): `gc` removes exactly the dead
/// ones.</summary>
public sealed record SandboxListing(string SandboxId, string StateDirectory, string State, int? ShimPid, int? VmmPid, bool VmmRunning,
    string? Acceleration, string? VsockMode, string? ConsoleLog, DateTimeOffset? CreatedAt, string? Problem)
{
    /// <summary>How its QEMU and helpers are confined (<see cref="SandboxMetadata.Confinement"/>).</summary>
    public string? Confinement { get; init; }
    /// <summary>How its VM started (<see cref="SandboxMetadata.Start"/>): "booted" or "cloned from template ...".</summary>
    public string? Start { get; init; }
}

/// <summary>`sandboxctl list`: every sandbox on this host, from the state directories alone (no daemon is asked).</summary>
public static class ListCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print the list as JSON for tools" };
        var all = new Option<bool>("--all", "-a") { Description = "Also list the sandboxes that ended (their post-mortem records, newest first)" };
        var root = StateRootOption.Create();
        var command = new Command("list", "List the sandboxes on this host from their state directories") { json, all, root };
        command.SetAction(parse =>
        {
            string stateRoot = SandboxStateDirectory.ResolveRoot(parse.GetValue(root));
            var listings = Read(stateRoot);
            if (parse.GetValue(all))
                listings = [.. listings, .. ReadEnded(stateRoot)];
            if (parse.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(listings, ListJson.Default.IReadOnlyListSandboxListing));
            else
                PrintText(listings);
            return 0;
        });
        return command;
    }

    public static IReadOnlyList<SandboxListing> Read(string stateRoot)
    {
        var now = DateTime.UtcNow;
        return SandboxStateDirectory.List(stateRoot).Select(state => Describe(state, now)).ToList();
    }

    /// <summary>The post-mortem records (<see cref="PostMortemStore"/>), newest first, as rows in state "ended"; a sandbox
    /// that ended by a failure has its reason as the problem.</summary>
    public static IReadOnlyList<SandboxListing> ReadEnded(string stateRoot)
    {
        var store = new PostMortemStore(stateRoot);
        return store.List().Select(r => new SandboxListing(r.SandboxId, store.PathOf(r.SandboxId), "ended", null, r.Metadata?.VmmPid, false,
            r.Metadata?.Acceleration, r.Metadata?.VsockMode, null, r.CreatedAt,
            r.Failed ? $"{r.Reason} (`sandboxctl doctor {r.SandboxId}`)" : null)).ToList();
    }

    private static SandboxListing Describe(SandboxStateDirectory state, DateTime now)
    {
        var liveness = SandboxOwnership.Of(state, now);
        var owner = SandboxOwnerFile.Recorded(state.Path);
        var metadata = SandboxMetadata.TryRead(state.MetadataFile);
        bool running = metadata?.VmmRunsIn(state.Path) == true;
        string? problem = liveness switch
        {
            SandboxLiveness.Dead when owner is not null =>
                $"its shim (pid {owner.Pid}) is gone: these are leftovers; `sandboxctl gc` removes them",
            SandboxLiveness.Dead =>
                $"no shim ever recorded itself in {SandboxOwnerFile.FileName} and the directory is older than " +
                $"{SandboxOwnership.StartGrace.TotalSeconds:0} s: leftovers; `sandboxctl gc` removes them",
            SandboxLiveness.Live when metadata?.VmmPid is not null && !running =>
                "its shim runs but its VMM does not: the VM died; the shim reports the exit and stops it",
            _ => null,
        };
        return new SandboxListing(metadata?.SandboxId ?? state.SandboxId, state.Path, SandboxOwnership.Describe(liveness),
            owner?.Pid, metadata?.VmmPid, running, metadata?.Acceleration, metadata?.VsockMode, metadata?.ConsoleLog,
            metadata?.CreatedAt, problem) { Confinement = metadata?.Confinement, Start = metadata?.Start };
    }

    /// <summary>"booted", "cloned" or "-" (a sandbox.json from before templates).</summary>
    private static string StartWord(string? start) => start is null ? "-" : start.StartsWith("cloned", StringComparison.Ordinal) ? "cloned" : "booted";

    private static void PrintText(IReadOnlyList<SandboxListing> listings)
    {
        if (listings.Count == 0)
        {
            Console.WriteLine("no sandboxes");
            return;
        }
        Console.WriteLine($"{"SANDBOX",-24} {"STATE",-8} {"SHIM PID",8} {"VMM PID",8} {"VMM",-7} {"ACCEL",-5} {"VSOCK",-7} {"CONFINED",-10} {"START",-7} CONSOLE");
        foreach (var l in listings)
        {
            var id = l.SandboxId.Length > 24 ? l.SandboxId[..21] + "..." : l.SandboxId;
            Console.WriteLine($"{id,-24} {l.State,-8} {l.ShimPid?.ToString() ?? "-",8} {l.VmmPid?.ToString() ?? "-",8} " +
                              $"{(l.VmmRunning ? "running" : "-"),-7} {l.Acceleration ?? "-",-5} {l.VsockMode ?? "-",-7} " +
                              $"{l.Confinement?.Split(' ')[0] ?? "-",-10} {StartWord(l.Start),-7} {l.ConsoleLog ?? "-"}");
            if (l.Problem is not null)
                Console.WriteLine($"{"",-24} {l.Problem}");
        }
    }
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(IReadOnlyList<SandboxListing>))]
internal sealed partial class ListJson : JsonSerializerContext;
