using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using Sandbox.Hypervisors.Processes;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Ctl;

/// <summary>One dead sandbox in a gc report: what it left and whether it is gone now.</summary>
public sealed record GcSandbox(string SandboxId, string StateDirectory, int? ShimPid, IReadOnlyList<LeftoverProcess> Processes,
    IReadOnlyList<string> Mounts, bool Removed, string? Error);

/// <summary>One orphan VM process in a gc report.</summary>
public sealed record GcOrphan(int Pid, string CommandLine, string StateDirectory, bool Killed, string? Error);

/// <summary>A state directory whose removal was cut short (<see cref="SandboxStateDirectory.AbandonedRemovals"/>), in a gc report.</summary>
public sealed record GcAbandonedRemoval(string Directory, bool Removed, string? Error);

/// <summary>What `sandboxctl gc` found and did. With <see cref="DryRun"/> nothing was removed or killed.</summary>
public sealed record GcReport(string StateRoot, bool DryRun, IReadOnlyList<GcSandbox> Sandboxes, IReadOnlyList<GcOrphan> Orphans,
    IReadOnlyList<string> LiveSandboxes, IReadOnlyList<string> StartingSandboxes, IReadOnlyList<GcAbandonedRemoval> AbandonedRemovals)
{
    public bool Failed => Sandboxes.Any(s => s.Error is not null) || Orphans.Any(o => o.Error is not null)
                          || AbandonedRemovals.Any(r => r.Error is not null);
}

