using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Ctl;

/// <summary>One row of `sandboxctl list`: a state directory and what its sandbox.json says.</summary>
public sealed record SandboxListing(string SandboxId, string StateDirectory, int? VmmPid, bool VmmRunning,
    string? Acceleration, string? VsockMode, string? ConsoleLog, DateTimeOffset? CreatedAt, string? Problem);

/// <summary>`sandboxctl list`: every sandbox on this host, from the state directories alone (no daemon is asked).</summary>
public static class ListCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print the list as JSON for tools" };
        var root = new Option<string?>("--state-root")
        {
            Description = $"Parent of the state directories (default: $SANDBOX_STATE_ROOT, else {SandboxStateDirectory.DefaultRoot})",
        };
        var command = new Command("list", "List the sandboxes on this host from their state directories") { json, root };
        command.SetAction(parse =>
        {
            var listings = Read(SandboxStateDirectory.ResolveRoot(parse.GetValue(root)));
            if (parse.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(listings, ListJson.Default.IReadOnlyListSandboxListing));
            else
                PrintText(listings);
            return 0;
        });
        return command;
    }

    public static IReadOnlyList<SandboxListing> Read(string stateRoot) =>
        SandboxStateDirectory.List(stateRoot).Select(Describe).ToList();

    private static SandboxListing Describe(SandboxStateDirectory state)
    {
        var metadata = SandboxMetadata.TryRead(state.MetadataFile);
        if (metadata is null)
            return new SandboxListing(state.SandboxId, state.Path, null, false, null, null, null, null,
                $"no readable {state.MetadataFile}: the sandbox never finished booting, or its owner died early");
        bool running = metadata.VmmPid is { } pid && File.Exists($"/proc/{pid}/cmdline") &&
                       File.ReadAllText($"/proc/{pid}/cmdline").Contains(state.Path, StringComparison.Ordinal);
        return new SandboxListing(metadata.SandboxId, state.Path, metadata.VmmPid, running, metadata.Acceleration,
            metadata.VsockMode, metadata.ConsoleLog, metadata.CreatedAt,
            running ? null : "the VMM is not running: a leftover state directory (containerd's `delete` normally removes it)");
    }

    private static void PrintText(IReadOnlyList<SandboxListing> listings)
    {
        if (listings.Count == 0)
        {
            Console.WriteLine("no sandboxes");
            return;
        }
        Console.WriteLine($"{"SANDBOX",-24} {"VMM PID",8} {"STATE",-8} {"ACCEL",-5} {"VSOCK",-7} CONSOLE");
        foreach (var l in listings)
        {
            var id = l.SandboxId.Length > 24 ? l.SandboxId[..21] + "..." : l.SandboxId;
            Console.WriteLine($"{id,-24} {l.VmmPid?.ToString() ?? "-",8} {(l.VmmRunning ? "running" : "stale"),-8} " +
                              $"{l.Acceleration ?? "-",-5} {l.VsockMode ?? "-",-7} {l.ConsoleLog ?? "-"}");
            if (l.Problem is not null)
                Console.WriteLine($"{"",-24} {l.Problem}");
        }
    }
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(IReadOnlyList<SandboxListing>))]
internal sealed partial class ListJson : JsonSerializerContext;