/// <summary>
/// `sandboxctl gc [--dry-run]`: removes what dead sandboxes left (<see cref="LeftoverScan"/>): for each state
/// directory whose shim is gone, its VM processes, host cgroup, mounts and the directory
/// (<see cref="SandboxStateRemoval"/>); VM processes whose state directory is gone; and state directories whose
/// removal a killed process left half done. A live or starting sandbox is
/// never touched: that is decided by the same <see cref="SandboxOwnership"/> that `list` shows. Exit 0 when
/// everything found was removed (or nothing was found), 1 when something could not be.
/// </summary>
public static class GcCommand
{
    public static Command Create()
    {
        var dryRun = new Option<bool>("--dry-run") { Description = "Only say what would be removed" };
        var json = new Option<bool>("--json") { Description = "Print the report as JSON for tools" };
        var root = StateRootOption.Create();
        var command = new Command("gc", "Remove what dead sandboxes left behind: state directories, VM processes, mounts") { dryRun, json, root };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var report = await RunAsync(SandboxStateDirectory.ResolveRoot(parse.GetValue(root)), parse.GetValue(dryRun), cancellationToken);
            if (parse.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(report, GcJson.Default.GcReport));
            else
                PrintText(report);
            return report.Failed ? 1 : 0;
        });
        return command;
    }

    public static async Task<GcReport> RunAsync(string stateRoot, bool dryRun, CancellationToken cancellationToken)
    {
        var scan = LeftoverScan.Scan(stateRoot, DateTime.UtcNow);
        var sandboxes = new List<GcSandbox>();
        foreach (var dead in scan.DeadSandboxes)
        {
            string? error = null;
            if (!dryRun)
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(TimeSpan.FromSeconds(30));
                try
                {
                    string reason = dead.Owner is { } owner
                        ? $"its shim daemon (pid {owner.Pid}) died before it stopped the sandbox; `sandboxctl gc` removed what it left"
                        : "no shim daemon ever recorded itself as its owner; `sandboxctl gc` removed what was left";
                    await SandboxStateRemoval.RemoveAsync(dead.State, _ => { }, timeout.Token,
                        new SandboxStateRemoval.PostMortemOf(new Sandbox.Runtime.PostMortem.PostMortemStore(stateRoot), reason));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or OperationCanceledException)
                {
                    error = e is OperationCanceledException
                        ? "its processes did not exit within 30 s of SIGKILL (check `ps` for them in state D)"
                        : e.Message;
                }
            }
            sandboxes.Add(new GcSandbox(dead.State.SandboxId, dead.State.Path, dead.Owner?.Pid, dead.Processes, dead.Mounts,
                Removed: !dryRun && error is null, error));
        }

        var orphans = new List<GcOrphan>();
        foreach (var orphan in scan.Orphans)
        {
            string? error = null;
            if (!dryRun)
            {
                PosixSignal.Send(orphan.Process.Pid, PosixSignal.SigKill);
                if (!await ExitsWithinAsync(orphan.Process.Pid, TimeSpan.FromSeconds(10), cancellationToken))
                    error = $"still running 10 s after SIGKILL (check `ps -o stat {orphan.Process.Pid}`)";
            }
            orphans.Add(new GcOrphan(orphan.Process.Pid, orphan.Process.CommandLine, orphan.StateDirectory, Killed: !dryRun && error is null, error));
        }
        var removals = new List<GcAbandonedRemoval>();
        foreach (var directory in scan.AbandonedRemovals)
        {
            string? error = null;
            if (!dryRun)
            {
                try
                {
                    SandboxStateDirectory.RemoveAbandoned(directory);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    error = e.Message;
                }
            }
            removals.Add(new GcAbandonedRemoval(directory, Removed: !dryRun && error is null, error));
        }
        return new GcReport(stateRoot, dryRun, sandboxes, orphans, scan.LiveSandboxes, scan.StartingSandboxes, removals);
    }

    private static async Task<bool> ExitsWithinAsync(int pid, TimeSpan wait, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + wait;
        while (DateTime.UtcNow < deadline)
        {
            if (SandboxOwnerFile.StartTimeOf(pid) is null)
                return true;
            await Task.Delay(20, cancellationToken);
        }
        return false;
    }

    private static void PrintText(GcReport report)
    {
        string would = report.DryRun ? "would remove" : "removed";
        foreach (var s in report.Sandboxes)
        {
            var what = new List<string>();
            what.AddRange(s.Processes.Select(p => $"process {p.Pid} ({Program(p.CommandLine)})"));
            what.AddRange(s.Mounts.Select(m => $"mount {m}"));
            what.Add($"directory {s.StateDirectory}");
            string owner = s.ShimPid is { } pid ? $"its shim (pid {pid}) is gone" : "no shim recorded";
            Console.WriteLine(s.Error is null
                ? $"gc: sandbox {s.SandboxId} ({owner}): {would} {string.Join(", ", what)}"
                : $"gc: sandbox {s.SandboxId} ({owner}): FAILED to remove: {s.Error}");
        }
        foreach (var o in report.Orphans)
        {
            Console.WriteLine(o.Error is null
                ? $"gc: process {o.Pid} ({Program(o.CommandLine)}): its state directory {o.StateDirectory} is gone; {(report.DryRun ? "would kill it" : "killed")}"
                : $"gc: process {o.Pid} ({Program(o.CommandLine)}): FAILED to kill: {o.Error}");
        }
        foreach (var r in report.AbandonedRemovals)
        {
            Console.WriteLine(r.Error is null
                ? $"gc: {r.Directory}: a removal its process did not finish; {would} it"
                : $"gc: {r.Directory}: FAILED to remove: {r.Error}");
        }
        if (report.Sandboxes.Count == 0 && report.Orphans.Count == 0 && report.AbandonedRemovals.Count == 0)
            Console.WriteLine($"gc: nothing to remove under {report.StateRoot}");
        if (report.LiveSandboxes.Count + report.StartingSandboxes.Count > 0)
            Console.WriteLine($"gc: left alone: {report.LiveSandboxes.Count} live, {report.StartingSandboxes.Count} starting sandbox(es)");
    }

    private static string Program(string commandLine) => Path.GetFileName(commandLine.Split(' ', 2)[0]);
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(GcReport))]
internal sealed partial class GcJson : JsonSerializerContext;
